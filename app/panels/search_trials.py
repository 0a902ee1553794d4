"""The Search dock's trials table and its Open study dialog.

The table is one of the dock's views of a ``StudySnapshot``: a row per trial
(number, state, value, duration, run, then a column per parameter), sortable by
value as numbers, the best trial in bold; a double-click asks for the trial's run.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from .search_study import COMPLETE, PRUNED, StudySnapshot, study_names

STATE_COLOURS = {COMPLETE: "#2ca02c", PRUNED: "#d95f02", "FAIL": "#d1242f"}
FIXED_COLUMNS = ("Trial", "State", "Value", "Duration (s)", "Run")


class TrialsTable(QTableWidget):
    """``runRequested(run_id)``: a trial was double-clicked."""

    runRequested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(0, len(FIXED_COLUMNS), parent)
        self.setHorizontalHeaderLabels(FIXED_COLUMNS)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.verticalHeader().hide()
        self.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
        self.setToolTip("Double-click a trial to put its configuration in the form")
        self.cellDoubleClicked.connect(self._double_clicked)

    def show_study(self, snapshot: StudySnapshot) -> None:
        names = [p.name for p in snapshot.params]
        self.setSortingEnabled(False)
        self.setColumnCount(len(FIXED_COLUMNS) + len(names))
        self.setHorizontalHeaderLabels([*FIXED_COLUMNS, *names])
        self.setRowCount(len(snapshot.trials))
        best = snapshot.best.number if snapshot.best else None
        bold = QFont()
        bold.setBold(True)
        for row, trial in enumerate(snapshot.trials):
            cells = [trial.number, trial.state, trial.value,
                     None if trial.duration_s is None else round(trial.duration_s, 1),
                     trial.run_id, *(trial.params.get(n) for n in names)]
            for column, value in enumerate(cells):
                item = _Item(value)
                if column == 1 and trial.state in STATE_COLOURS:
                    item.setForeground(QColor(STATE_COLOURS[trial.state]))
                if trial.number == best:
                    item.setFont(bold)
                    item.setToolTip("The best trial")
                self.setItem(row, column, item)
        self.setSortingEnabled(True)
        self.resizeColumnsToContents()

    def apply_theme(self, _dark: bool) -> None:
        """The palette themes the table; its state colours read on both backgrounds."""

    def _double_clicked(self, row: int, _column: int) -> None:
        item = self.item(row, FIXED_COLUMNS.index("Run"))
        run = item.value if isinstance(item, _Item) else None
        if isinstance(run, int):
            self.runRequested.emit(run)


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers), shown as text."""

    def __init__(self, value):
        text = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else
                                         str(value))
        super().__init__(text)
        self.value = value
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def __lt__(self, other):
        a, b = self.value, getattr(other, "value", None)
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a < b
        return (a is None, str(a)) < (b is None, str(b))


class OpenStudyDialog(QDialog):
    """A storage URL and a study name; List fills the names from the storage."""

    def __init__(self, storage: str, name: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Open study")
        self.setMinimumWidth(560)
        self.url = QLineEdit(storage)
        self.url.setToolTip("sqlite:///path/to/search.sqlite, postgresql://user@host/db, …")
        self.names = QComboBox()
        self.names.setEditable(True)
        self.names.setCurrentText(name)
        listing = QPushButton("List")
        listing.setToolTip("Read the studies the storage holds")
        listing.clicked.connect(self.list_studies)
        row = QHBoxLayout()
        row.addWidget(self.names, 1)
        row.addWidget(listing)
        form = QFormLayout()
        form.addRow("Storage", self.url)
        form.addRow("Study", row)
        buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.list_studies()

    def list_studies(self) -> None:
        current = self.names.currentText()
        self.names.clear()
        self.names.addItems(study_names(self.storage()))
        if current:
            self.names.setCurrentText(current)

    def storage(self) -> str:
        return self.url.text().strip()

    def name(self) -> str:
        return self.names.currentText().strip()

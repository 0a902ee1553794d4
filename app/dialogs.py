"""Dialogs of the main window: pick a workspace run, About, keyboard shortcuts."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

if TYPE_CHECKING:  # engine.workspace (sqlite, psutil): not needed for the first paint
    from engine.workspace import RunRecord


class RunPicker(QDialog):
    """A table of workspace runs; ``chosen`` is the selected run's id after accept()."""

    COLUMNS = ("ID", "Name", "Status", "Epochs", "Steps", "Best", "Created")

    def __init__(self, runs: list[RunRecord], title: str, action: str, parent=None,
                 allowed: tuple[str, ...] | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(760, 420)
        self.chosen: int | None = None
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.setAlternatingRowColors(True)
        self._ids = []
        for run in runs:
            if allowed is not None and run.status not in allowed:
                continue
            best = f"{run.best_metric} {run.best_val:.4g}" if run.best_val is not None else ""
            row = self.table.rowCount()
            self.table.insertRow(row)
            cells = (str(run.id), run.name, run.status, str(run.epochs_completed or 0),
                     str(run.steps or 0), best, (run.created_at or "")[:19].replace("T", " "))
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
            self._ids.append(run.id)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText(action)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.table.doubleClicked.connect(self._double_clicked)
        layout = QVBoxLayout(self)
        if not self._ids:
            layout.addWidget(QLabel("No runs to show yet: start one with Run ▸ Start."))
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        if self._ids:
            self.table.selectRow(0)

    def _double_clicked(self, _index) -> None:
        self.accept()

    def accept(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.chosen = self._ids[rows[0].row()]
            super().accept()


def about_text() -> str:
    import torch  # not at the window's start: About is opened rarely

    cuda = torch.version.cuda or "none (CPU build)"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none found"
    from engine import __version__

    return (f"<h3>Torchwork {__version__}</h3>"
            "<p>A workbench for training PyTorch models efficiently.</p>"
            f"<table><tr><td>PyTorch</td><td>{torch.__version__}</td></tr>"
            f"<tr><td>CUDA</td><td>{cuda}</td></tr>"
            f"<tr><td>GPU</td><td>{gpu}</td></tr>"
            f"<tr><td>Qt / PySide6</td><td>{qVersion()} / {pyside_version}</td></tr>"
            f"<tr><td>Python</td><td>{platform.python_version()}</td></tr></table>")


class TextDialog(QDialog):
    def __init__(self, title: str, html: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle(title)
        label = QLabel(html)
        label.setTextFormat(Qt.RichText)
        label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(buttons)


def shortcuts_html(actions) -> str:
    rows = "".join(f"<tr><td>{a.text().replace('&', '').rstrip('.…')}</td>"
                   f"<td><b>{a.shortcut().toString()}</b></td></tr>"
                   for a in actions if not a.shortcut().isEmpty())
    return f"<table cellspacing='6'>{rows}</table>"

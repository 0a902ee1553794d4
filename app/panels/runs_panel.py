"""The Runs dock: every run of the workspace in one table, filtered, compared, acted on.

The table follows the workspace live: a timer looks at SQLite's data_version
every second (microseconds) and, when another connection committed (a
`torchwork run` in a terminal, a search worker, this window's own run), reads
the runs again on a thread. Compare emits ``overlayRequested`` with the
selected run ids (the training plots draw them) and shows the config keys that
differ. Open run, Resume, Export and Evaluate call the window's own entry
points through ``RunActions`` (app/panels/runs_actions.py fills it from the window).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.workspace.config_columns import show_value

from ..widgets.message_bar import MessageBar, MessageLog
from .runs_data import ChangeWatch, RunsReader, Snapshot, database_path
from .runs_model import LoadJob, RunsFilter, RunsModel

SOURCE = "Runs"
POLL_MS = 1000
SEARCH_DEBOUNCE_MS = 150
ALL = "All"
SIZE_SAMPLE, MAX_COLUMN_PX = 60, 260
RESUMABLE = ("stopped", "interrupted", "failed")


@dataclass
class RunActions:
    """The window's entry points for one run; None leaves that button out."""
    open: Callable[[int], object] | None = None
    resume: Callable[[int], object] | None = None
    export: Callable[[int], object] | None = None
    evaluate: Callable[[int], object] | None = None


class RunsPanel(QWidget):
    overlayRequested = Signal(list)  # run ids whose curves the training plots overlay

    def __init__(self, workspace_dir=None, actions: RunActions | None = None, *,
                 log: MessageLog | None = None, parent=None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self.actions = actions or RunActions()
        self.reader = RunsReader(workspace_dir)
        self._job: LoadJob | None = None
        self._again = False
        self._watch = ChangeWatch(database_path(workspace_dir))
        self._shown, self._stale = True, False
        self.messages = MessageBar(log, scope="runs", source=SOURCE)

        self.model = RunsModel(self)
        self.proxy = RunsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        header.setSortIndicatorShown(True)
        header.setSortIndicator(-1, Qt.AscendingOrder)
        header.setSectionsClickable(True)
        header.sortIndicatorChanged.connect(self._on_sort)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(self._on_double_click)
        for text, key, slot in (("Move to trash", QKeySequence.Delete, self.trash_selected),
                                ("Rename", QKeySequence("F2"), self.rename_selected)):
            shortcut = QAction(text, self.table)
            shortcut.setShortcut(key)
            shortcut.setShortcutContext(Qt.WidgetShortcut)
            shortcut.triggered.connect(slot)
            self.table.addAction(shortcut)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.model.modelReset.connect(self._on_reset)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names and notes")
        self.search.setClearButtonEnabled(True)
        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.apply_filters)
        self.search.textChanged.connect(self._debounce.start)
        self.status_filter = self._combo("Status", ["created", "running", "completed", "stopped",
                                                    "failed", "interrupted", "pruned"])
        self.tag_filter = self._combo("Tag", [])
        self.study_filter = self._combo("Study", [])
        self.group_filter = self._combo("Cross-validation group", [])
        self.trash_box = QCheckBox("Trash")
        self.trash_box.setToolTip("Show the runs in the trash instead (right-click: Restore, "
                                  "Empty trash)")
        self.trash_box.toggled.connect(self.apply_filters)
        self.count = QLabel("Loading runs…")
        filters = QHBoxLayout()
        filters.addWidget(self.search, 2)
        for label, combo in (("Status", self.status_filter), ("Tag", self.tag_filter),
                             ("Study", self.study_filter), ("Group", self.group_filter)):
            filters.addWidget(QLabel(label))
            filters.addWidget(combo, 1)
        filters.addWidget(self.trash_box)

        self.compare_button = self._button("Compare", self.compare,
                                           "Overlay the selected runs' curves on the training "
                                           "plots and list the config keys that differ")
        self.open_button = self._button("Open run", self.open_selected,
                                        "Show the run's configuration and curves (as File ▸ "
                                        "Open run)")
        self.resume_button = self._button("Resume", self.resume_selected,
                                          "Continue a stopped, interrupted or failed run from "
                                          "its checkpoint")
        self.export_button = self._button("Export…", self.export_selected,
                                          "Export the run's trained model (as File ▸ Export "
                                          "trained model)")
        self.evaluate_button = self._button("Evaluate", self.evaluate_selected,
                                            "Judge the run's model in the Evaluation dock")
        buttons = QHBoxLayout()
        buttons.addWidget(self.count, 1)
        for b in (self.compare_button, self.open_button, self.resume_button,
                  self.export_button, self.evaluate_button):
            buttons.addWidget(b)

        self.diff = QTableWidget(0, 0)
        self.diff.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.diff.verticalHeader().setDefaultSectionSize(22)
        self.diff.setWordWrap(False)
        self.diff_label = QLabel("Select two or more runs to see the config keys that differ.")
        diff_box = QWidget()
        diff_layout = QVBoxLayout(diff_box)
        diff_layout.setContentsMargins(0, 0, 0, 0)
        diff_layout.addWidget(self.diff_label)
        diff_layout.addWidget(self.diff, 1)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self.table)
        split.addWidget(diff_box)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.messages)
        layout.addLayout(filters)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        self._on_selection()

        self.poll = QTimer(self, interval=POLL_MS)
        self.poll.timeout.connect(self.refresh_if_changed)
        self.reload()
        self.poll.start()

    # --- construction helpers ---------------------------------------------------------
    def _combo(self, what: str, items: list[str]) -> QComboBox:
        combo = QComboBox()
        combo.setToolTip(f"Only runs of this {what.lower()}")
        combo.addItems([ALL, *items])
        combo.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        combo.currentIndexChanged.connect(self.apply_filters)
        return combo

    def _button(self, text: str, slot, tip: str) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # --- reading the workspace ---------------------------------------------------------
    def reload(self) -> None:
        """Read the runs again on a thread (once more after the current read, if one runs)."""
        self._watch.changed()  # what commits after this look are read next time
        if self._job is not None and self._job.isRunning():
            self._again = True
            return
        self._again = False
        if self._job is not None:
            self._job.deleteLater()
        self._job = LoadJob(self.reader, self)
        self._job.loaded.connect(self._on_loaded)
        self._job.failed.connect(self._on_failed)
        self._job.finished.connect(self._on_job_finished)
        self._job.start()

    def refresh_if_changed(self) -> None:
        if self._watch.changed():
            if self._shown:
                self.reload()
            else:
                self._stale = True  # read when the tab comes forward

    def set_shown(self, shown: bool) -> None:
        """While the dock is behind another tab, changes are noted, not read: a run the
        window trains commits every second, and 10,000 rows cost ~0.15 s to read again."""
        self._shown = shown
        if shown and self._stale:
            self._stale = False
            self.reload()

    def close_reader(self) -> None:
        """Stop following the workspace (the window closes)."""
        self.poll.stop()
        if self._job is not None:
            self._job.wait()
        self._watch.close()
        self.reader.close()

    def _on_loaded(self, snap: Snapshot) -> None:
        selected = self.selected_ids()
        self.model.set_snapshot(snap)
        for combo, values in ((self.tag_filter, snap.tags), (self.study_filter, snap.studies),
                              (self.group_filter, snap.groups)):
            _set_items(combo, values)
        if selected and self.selected_ids() != selected:
            self.select_ids(selected)
        self._update_count()

    def _on_failed(self, text: str) -> None:
        self.messages.show_message(f"Cannot read the runs: {text}", "error")

    def _on_job_finished(self) -> None:
        if self._again:
            self.reload()

    def _on_reset(self) -> None:
        """Column widths from the header and the first rows' texts: Qt's own
        resizeColumnsToContents asks every row for every role (seconds for 10,000 runs)."""
        metrics = self.table.fontMetrics()
        header = self.table.horizontalHeader()
        sample = self.model.rows[:SIZE_SAMPLE]
        for column, key in enumerate(self.model.keys):
            texts = [self.model.headers[column], *(self.model.text(r, key) for r in sample)]
            width = max(metrics.horizontalAdvance(t) for t in texts) + 24
            header.resizeSection(column, min(width, MAX_COLUMN_PX))

    # --- filters and sort ------------------------------------------------------------
    def apply_filters(self) -> None:
        self.proxy.set_filters(text=self.search.text(), status=_chosen(self.status_filter),
                               tag=_chosen(self.tag_filter), study=_chosen(self.study_filter),
                               group=_chosen(self.group_filter),
                               trash=self.trash_box.isChecked())
        self._update_count()

    def clear_filters(self) -> None:
        for combo in (self.status_filter, self.tag_filter, self.study_filter,
                      self.group_filter):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.apply_filters()

    def _on_sort(self, column: int, order) -> None:
        self.model.sort(column, order)

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        where = "in the trash" if self.trash_box.isChecked() else "shown"
        self.count.setText(f"{shown:,} of {total:,} runs {where}"
                           + ("" if self.model.complete or not total
                              else " (reading their configurations…)"))

    # --- selection ------------------------------------------------------------------------
    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return self.proxy.run_ids(rows)

    def select_ids(self, ids: list[int]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        for run_id in ids:
            row = self.model.row_of(run_id)
            if row is None:
                continue
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            if index.isValid():
                selection.select(index, QItemSelectionModel.Select | QItemSelectionModel.Rows)

    def _selected_rows(self):
        return [self.model.run(self.model.row_of(i)) for i in self.selected_ids()]

    def _on_selection(self, *_args) -> None:
        rows = self._selected_rows()
        one = rows[0] if len(rows) == 1 else None
        self.compare_button.setEnabled(len(rows) >= 2)
        for button, action, ok in (
                (self.open_button, self.actions.open, one is not None),
                (self.resume_button, self.actions.resume,
                 one is not None and one.status in RESUMABLE),
                (self.export_button, self.actions.export, one is not None),
                (self.evaluate_button, self.actions.evaluate, one is not None)):
            button.setVisible(action is not None)
            button.setEnabled(ok and not (one is not None and one.trashed))
        self.show_diff(rows)

    def show_diff(self, rows) -> None:
        """The config keys whose values differ between the selected runs, and their best."""
        if len(rows) < 2:
            self.diff.setRowCount(0)
            self.diff.setColumnCount(0)
            self.diff_label.setText("Select two or more runs to see the config keys that "
                                    "differ.")
            return
        keys = [("data.dataset", lambda r: r.dataset), ("model.arch", lambda r: r.model)]
        keys += [(k, _hp_getter(n)) for n, k in enumerate(self.model.hp_keys)]
        lines = [(k, [get(r) for r in rows]) for k, get in keys]
        lines = [(k, v) for k, v in lines if len(set(map(_hashable, v))) > 1]
        lines.append(("best metric", [f"{r.best_metric or ''} {r.best_val:.4g}"
                                      if r.best_val is not None else "" for r in rows]))
        self.diff.setColumnCount(len(rows))
        self.diff.setRowCount(len(lines))
        self.diff.setHorizontalHeaderLabels([f"{r.id} {r.name}" for r in rows])
        self.diff.setVerticalHeaderLabels([k for k, _ in lines])
        for y, (_, values) in enumerate(lines):
            for x, value in enumerate(values):
                self.diff.setItem(y, x, QTableWidgetItem(
                    value if isinstance(value, str) else show_value(value)))
        self.diff.resizeColumnsToContents()  # a few rows: cheap
        same = "" if len(lines) > 1 else " (their configurations are the same)"
        self.diff_label.setText(f"{len(lines) - 1} config keys differ between the "
                                f"{len(rows)} selected runs{same}")

    # --- actions ------------------------------------------------------------------------
    def compare(self) -> None:
        ids = self.selected_ids()
        if len(ids) >= 2:
            self.overlayRequested.emit(ids)
            self.show_diff(self._selected_rows())

    def _one(self) -> int | None:
        ids = self.selected_ids()
        return ids[0] if len(ids) == 1 else None

    def open_selected(self) -> None:
        self._act(self.actions.open)

    def resume_selected(self) -> None:
        self._act(self.actions.resume)

    def export_selected(self) -> None:
        self._act(self.actions.export)

    def evaluate_selected(self) -> None:
        self._act(self.actions.evaluate)

    def _act(self, action) -> None:
        run_id = self._one()
        if action is not None and run_id is not None:
            action(run_id)

    def _on_double_click(self, _index) -> None:
        self.open_selected()

    def _context_menu(self, pos) -> None:
        menu = self.context_menu()
        if menu.actions():
            menu.exec(self.table.viewport().mapToGlobal(pos))

    def context_menu(self) -> QMenu:
        """The right-click menu for the selection (tests read its actions)."""
        menu = QMenu(self)
        rows = self._selected_rows()
        one = rows[0] if len(rows) == 1 else None
        add = self._menu_action
        if one is not None and not one.trashed:
            for text, action, slot in (("Open run", self.actions.open, self.open_selected),
                                       ("Resume", self.actions.resume, self.resume_selected),
                                       ("Export…", self.actions.export, self.export_selected),
                                       ("Evaluate", self.actions.evaluate,
                                        self.evaluate_selected)):
                if action is not None and (text != "Resume" or one.status in RESUMABLE):
                    add(menu, text, slot)
        if len(rows) >= 2:
            add(menu, "Compare", self.compare)
        if menu.actions():
            menu.addSeparator()
        if one is not None:
            add(menu, "Rename…", self.rename_selected)
            add(menu, "Notes…", self.note_selected)
        if rows:
            add(menu, "Tags…", self.tag_selected)
            if all(r.trashed for r in rows):
                add(menu, "Restore", self.restore_selected)
            else:
                add(menu, "Move to trash…", self.trash_selected)
        if any(r.trashed for r in self.model.rows):
            menu.addSeparator()
            add(menu, "Empty trash…", self.empty_trash)
        return menu

    @staticmethod
    def _menu_action(menu: QMenu, text: str, slot) -> QAction:
        action = menu.addAction(text)
        action.triggered.connect(slot)
        return action

    def rename_selected(self) -> None:
        rows = self._selected_rows()
        if len(rows) != 1:
            return
        (row,) = rows
        name = self.ask_text("Rename run", f"New name of run {row.id}:", row.name)
        if name is not None and name.strip() and name != row.name:
            self._write(lambda ws: ws.rename_run(row.id, name), "rename the run")

    def note_selected(self) -> None:
        (row,) = self._selected_rows()
        notes = self.ask_text("Run notes", f"Notes on run {row.id} {row.name}:", row.notes,
                              multiline=True)
        if notes is not None:
            self._write(lambda ws: ws.set_notes(row.id, notes), "save the notes")

    def tag_selected(self) -> None:
        rows = self._selected_rows()
        common = sorted(set.intersection(*(set(r.tags) for r in rows)))
        text = self.ask_text("Tags", f"Tags of {_runs_text(rows)}, separated by commas:",
                             ", ".join(common))
        if text is None:
            return
        tags = [t.strip() for t in text.split(",") if t.strip()]
        removed = set(common) - set(tags)

        def write(ws):
            for r in rows:
                ws.set_tags(r.id, (set(r.tags) - removed) | set(tags))

        self._write(write, "set the tags")

    def trash_selected(self) -> None:
        """Move to trash… (the Delete key): asked first."""
        rows = [r for r in self._selected_rows() if not r.trashed]
        if rows and self.confirm("Move to trash", f"Move {_runs_text(rows)} to the trash? "
                                 f"They leave every list until restored; Empty trash "
                                 f"deletes them for good."):
            self._write(lambda ws: [ws.trash_run(r.id) for r in rows], "move to the trash")

    def restore_selected(self) -> None:
        rows = self._selected_rows()
        self._write(lambda ws: [ws.restore_run(r.id) for r in rows], "restore")

    def empty_trash(self) -> None:
        trashed = [r for r in self.model.rows if r.trashed]
        if trashed and self.confirm("Empty trash", f"Delete the {_runs_text(trashed)} in the "
                                    f"trash, with their checkpoints and files? This cannot be "
                                    f"undone."):
            self._write(lambda ws: ws.empty_trash(), "empty the trash")

    def _write(self, work, what: str) -> None:
        from engine.workspace import Workspace, WorkspaceError

        try:
            with Workspace(self.workspace_dir) as ws:
                work(ws)
        except (WorkspaceError, OSError) as exc:
            self.messages.show_message(f"Cannot {what}: {exc}", "error")
        self.reload()

    # --- questions (tests replace these) ------------------------------------------------
    def ask_text(self, title: str, label: str, text: str, multiline: bool = False) -> str | None:
        ask = QInputDialog.getMultiLineText if multiline else QInputDialog.getText
        if multiline:
            value, ok = ask(self, title, label, text)
        else:
            value, ok = ask(self, title, label, QLineEdit.Normal, text)
        return value if ok else None

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.Yes | QMessageBox.No,
                                      QMessageBox.No)
        return answer == QMessageBox.Yes

    def apply_theme(self, dark: bool) -> None:
        """Colours come from the application palette; nothing of its own to restyle."""


def _chosen(combo: QComboBox) -> str | None:
    return None if combo.currentIndex() <= 0 else combo.currentText()


def _set_items(combo: QComboBox, values: list[str]) -> None:
    """Refill a filter's choices, keeping the chosen one (listed even if no run has it now)."""
    current = combo.currentText()
    items = [ALL, *values]
    if current not in items:
        items.append(current)
    if [combo.itemText(i) for i in range(combo.count())] == items:
        return
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    combo.setCurrentText(current)
    combo.blockSignals(False)


def _hp_getter(n: int):
    def get(row):
        return row.hp[n] if row.hp else None
    return get


def _hashable(value):
    return value if not isinstance(value, list) else tuple(value)


def _runs_text(rows) -> str:
    return f"run {rows[0].id} {rows[0].name}" if len(rows) == 1 else f"{len(rows)} runs"

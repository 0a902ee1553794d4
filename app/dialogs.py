"""Dialogs of the main window: pick a workspace run, About, keyboard shortcuts."""

from __future__ import annotations

import html
import platform
from typing import TYPE_CHECKING

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

if TYPE_CHECKING:  # engine.workspace (sqlite, psutil): not needed for the first paint
    from engine.workspace import RunRecord

from .widgets.buttons import ok_cancel
from .widgets.timeline_keys import GESTURES, KEYS


class RunPicker(QDialog):
    """A table of workspace runs; ``chosen`` is the selected run's id after accept().

    Profile captures (short runs that only recorded a trace) are kept in the
    workspace but are not trained models: they are listed only while "Show
    profile captures" is ticked, marked in the Kind column.
    """

    COLUMNS = ("ID", "Name", "Kind", "Status", "Epochs", "Steps", "Best", "Created")
    KIND_TEXT = {"train": "training", "profile": "profile capture"}

    def __init__(self, runs: list[RunRecord], title: str, action: str, parent=None,
                 allowed: tuple[str, ...] | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(820, 420)
        self.chosen: int | None = None
        self._runs = [r for r in runs if allowed is None or r.status in allowed]
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self._ids: list[int] = []
        captures = sum(r.kind == "profile" for r in self._runs)
        self.show_captures = QCheckBox(f"Show profile captures ({captures})")
        self.show_captures.setToolTip("Short runs made by Profile ▸ Capture or `torchwork "
                                      "profile` to record a trace; they train no model to use")
        self.show_captures.setEnabled(captures > 0)
        self.show_captures.toggled.connect(self._fill)
        self.empty = QLabel("No runs to show yet: start one with Run ▸ Start.")
        buttons, self.ok_button = ok_cancel(self, action)
        self.table.doubleClicked.connect(self._double_clicked)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addWidget(self.table)
        bottom = QHBoxLayout()
        bottom.addWidget(self.show_captures)
        bottom.addStretch(1)
        bottom.addWidget(buttons)
        layout.addLayout(bottom)
        self._fill()

    def _fill(self) -> None:
        shown = [r for r in self._runs if r.kind != "profile" or self.show_captures.isChecked()]
        self.table.setRowCount(0)
        self._ids = []
        for run in shown:
            best = f"{run.best_metric} {run.best_val:.4g}" if run.best_val is not None else ""
            row = self.table.rowCount()
            self.table.insertRow(row)
            cells = (str(run.id), run.name, self.KIND_TEXT.get(run.kind, run.kind), run.status,
                     str(run.epochs_completed or 0), str(run.steps or 0), best,
                     (run.created_at or "")[:19].replace("T", " "))
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
            self._ids.append(run.id)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.empty.setVisible(not self._ids)
        if self._runs and not self._ids:
            self.empty.setText("Only profile captures here: tick Show profile captures to "
                               "list them.")
        self.ok_button.setEnabled(bool(self._ids))
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


def shortcut_rows(window: QMainWindow) -> list[tuple[str, str, str]]:
    """(section, keys, what it does) for every shortcut of ``window``, read from its own
    QActions (each under the menu that holds it) and from the timeline's key table, so
    the list cannot go stale when an action or a key is added."""
    rows, seen = [], set()

    def walk(menu: QMenu, path: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), f"{path} ▸ {_plain(action.text())}")
            elif action not in seen and action.shortcuts():
                seen.add(action)
                rows.append((path, _keys(action), _plain(action.text())))

    for top in window.menuBar().actions():
        if top.menu() is not None:
            walk(top.menu(), _plain(top.text()))
    for action in window.findChildren(QAction):  # shortcuts on no menu (a toolbar's, say)
        if action not in seen and action.shortcuts():
            rows.append(("Window", _keys(action), _plain(action.text())))
    section = "Profiler ▸ Timeline (click the timeline first)"
    rows += [(section, QKeySequence(key).toString(QKeySequence.NativeText), label)
             for key, (label, _method) in KEYS.items()]
    rows += [(section, gesture, label) for gesture, label in GESTURES]
    return rows


def shortcuts_html(rows: list[tuple[str, str, str]]) -> str:
    parts, section = [], None
    for where, keys, label in rows:
        if where != section:
            section = where
            parts.append(f"<tr><td colspan='2'><br><b>{html.escape(where)}</b></td></tr>")
        parts.append(f"<tr><td><b>{html.escape(keys)}</b></td><td>{html.escape(label)}</td></tr>")
    return f"<table cellspacing='4'>{''.join(parts)}</table>"


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip(".…")


def _keys(action: QAction) -> str:
    return ", ".join(s.toString(QKeySequence.NativeText) for s in action.shortcuts())

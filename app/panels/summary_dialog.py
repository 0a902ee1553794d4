"""Run ▸ Model summary…: the form's model layer by layer, from `torchwork summary --json`.

Each layer's type, output shape, parameters (trainable / frozen), forward
FLOPs and activation memory at the configured batch size, nested as the
model's modules are, and the totals under them (engine.summary). A big model
takes a while to build and measure, so the command runs in its own process
(app.widgets.json_command) and the window stays responsive; the dialog is not
modal, and Refresh measures the form's configuration as it is now.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from engine.config import RunConfig
from engine.summary import (
    bytes_text,
    flops_text,
    layer_label,
    method_text,
    shape_text,
    totals_lines,
)

from ..widgets.json_command import JsonCommand
from ..widgets.message_bar import MessageBar, MessageLog

SOURCE = "Run ▸ Model summary"
COLUMNS = ("Layer", "Type", "Output shape", "Trainable", "Frozen", "FLOPs", "Activations")
NUMERIC = 3  # columns from here on are numbers, right-aligned
GAP = 18  # pixels between columns: sized to their contents, the numbers would touch


class SummaryDialog(QDialog):
    """Shows one summary at a time; ``measure(config)`` starts a new one."""

    def __init__(self, log: MessageLog | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Model summary")
        self.resize(940, 640)
        self.result: dict | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="torchwork-summary-")
        self.messages = MessageBar(log, scope="summary", source=SOURCE)
        self.heading = QLabel("No summary yet.")
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # an empty last column takes the spare width, so the others stay as wide as their text
        self.spinner = QProgressBar()  # moving while a summary is measured
        self.spinner.setRange(0, 0)
        self.spinner.setTextVisible(False)
        self.spinner.setMaximumHeight(6)
        self.spinner.hide()
        self.model = QStandardItemModel(0, len(COLUMNS) + 1, self)
        self.model.setHorizontalHeaderLabels([*COLUMNS, ""])
        for column in range(NUMERIC, len(COLUMNS)):
            self.model.horizontalHeaderItem(column).setTextAlignment(
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.tree = QTreeView()
        self.tree.setModel(self.model)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.header().setStretchLastSection(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.totals = QFormLayout()
        self.totals.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Measure the form's configuration as it is now")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.refresh_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.messages)
        layout.addWidget(self.heading)
        layout.addWidget(self.spinner)
        layout.addWidget(self.tree, 1)
        layout.addLayout(self.totals)
        layout.addWidget(buttons)

        self.command = JsonCommand(self)
        self.command.progress.connect(self._progress)
        self.command.finished.connect(self.show_result)
        self.command.failed.connect(self._fail)

    def measure(self, config: RunConfig, workspace=None) -> None:
        """Summarize ``config`` in a `torchwork summary` process (one still running ends);
        ``workspace`` holds the run that model.init may name (default: the user's)."""
        path = Path(self._folder.name) / "run.toml"
        config.save(path)
        self.messages.clear_own()
        self.heading.setText(f"Measuring model.arch={config.model.arch!r} at batch "
                             f"{config.data.batch_size}…")
        self._set_busy(True)
        where = ["--workspace", str(workspace)] if workspace is not None else []
        self.command.start(["summary", str(path), "--json", *where])

    def busy(self) -> bool:
        return self.command.running()

    def show_error(self, text: str) -> None:
        """A problem in the dialog's own bar (it stays in View ▸ Messages too)."""
        self.messages.show_message(text, "error")
        self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.spinner.setVisible(busy)
        self.refresh_button.setEnabled(not busy)

    def _progress(self, line: str) -> None:
        self.heading.setText(line)

    def _fail(self, text: str) -> None:
        self.heading.setText("No summary: the model could not be measured." if self.result is None
                             else "The model could not be measured: the table below is the "
                                  "previous configuration's.")
        self.show_error(text)

    def show_result(self, result: dict) -> None:
        """Fill the tree (nested as the model's modules) and the totals from ``result``."""
        self.result = result
        self._set_busy(False)
        self.model.removeRows(0, self.model.rowCount())
        parents: dict[str, QStandardItem] = {}
        for row in result["layers"]:
            items = self._items(row)
            name = row["name"]
            parent = parents.get(name.rpartition(".")[0]) if name else None
            (parent or self.model.invisibleRootItem()).appendRow(items)
            parents[name] = items[0]
        self.tree.expandAll()
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
            self.tree.setColumnWidth(column, self.tree.columnWidth(column) + GAP)
        self.heading.setText(
            f"model.arch={result['arch']!r}: input {shape_text(result['input_shape'])} per "
            f"sample, batch {result['batch_size']}; measured on "
            f"{method_text(result['method'])}. Parameters and FLOPs are each layer's own; "
            f"activations are its outputs at this batch.")
        while self.totals.rowCount():
            self.totals.removeRow(0)
        for line in totals_lines(result):
            label, _, value = line.partition(": ")
            text = QLabel(value)
            text.setWordWrap(True)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.totals.addRow(f"{label}:", text)

    @staticmethod
    def _items(row: dict) -> list[QStandardItem]:
        numbers = (f"{row['trainable']:,}" if row["trainable"] else "–",
                   f"{row['frozen']:,}" if row["frozen"] else "–",
                   flops_text(row["flops"]) if row["flops"] else "–",
                   bytes_text(row["activation_bytes"]) if row["activation_bytes"] else "–")
        name = layer_label(row).rpartition(".")[2] if row["name"] else layer_label(row)
        texts = (name, row["type"], shape_text(row["output_shape"]), *numbers)
        items = [QStandardItem(text) for text in texts]
        items[0].setToolTip(layer_label(row))
        for item in items[NUMERIC:]:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if not row["leaf"]:  # a container: its layers are under it
            font = QFont()
            font.setItalic(True)
            items[1].setFont(font)
        return items

    def done(self, result: int) -> None:
        """Closing ends a summary still running and removes its config copy."""
        self.command.cancel()
        self._folder.cleanup()
        super().done(result)


class ModelSummaryAction(QObject):
    """Run ▸ Model summary…: one dialog, measuring the form's configuration when asked.

    ``config`` gives the form's configuration and ``check`` its problems (the
    first one is shown instead of measuring a configuration the run would refuse);
    ``workspace`` is the window's (model.init may name one of its runs).
    """

    def __init__(self, config: Callable[[], RunConfig], check: Callable[[], list[str]],
                 log: MessageLog | None, parent: QWidget, workspace=None):
        super().__init__(parent)
        self._config, self._check, self._log, self._parent = config, check, log, parent
        self._workspace = workspace
        self.dialog: SummaryDialog | None = None

    def show(self) -> None:
        if self.dialog is None:
            self.dialog = SummaryDialog(self._log, self._parent)
            self.dialog.finished.connect(self._closed)
            self.dialog.refresh_button.clicked.connect(self.refresh)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        self.refresh()

    def refresh(self) -> None:
        problems = self._check()
        if problems:
            self.dialog.show_error(f"Cannot summarize this configuration: {problems[0]}")
            return
        self.dialog.measure(self._config(), self._workspace)

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.close()

    def _closed(self) -> None:
        self.dialog.deleteLater()
        self.dialog = None

"""The "Find LR…" and "Find batch size…" dialog: `torchwork tune … --json` in its own
process, its curve, its suggestion and reason, and Apply.

The tuner trains (a few hundred steps), so it runs in its own process
(app.widgets.json_command), as the window's runs do: the window stays
responsive and Cancel ends it at once. Its progress lines (stderr) show as
they come; its one JSON object (stdout) is the result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from app.widgets.config_form import ERROR_COLOR
from app.widgets.json_command import JsonCommand
from app.widgets.live_plot import DARK, LIGHT

TITLES = {"lr": "Find learning rate", "batch-size": "Find batch size"}
KEYS = {"lr": "optim.lr", "batch-size": "data.batch_size"}


class TuneDialog(QDialog):
    """Runs one tuner on ``config`` and offers its suggestion.

    Signals: ``applied(key, value)`` when Apply is pressed (the form sets the field).
    """

    applied = Signal(str, object)

    def __init__(self, kind: str, config, *, parent=None):
        super().__init__(parent)
        self.kind, self.key = kind, KEYS[kind]
        self.setWindowTitle(TITLES[kind])
        self.resize(620, 460)
        self.result: dict | None = None
        self.value = None
        self._folder = tempfile.TemporaryDirectory(prefix="torchwork-tune-")
        self._config_path = Path(self._folder.name) / "run.toml"
        config.save(self._config_path)

        self.status = QLabel("Starting…")
        self.status.setWordWrap(True)
        self.chart = pg.PlotWidget()
        self.chart.showGrid(x=True, y=True, alpha=0.2)
        plot = self.chart.getPlotItem()
        if kind == "lr":
            plot.setLogMode(x=True, y=False)
            plot.setLabel("bottom", "learning rate")
            plot.setLabel("left", "training loss")
        else:  # powers of two, evenly spaced and labelled as sizes
            plot.setLabel("bottom", "batch size")
            plot.setLabel("left", "samples / s")
        plot.addLegend(offset=(-10, 10))
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setEnabled(False)
        self.buttons.addButton(self.apply_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.apply_button.clicked.connect(self._apply)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.chart, 1)
        layout.addWidget(self.reason)
        layout.addWidget(self.buttons)
        self.apply_theme(self.palette().window().color().lightness() < 128)  # the app's theme

        self.command = JsonCommand(self)
        self.command.progress.connect(self.status.setText)
        self.command.finished.connect(self._finished)
        self.command.failed.connect(self._fail)

    def apply_theme(self, dark: bool) -> None:
        colours = DARK if dark else LIGHT
        self.chart.setBackground(colours["background"])
        plot = self.chart.getPlotItem()
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setPen(colours["foreground"])
            plot.getAxis(axis).setTextPen(colours["foreground"])
        self._foreground = colours["foreground"]

    # --- the process ------------------------------------------------------------
    def start(self) -> None:
        self.status.setText(f"Running `torchwork tune {self.kind}` on a copy of this run…")
        self.command.start(["tune", self.kind, str(self._config_path), "--json"])

    def _finished(self, result: dict) -> None:
        self.result = result
        self.show_result(result)

    def _fail(self, text: str) -> None:
        self.status.setText("The tuner could not finish.")
        self.reason.setStyleSheet(f"color: {ERROR_COLOR};")
        self.reason.setText(text)
        self.apply_button.setEnabled(False)

    # --- the result -------------------------------------------------------------
    def show_result(self, result: dict) -> None:
        """Draw the curve and the suggestion; Apply becomes available when there is one."""
        plot = self.chart.getPlotItem()
        plot.clear()
        if self.kind == "lr":
            self.value = result.get("suggested_lr")
            lrs = np.asarray(result.get("lrs", []), dtype=float)
            if len(lrs):
                plot.plot(lrs, result["losses"], pen=pg.mkPen("#8aa9c9", width=1),
                          name="loss")
                plot.plot(lrs, result["smoothed"], pen=pg.mkPen("#2f6fba", width=2.5),
                          name="smoothed")
            headline = (f"Suggested learning rate: {self.value:.3g}" if self.value else
                        "No learning rate could be suggested.")
            reason = f"Rule: {result.get('rule', '')}.\n{result.get('reason', '')}."
        else:
            self.value = result.get("suggested")
            trials = [t for t in result.get("trials", []) if t.get("samples_per_s")]
            if trials:
                sizes = [t["batch_size"] for t in trials]
                plot.getAxis("bottom").setTicks([[(float(np.log2(b)), str(b)) for b in sizes]])
                plot.plot(np.log2(sizes),
                          [t["samples_per_s"] for t in trials],
                          pen=pg.mkPen("#2f6fba", width=2.5), symbol="o", symbolSize=7,
                          symbolBrush="#2f6fba", name="throughput")
            headline = (f"Suggested batch size: {self.value}" if self.value else
                        "No batch size could be suggested.")
            reason = f"{result.get('reason', '')}."
        if self.value:
            x = float(np.log10(self.value) if self.kind == "lr" else np.log2(self.value))
            plot.addItem(pg.InfiniteLine(x, angle=90, pen=pg.mkPen("#d9822b", width=2),
                                         label="suggested",
                                         labelOpts={"color": "#d9822b", "position": 0.08}))
        self.status.setText(headline)
        self.reason.setStyleSheet("")
        self.reason.setText(reason)
        self.apply_button.setEnabled(bool(self.value))

    def _apply(self) -> None:
        if self.value:
            value = float(f"{self.value:.3g}") if self.kind == "lr" else int(self.value)
            self.applied.emit(self.key, value)
        self.accept()

    def done(self, result: int) -> None:
        """Closing ends a tuner still running and removes its config copy."""
        self.command.cancel()
        self._folder.cleanup()
        super().done(result)

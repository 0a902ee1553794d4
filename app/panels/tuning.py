"""The configuration form's tuning aids: the memory forecast under the form, and the
"Find LR…" and "Find batch size…" buttons beside their fields.

The forecast (engine.experiments.memory) runs as `torchwork tune memory
--json` in its own process, debounced after edits. The finders run
`torchwork tune … --json` in their own process too (app.panels.tune_dialog),
like every long job of the window.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal
from PySide6.QtWidgets import QLabel, QPushButton

from app.panels.tune_dialog import TuneDialog
from app.widgets.json_command import torchwork_command

DEBOUNCE_MS = 600
BUTTONS = {"optim.lr": ("lr", "Find LR…", "Sweep the learning rate on a copy of this run "
                        "(LR range test) and suggest one"),
           "data.batch_size": ("batch-size", "Find batch size…",
                               "Train a few steps at growing batch sizes, measure the "
                               "throughput of each and suggest the knee")}


class Forecaster(QObject):
    """Forecasts the memory of one training step for the form's config, in its own process.

    ``schedule(cfg)`` restarts a short timer; when it fires, `torchwork tune
    memory --json` runs on the latest config (a run still going for an older one
    is ended first). A process, not a thread: torch's memory tracker hooks every
    module's forward in the whole process while it runs, which would reach
    models the window runs on its own threads (compression, evaluation).
    Signals: ``forecast(text, tooltip)``.
    """

    forecast = Signal(str, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)
        self._config = None
        self._folder = tempfile.TemporaryDirectory(prefix="torchwork-forecast-")
        self._path = Path(self._folder.name) / "run.toml"
        self.process = QProcess(self)
        self.process.finished.connect(self._finished)

    def schedule(self, cfg) -> None:
        self._config = cfg
        self._timer.start()

    def _start(self) -> None:
        cfg = self._config
        if cfg is None:
            return
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.finished.disconnect(self._finished)  # its result is stale
            self.process.kill()
            self.process.waitForFinished(2000)
            self.process.finished.connect(self._finished)
        if cfg.errors() or cfg.file_errors():
            self.forecast.emit("Memory forecast: after the problems above are fixed.", "")
            return
        cfg.save(self._path)
        program, args = torchwork_command(["tune", "memory", str(self._path), "--json"])
        self.process.start(program, args)

    def _finished(self, code: int, status) -> None:
        out = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace").strip()
        err = bytes(self.process.readAllStandardError()).decode("utf-8", "replace").strip()
        if status != QProcess.ExitStatus.NormalExit:
            return
        if code != 0:
            last = err.splitlines()[-1] if err else f"exit code {code}"
            self.forecast.emit(f"Memory forecast: {last.removeprefix('torchwork tune: ')}", "")
            return
        try:
            result = json.loads(out.splitlines()[-1])
        except (ValueError, IndexError):
            self.forecast.emit("Memory forecast unavailable: no result", "")
            return
        parts = "\n".join(f"{k}: {v / 2**20:.2f} MiB" for k, v in result["parts"].items())
        self.forecast.emit(result["summary"], (
            f"torch's memory tracker over fake tensors, two training steps at batch "
            f"{result['batch_size']}; the largest batch is solved from the peak's growth per "
            f"sample ({result['per_sample_bytes']} bytes)\n\nat the peak:\n{parts}"))

    def shutdown(self) -> None:
        """End a forecast under way (the window closes): no process outlives its QProcess."""
        self._timer.stop()
        if self.process.state() != QProcess.ProcessState.NotRunning:
            self.process.finished.disconnect(self._finished)
            self.process.kill()
            self.process.waitForFinished(2000)

    def is_idle(self) -> bool:
        """Whether no forecast is pending or running."""
        return (not self._timer.isActive()
                and self.process.state() == QProcess.ProcessState.NotRunning)


class TuningAids(QObject):
    """The forecast label and the two finder buttons of one ConfigPanel (made once its
    editors exist; the panel places ``label``)."""

    def __init__(self, panel):
        super().__init__(panel)
        self.panel = panel
        self.dialog: TuneDialog | None = None
        self.label = QLabel()
        self.label.setObjectName("memoryForecast")
        self.label.setWordWrap(True)
        self.label.setContentsMargins(8, 4, 8, 0)
        self.label.setEnabled(False)  # muted text: information, nothing to act on
        self.forecaster = Forecaster(self)
        self.forecaster.forecast.connect(self._show)
        self.buttons: dict[str, QPushButton] = {}
        for key, (_kind, text, tip) in BUTTONS.items():
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setProperty("tuneKey", key)
            button.clicked.connect(self._find)
            panel.editor(key).add_extra(button)
            self.buttons[key] = button
        panel.configChanged.connect(self.forecaster.schedule)

    def _show(self, text: str, tip: str) -> None:
        self.label.setText(text)
        self.label.setToolTip(tip)

    def shutdown(self) -> None:
        """The window closes: end the forecast and a finder still running."""
        self.forecaster.shutdown()
        if self.dialog is not None:
            self.dialog.close()

    def refresh(self) -> None:
        """Forecast again (after the form was filled from a file)."""
        self.forecaster.schedule(self.panel.config())

    def _find(self) -> None:
        key = self.sender().property("tuneKey")
        problems = self.panel.check()
        if problems:
            self.panel.show_first_error()
            return
        kind = BUTTONS[key][0]
        self.dialog = TuneDialog(kind, self.panel.config(), parent=self.panel.window())
        self.dialog.applied.connect(self._apply)
        self.dialog.open()
        self.dialog.start()

    def _apply(self, key: str, value) -> None:
        self.panel.set_value(key, value)

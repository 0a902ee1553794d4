"""The Profile menu's Capture… and Export trace…, between the bridge and the Profiler dock.

Kept out of the main window, which only composes menus, toolbar and docks: a
capture touches the bridge, the Profiler dock and the message bar, and which
run it profiles (the one training, or a short dedicated run of the
configuration on show) is decided here, with the capture dialog.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFileDialog, QStatusBar, QWidget

from engine.config import ConfigError
from engine.profiling.options import profiling_config
from engine.workspace.records import default_run_name

from ..bridge import IDLE, PAUSED, RUNNING, TrainingBridge
from ..widgets.capture_dialog import DEDICATED_RUN, CaptureDialog
from ..widgets.message_bar import MessageBar
from ..widgets.run_status import RunStatus
from .config_panel import ConfigPanel
from .profiler_panel import EXPORT_SOURCE, ProfilerPanel
from .training_plots import TrainingPlots

CAPTURE = "Profile ▸ Capture"


class ProfileActions(QObject):
    """``valid()`` says whether the configuration on show may start a run; it is asked
    at each Capture…, not copied, as the window keeps that flag from the config panel."""

    def __init__(self, *, bridge: TrainingBridge, profiler: ProfilerPanel,
                 profiler_dock: QDockWidget, config_panel: ConfigPanel,
                 valid: Callable[[], bool], plots: TrainingPlots, status: RunStatus,
                 messages: MessageBar, status_bar: QStatusBar, settings: QSettings,
                 capture: QAction, export_trace: QAction, parent: QWidget):
        super().__init__(parent)
        self.bridge, self.profiler, self.profiler_dock = bridge, profiler, profiler_dock
        self.config_panel, self._valid = config_panel, valid
        self.plots, self.status = plots, status
        self.messages, self.status_bar, self.settings = messages, status_bar, settings
        self.act_export_trace = export_trace
        self._window = parent  # the dialogs' parent
        self._capturing = False
        capture.triggered.connect(self.capture_dialog)
        export_trace.triggered.connect(self.export_trace_dialog)
        bridge.profileDone.connect(self._on_profile_done)
        bridge.stateChanged.connect(self._on_capture_state)
        profiler.traceShown.connect(self._on_trace_shown)
        self._on_trace_shown(str(profiler.trace or ""))

    def capture_dialog(self) -> None:
        if self._capturing:
            self.messages.show_message("A capture is already being recorded: its trace "
                                       "shows in the Profiler when written.", "info", CAPTURE)
            return
        state = self.bridge.state
        dialog = CaptureDialog(state in (RUNNING, PAUSED), state == IDLE and self._valid(),
                               self._window)
        if not dialog.exec():
            return
        options = dialog.options()
        if dialog.mode() == DEDICATED_RUN:
            self.messages.dismiss()
            self.plots.clear()
            self.status.reset()
            try:
                cfg = profiling_config(self.config_panel.config(), options)
                self.bridge.start(cfg, f"profile-{default_run_name(cfg)}", kind="profile")
            except ConfigError as exc:
                self.messages.show_message(str(exc), "error", CAPTURE)
                return
        self.bridge.profile(options)
        self._capturing = True
        self.status_bar.showMessage(f"Profiling {options.steps} steps "
                                    f"({options.active} recorded)…", 10000)

    def _on_profile_done(self, result) -> None:
        self._capturing = False
        if result.trace is None:
            self.messages.show_message(f"The profiler wrote no trace: {result.error}", "error",
                                       CAPTURE)
            return
        self.profiler_dock.show()
        self.profiler_dock.raise_()
        self.profiler.capture_written(result.trace)
        if result.partial:
            self.messages.show_message("The run ended before all profiled steps were "
                                       "recorded: the Profiler shows the partial trace.",
                                       "warning", CAPTURE)

    def _on_capture_state(self, state: str) -> None:
        if state == IDLE:  # a run that could not even build answers no capture
            self._capturing = False

    def _on_trace_shown(self, path: str) -> None:
        """Export trace… exports the trace on show: offered only while there is one."""
        self.act_export_trace.setEnabled(bool(path))
        self.act_export_trace.setToolTip(
            "Save the trace on show for Perfetto / chrome://tracing" if path else
            "No capture on show: pick one in the Profiler or record one (Profile ▸ Capture…)")

    def export_trace_dialog(self) -> None:
        if self.profiler.trace is None:
            self.messages.show_message("No trace on show: pick a capture in the Profiler "
                                       "first.", "info", EXPORT_SOURCE)
            return
        name = self.profiler.trace.name.split(".pt.trace.json")[0] + ".json.gz"
        path, _ = QFileDialog.getSaveFileName(self._window, "Export trace for Perfetto",
                                              str(Path(self.settings.value("last_dir", ""))
                                                  / name), "Chrome traces (*.json.gz)")
        if path:
            self.profiler.export(path)

"""The main window: menus, toolbar, docks and status bar around the bridge and the panels.

It wires signals and keeps settings; the panels show, the bridge runs. Every
action here has a command underneath (`torchwork run`, `torchwork resume`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from engine.config import ConfigError, RunConfig

from . import theme
from .bridge import IDLE, PAUSED, RUNNING, STARTING, STOPPING, TrainingBridge
from .deferred import AfterFirstPaint, placeholder
from .dialogs import TextDialog, about_text, shortcut_rows, shortcuts_html
from .panels import crossval_view
from .panels.augment_preview import AugmentPreview
from .panels.config_panel import ConfigPanel
from .panels.ranks_dialog import RanksDialog
from .panels.run_follow import RunFollower
from .panels.summary_dialog import ModelSummaryAction
from .panels.training_plots import TrainingPlots
from .widgets.message_bar import MessageBar, MessageLog, with_bar
from .widgets.message_history import MessageHistory
from .widgets.run_status import RunStatus
from .window_files import FilesAndRuns

STATE_TEXT = {IDLE: "Ready", STARTING: "Preparing the run…", RUNNING: "Training",
              PAUSED: "Paused", STOPPING: "Stopping after this step…"}


class MainWindow(FilesAndRuns, QMainWindow):
    """``defer_docks``: build the Hardware, Profiler and Compression docks (and import
    torch) after the first frame is on screen, as `torchwork` does; see app/deferred.py."""

    def __init__(self, config: RunConfig | None = None, *, workspace_dir=None,
                 settings: QSettings | None = None, defer_docks: bool = False):
        super().__init__()
        self.settings = settings or QSettings("Torchwork", "Torchwork")
        self._valid = True
        self.history: MessageHistory | None = None
        self.workspace_dir = workspace_dir
        self.bridge = TrainingBridge(workspace_dir, self)
        self.setWindowTitle("Torchwork")
        self.resize(1400, 860)
        self.setDockNestingEnabled(True)
        self.theme = self.settings.value("theme", "system")
        self.dark = theme.apply(QApplication.instance(), self.theme)

        self.config_panel = ConfigPanel(config or self._last_config())
        self.plots = TrainingPlots()
        self.log = MessageLog(self)  # every dock's message bar shows it: one place to post
        self.messages = MessageBar(self.log)  # the Training dock's; posts for the whole window
        self.status = RunStatus()
        self.follower = RunFollower(workspace_dir, self.plots, self)  # File ▸ Open run, live
        self.follower.ended.connect(self._on_follow_ended)
        self.statusBar().addPermanentWidget(self.status, 1)
        training = QWidget()
        layout = QVBoxLayout(training)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.messages)
        layout.addWidget(self.plots, 1)
        self.config_dock = self._dock("Run configuration", "config", self.config_panel,
                                      Qt.LeftDockWidgetArea)
        self.training_dock = self._dock("Training", "training", training,
                                        Qt.RightDockWidgetArea)
        self.resizeDocks([self.config_dock, self.training_dock], [400, 1000], Qt.Horizontal)
        # Hardware, Profiler and Compression are tabs beside Training: at the default size
        # six training plots and eight hardware plots one above the other would each be
        # too small to read. A dock's tab can be dragged out, below the plots, say.
        # Their panels come in load_docks.
        self.runs_dock = self._dock("Runs", "runs", placeholder(), Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.runs_dock)  # app/panels/runs_panel.py
        self.hardware_dock = self._dock("Hardware", "hardware", placeholder(),
                                        Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.hardware_dock)
        self.profiler_dock = self._dock("Profiler", "profiler", placeholder(),
                                        Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.profiler_dock)
        self.compression_dock = self._dock("Compression", "compression", placeholder(),
                                           Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.compression_dock)
        self.evaluation_dock = self._dock("Evaluation", "evaluation", placeholder(),
                                          Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.evaluation_dock)
        self.search_dock = self._dock("Search", "search", placeholder(), Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.training_dock, self.search_dock)
        self.advisor_dock = self._dock("Advisor", "advisor", placeholder(),
                                       Qt.RightDockWidgetArea)  # app/panels/advisor_panel.py
        self.tabifyDockWidget(self.training_dock, self.advisor_dock)
        self.training_dock.raise_()
        # live plots wait while their tab is behind another, and draw when it comes forward
        self.training_dock.visibilityChanged.connect(self.plots.set_shown)
        self.setCentralWidget(None)

        self._make_actions()
        self._make_menus()
        self._make_toolbar()
        self._wire()
        self.crossval = crossval_view.install(self)  # a CV group's folds and summary
        self._apply_icons()
        self.plots.apply_theme(self.dark)
        self._restore()
        self.docks_loader = AfterFirstPaint(self, self.load_docks)
        self._on_state(IDLE)
        errors = self.config_panel.errors()
        self._on_validity(not errors, next(iter(errors), ""))
        if not defer_docks:
            self.docks_loader.run()

    def load_docks(self) -> None:
        """The docks behind the Training tab, and the actions they serve."""
        from .panels.advisor_panel import install as install_advisor
        from .panels.compression_panel import CompressionPanel
        from .panels.evaluation_panel import EvaluationPanel
        from .panels.export_dialog import Exporter
        from .panels.hardware_panel import HardwarePanel
        from .panels.profiler_panel import ProfilerPanel
        from .panels.runs_actions import install as install_runs
        from .panels.search_panel import install as install_search

        self.exporter = Exporter(self.workspace_dir, self)
        self.hardware = HardwarePanel()
        self.follower.hardware = self.hardware
        self.hardware_bar = MessageBar(self.log, scope="hardware")
        self._set_panel(self.hardware_dock, with_bar(self.hardware, self.hardware_bar))
        self.profiler = self._set_panel(self.profiler_dock, ProfilerPanel(log=self.log))
        self.compression = self._set_panel(
            self.compression_dock,
            CompressionPanel(self.workspace_dir, self.bridge, log=self.log))
        self.evaluation = self._set_panel(self.evaluation_dock,
                                          EvaluationPanel(self.workspace_dir, log=self.log))
        self.hardware_dock.visibilityChanged.connect(self.hardware.set_shown)
        self.act_export_compressed.triggered.connect(self.compression.export_dialog)
        self.act_tensorboard.triggered.connect(self.profiler.open_tensorboard)
        self._wire_docks()
        self.runs = install_runs(self)
        self.search = install_search(self)
        self.advisor = install_advisor(self)
        for panel in (self.hardware, self.profiler, self.compression, self.evaluation):
            panel.apply_theme(self.dark)
        self._on_state(self.bridge.state)

    # --- construction --------------------------------------------------------
    @staticmethod
    def _set_panel(dock: QDockWidget, panel: QWidget) -> QWidget:
        dock.widget().deleteLater()
        dock.setWidget(panel)
        return panel

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{name}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                         | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        """``slot`` None: the object that runs the action connects it (see ``_wire``)."""
        action = QAction(text, self)
        if slot is not None:
            action.triggered.connect(slot)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip or text.replace("&", "").rstrip("…"))
        return action

    def _make_actions(self) -> None:
        a = self._action
        self.act_new = a("&New run", self.new_run, QKeySequence.New, "Start over from defaults")
        self.act_open = a("&Open config…", self.open_config_dialog, QKeySequence.Open)
        self.act_save = a("&Save config as…", self.save_config_dialog, QKeySequence.SaveAs)
        self.act_open_run = a("Open &run…", self.open_run_dialog, "Ctrl+Shift+O",
                              "Show the curves of a run from the workspace")
        self.act_export_model = a("&Export trained model…", None, "Ctrl+E",
                                  "Export a run's model as safetensors, .pt2 or ONNX, verified")
        self.act_predict = a("&Predict…", None, None,
                             "Run a trained model on a new table or image folder, to a CSV")
        self.act_export_compressed = a(
            "Export &compressed model…", None, None,
            "Export the candidate picked in the Compression panel's table or sweep chart")
        self.act_export_compressed.setEnabled(False)
        self.act_quit = a("&Quit", self.close, QKeySequence.Quit)
        self.act_start = a("&Start", self.start_run, "F5", "Start training this configuration")
        self.act_start_ranks = a("Start on &N processes…", self.start_ranks_dialog, None,
                                 "Train this configuration on several local processes "
                                 "(torchrun, DistributedDataParallel)")
        self.act_pause = a("&Pause", self.bridge.pause, "F6", "Pause after the current step")
        self.act_resume = a("&Resume", self.bridge.resume, "F7", "Continue the paused run")
        self.act_stop = a("S&top", self.bridge.stop, "Shift+F5",
                          "Stop after the current step and write a checkpoint")
        self.act_resume_ckpt = a("Resume from &checkpoint…", self.resume_checkpoint_dialog,
                                 "Ctrl+F5", "Continue a stopped or interrupted run")
        self.act_preview_augment = a("Preview &augmentation…", None, None,
                                     "A grid of this configuration's augmented training "
                                     "samples")
        self.act_model_summary = a("&Model summary…", None, None,
                                   "Per layer: output shape, parameters, FLOPs and activation "
                                   "memory of this configuration's model")
        self.act_capture = a("&Capture…", None, "Ctrl+Shift+P",
                             "Profile steps of the current run or a short run of this config")
        self.act_export_trace = a("&Export trace…", None, None,
                                  "Save the trace on show for Perfetto / chrome://tracing")
        self.act_tensorboard = a("Open in &TensorBoard", None, None,
                                 "Open the run's captures in TensorBoard's profiler plugin")
        self.act_messages = a("&Messages…", self.show_messages, "Ctrl+Shift+M",
                              "Every message of this session: time, level, the action, text")
        self.act_shortcuts = a("&Keyboard shortcuts", self.show_shortcuts, "F1")
        self.act_about = a("&About Torchwork", self.show_about)
        self.theme_group = QActionGroup(self)
        self.theme_actions = {}
        for name in theme.THEMES:
            act = QAction(name.capitalize(), self, checkable=True)
            act.setData(name)
            act.setChecked(name == self.theme)
            self.theme_group.addAction(act)
            self.theme_actions[name] = act
        self.theme_group.triggered.connect(self._theme_chosen)

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addActions([self.act_new, self.act_open, self.act_save])
        self.recent_menu = file.addMenu("Recent configs")
        self.recent_menu.triggered.connect(self._recent_chosen)
        file.addSeparator()
        file.addAction(self.act_open_run)
        file.addAction(self.act_export_model)
        file.addAction(self.act_export_compressed)
        file.addAction(self.act_predict)
        file.setToolTipsVisible(True)
        file.addSeparator()
        file.addAction(self.act_quit)
        run = bar.addMenu("&Run")
        run.addActions([self.act_start, self.act_start_ranks, self.act_pause, self.act_resume,
                        self.act_stop])
        run.addSeparator()
        run.addAction(self.act_resume_ckpt)
        run.addSeparator()
        run.addAction(self.act_preview_augment)
        run.addAction(self.act_model_summary)
        profile = bar.addMenu("&Profile")
        profile.addActions([self.act_capture, self.act_export_trace, self.act_tensorboard])
        view = bar.addMenu("&View")
        for dock in (self.config_dock, self.training_dock, self.profiler_dock):
            view.addAction(dock.toggleViewAction())
        view.addAction(self.runs_dock.toggleViewAction())
        view.addAction(self.hardware_dock.toggleViewAction())
        view.addAction(self.compression_dock.toggleViewAction())
        view.addAction(self.evaluation_dock.toggleViewAction())
        view.addAction(self.search_dock.toggleViewAction())
        view.addAction(self.advisor_dock.toggleViewAction())
        view.addSeparator()
        view.addAction(self.act_messages)
        themes = view.addMenu("Theme")
        themes.addActions(list(self.theme_actions.values()))
        help_menu = bar.addMenu("&Help")
        help_menu.addActions([self.act_shortcuts, self.act_about])
        self._fill_recent()

    def _make_toolbar(self) -> None:
        tools = self.addToolBar("Run")
        tools.setObjectName("toolbar-run")
        tools.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        tools.addActions([self.act_start, self.act_pause, self.act_resume, self.act_stop])
        tools.addSeparator()
        tools.addActions([self.act_resume_ckpt, self.act_open_run])

    def _apply_icons(self) -> None:
        icons = {self.act_new: "mdi6.file-outline", self.act_open: "mdi6.folder-open-outline",
                 self.act_save: "mdi6.content-save-outline", self.act_open_run: "mdi6.chart-line",
                 self.act_export_model: "mdi6.package-variant-closed",
                 self.act_predict: "mdi6.table-arrow-right",
                 self.act_export_compressed: "mdi6.package-down",
                 self.act_quit: "mdi6.exit-to-app", self.act_start: ("mdi6.play", "#2da44e"),
                 self.act_start_ranks: ("mdi6.play-box-multiple-outline", "#2da44e"),
                 self.act_pause: "mdi6.pause", self.act_resume: ("mdi6.play-pause", "#2da44e"),
                 self.act_stop: ("mdi6.stop", "#d1242f"),
                 self.act_resume_ckpt: "mdi6.history", self.act_shortcuts: "mdi6.keyboard",
                 self.act_messages: "mdi6.message-text-clock-outline",
                 self.act_about: "mdi6.information-outline",
                 self.act_capture: "mdi6.speedometer", self.act_export_trace: "mdi6.export",
                 self.act_tensorboard: "mdi6.open-in-new"}
        for action, spec in icons.items():
            if isinstance(spec, tuple):  # a fixed tint that reads in both themes
                action.setIcon(qta.icon(spec[0], color=spec[1], color_disabled="#8c959f"))
            else:
                action.setIcon(theme.icon(spec))

    def _wire(self) -> None:
        b = self.bridge
        b.stateChanged.connect(self._on_state)
        b.runCreated.connect(self._on_run_created)
        b.runStarted.connect(self.plots.on_run_started)
        b.runStarted.connect(self.status.on_run_started)
        b.metricsBatch.connect(self.plots.on_metrics_batch)
        b.metricsBatch.connect(self.status.on_metrics_batch)
        b.epochEnded.connect(self.plots.on_epoch)
        b.runEnded.connect(self.plots.on_run_ended)
        b.energyMeasured.connect(self.status.on_energy)
        b.runEnded.connect(self.status.on_run_ended)
        b.exceptionRaised.connect(self._on_exception)
        b.buildFailed.connect(self._on_build_failed)
        b.internalError.connect(self._on_internal_error)
        self.config_panel.validityChanged.connect(self._on_validity)
        self.augment_preview = AugmentPreview(self.config_panel.config, self.messages, self)
        self.act_preview_augment.triggered.connect(self.augment_preview.preview)
        self.model_summary = ModelSummaryAction(self.config_panel.config, self.config_panel.check,
                                                self.log, self, self.workspace_dir)
        self.act_model_summary.triggered.connect(self.model_summary.show)

    def _wire_docks(self) -> None:
        from .panels.export_dialog import ExportActions
        from .panels.predict_dialog import PredictActions
        from .panels.profile_actions import ProfileActions

        b = self.bridge
        b.runStarted.connect(self.hardware.on_run_started)
        self.export_actions = ExportActions(
            exporter=self.exporter, action=self.act_export_model, messages=self.messages,
            status_bar=self.statusBar(), settings=self.settings,
            confirm=lambda title, text: self.confirm(title, text), parent=self)
        b.runEnded.connect(self.export_actions.refresh)
        self.predict_actions = PredictActions(
            workspace_dir=self.workspace_dir, action=self.act_predict, messages=self.messages,
            settings=self.settings, follows=self.export_actions, parent=self)
        b.hardwareSampled.connect(self.hardware.on_sample)
        self.profile_actions = ProfileActions(
            bridge=b, profiler=self.profiler, profiler_dock=self.profiler_dock,
            config_panel=self.config_panel, valid=lambda: self._valid, plots=self.plots,
            status=self.status, messages=self.messages, status_bar=self.statusBar(),
            settings=self.settings, capture=self.act_capture,
            export_trace=self.act_export_trace, parent=self)
        for bar in self.findChildren(MessageBar):  # the docks' bars exist now
            bar.historyRequested.connect(self.show_messages)
        self.compression.studentRequested.connect(self.distil_into_configured)
        self.compression.selectionChanged.connect(self.act_export_compressed.setEnabled)
        b.runEnded.connect(self.compression.refresh_runs)
        b.runEnded.connect(self.evaluation.on_run_ended)

    # --- run control -------------------------------------------------------------
    def start_run(self) -> None:
        cfg = self._config_to_start()
        if cfg is not None:
            self._start(self.bridge.start, cfg)

    def start_ranks_dialog(self) -> None:
        """Run ▸ Start on N processes: `torchwork run --nproc-per-node N`, followed here."""
        cfg = self._config_to_start()
        if cfg is None:
            return
        dialog = RanksDialog(cfg.train.device, cfg.data.batch_size, self)
        if dialog.exec():
            self._start(self.bridge.start_ranks, cfg, dialog.processes)

    def _config_to_start(self) -> RunConfig | None:
        if self.bridge.busy:
            return None
        errors = self.config_panel.check()  # again: a file may have gone since the last edit
        if errors:
            self.messages.show_message(f"Cannot start: {errors[0]}", "error")
            return None
        return self.config_panel.config()

    def _start(self, start, cfg: RunConfig, *args) -> None:
        self.follower.stop()
        self.messages.dismiss()
        self.plots.clear()
        self.status.reset()
        self.config_panel.mark_clean()
        self.settings.setValue("last_config", cfg.to_toml())
        try:
            start(cfg, *args)
        except ConfigError as exc:
            self.messages.show_message(str(exc), "error")

    def distil_into_configured(self, teacher: int, alpha: float, temperature: float) -> None:
        """The Compression dock's "Distil into the configured model": the form's model trains
        as the student of run ``teacher``, an ordinary run with distill.* set in its config."""
        cfg = self.config_panel.config()
        cfg.distill.teacher, cfg.distill.alpha = str(teacher), alpha
        cfg.distill.temperature = temperature
        self.config_panel.set_config(cfg)
        if self.bridge.busy:
            self.messages.show_message("A run is training: the student is set up in the form; "
                                       "press Start when the run has ended.", "info")
            return
        self.start_run()

    def resume_checkpoint_dialog(self) -> None:
        run_id = self._pick_run("Resume from checkpoint", "Resume",
                                ("stopped", "interrupted", "failed"))
        if run_id is None or not self.open_run(run_id):
            return
        self.bridge.resume_run(run_id)

    def _on_state(self, state: str) -> None:
        idle = state == IDLE
        self.act_start.setEnabled(idle and self._valid)
        self.act_start_ranks.setEnabled(idle and self._valid)
        self.act_pause.setEnabled(state == RUNNING)
        self.act_resume.setEnabled(state == PAUSED)
        self.act_stop.setEnabled(state in (STARTING, RUNNING, PAUSED))
        self.act_resume_ckpt.setEnabled(idle)
        for action in (self.act_new, self.act_open, self.act_open_run):
            action.setEnabled(idle)
        self.config_panel.set_read_only(not idle)
        if self.docks_loader.done:  # else load_docks calls this again
            self._hardware_state(state)
        self.status.set_state(STATE_TEXT.get(state, state), idle=idle)

    def _hardware_state(self, state: str) -> None:
        if state == STARTING:
            self.hardware.begin_run()
            self.hardware.set_interval(self.config_panel.config().monitor.interval)
        elif state == IDLE:
            self.hardware.end_run()
        self.hardware.training = state == RUNNING  # not paused: an idle GPU is expected then

    def _on_validity(self, valid: bool, reason: str) -> None:
        self._valid = valid
        self.act_start.setEnabled(valid and self.bridge.state == IDLE)
        self.act_start_ranks.setEnabled(valid and self.bridge.state == IDLE)
        self.act_start.setToolTip("Start training this configuration (F5)" if valid
                                  else f"Fix the configuration first: {reason}")

    def _on_exception(self, e) -> None:
        self.messages.show_message(e.message, "error", "Run")

    def _on_build_failed(self, text: str) -> None:
        self.messages.show_message(f"The run could not start: {text}", "error", "Run")

    def _on_internal_error(self, text: str, _traceback: str) -> None:
        self.messages.show_message(f"The run ended with an error while finishing: {text}",
                                   "error", "Run")

    def _on_run_created(self, info) -> None:
        self.export_actions.current_run = info.run_id
        self.setWindowTitle(f"Torchwork — run {info.run_id} {info.name}")
        self.profiler.set_run(info.folder)
        self.evaluation.set_run(info.run_id, info.folder, info.name)

    def _theme_chosen(self, action: QAction) -> None:
        self.set_theme(action.data())

    # --- view, help, settings ---------------------------------------------------------
    def set_theme(self, name: str) -> None:
        self.theme = name
        self.theme_actions[name].setChecked(True)
        self.dark = theme.apply(QApplication.instance(), name, self)
        self.plots.apply_theme(self.dark)
        self.hardware.apply_theme(self.dark)
        self.profiler.apply_theme(self.dark)
        self.compression.apply_theme(self.dark)
        self.evaluation.apply_theme(self.dark)
        self.search.apply_theme(self.dark)
        self.config_panel.apply_theme(self.dark)
        self.settings.setValue("theme", name)

    def show_messages(self) -> None:
        """View ▸ Messages (or a bar's history button): the log, kept open beside the window."""
        if self.history is None:
            self.history = MessageHistory(self.log, self)
        self.history.show()
        self.history.raise_()
        self.history.activateWindow()

    def show_shortcuts(self) -> None:
        TextDialog("Keyboard shortcuts", shortcuts_html(shortcut_rows(self)), self).exec()

    def show_about(self) -> None:
        TextDialog("About Torchwork", about_text(), self).exec()

    def _last_config(self) -> RunConfig:
        text = self.settings.value("last_config", "")
        if text:
            try:
                return RunConfig.from_toml(text, validate=False)
            except ConfigError:
                pass
        return RunConfig()

    def _restore(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window_state")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("theme", self.theme)
        self.settings.setValue("last_config", self.config_panel.config().to_toml())
        self.settings.sync()

    def confirm(self, title: str, text: str) -> bool:
        """Ask a yes/no question (tests replace this)."""
        answer = QMessageBox.question(self, title, text, QMessageBox.Yes | QMessageBox.No,
                                      QMessageBox.No)
        return answer == QMessageBox.Yes

    def closeEvent(self, event) -> None:
        if self.bridge.busy:
            if not self.confirm("Stop the run?", "A run is in progress. Stop it after the "
                                "current step (a checkpoint is written) and quit?"):
                event.ignore()
                return
            QApplication.setOverrideCursor(Qt.WaitCursor)
            try:
                self.bridge.stop()
                self.bridge.wait()
            finally:
                QApplication.restoreOverrideCursor()
        self.hardware.stop_sampling()
        self.profiler.tensorboard.stop()
        self.exporter.wait()
        self.predict_actions.wait()
        self.compression.wait()
        self.evaluation.wait()
        self.runs.close_reader()
        self.follower.stop()
        self.search.shutdown()
        self.advisor.shutdown()
        self.config_panel.tuning.shutdown()
        self.model_summary.shutdown()
        self.save_settings()
        event.accept()


def route_exceptions(window: MainWindow) -> None:
    """Unexpected errors in the window's code go to its message bar and a log file,
    not as a traceback to the terminal; the window stays usable."""
    import logging
    import traceback

    from platformdirs import user_log_dir

    folder = Path(user_log_dir("torchwork"))
    folder.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=folder / "app.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")

    def hook(kind, value, tb):
        logging.error("unexpected error\n%s", "".join(traceback.format_exception(kind, value, tb)))
        window.messages.show_message(f"Unexpected error: {kind.__name__}: {value} (details in "
                                     f"{folder / 'app.log'})", "error")

    sys.excepthook = hook


def show_later(window: MainWindow, path: str | None) -> None:
    """Open a config file once the event loop runs (errors then show in the window)."""
    if path:
        window.pending_config = path
        QTimer.singleShot(0, window.open_pending_config)

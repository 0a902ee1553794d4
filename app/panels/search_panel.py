"""The Search dock: a hyperparameter search of the form's configuration, and views of a study.

Start writes the form's configuration with the dock's [search] section to a
TOML file and runs `torchwork search FILE --json` on it as a process of its own
(app/panels/search_process.py): the same command a person runs on a server.
The views read the study with Optuna on a thread (app/panels/search_study.py),
after each trial the search reports and every few seconds while it runs, so a
study written by workers elsewhere (`--join`) shows too. Open study… views any
study (a storage URL and a name). Train best puts the best trial's
configuration in the form; Export best opens File ▸ Export for its run.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.config import RunConfig
from engine.run_files import dataset_name

from ..widgets.message_bar import MessageBar, MessageLog
from .search_plots import HistoryPlot, ImportancePlot, IntermediatePlot, ParallelPlot, SlicePlot
from .search_process import SearchProcess
from .search_space_form import SearchSpaceForm
from .search_spec import SearchSpec, SpecError, search_toml, spec_from_toml
from .search_study import StudyReader, StudySnapshot, default_storage
from .search_trials import OpenStudyDialog, TrialsTable

SOURCE = "Search"
POLL_MS = 3000  # while a search runs, the study is read again this often


class SearchPanel(QWidget):
    """``config``: returns the form's RunConfig. ``trainRequested(run_id)`` and
    ``exportRequested(run_id)`` ask the window to act on a trial's run."""

    trainRequested = Signal(int)
    exportRequested = Signal(int)
    studyShown = Signal()  # after the views show a read of the study

    def __init__(self, workspace_dir, config: Callable[[], RunConfig], *,
                 log: MessageLog | None = None, parent=None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self.launcher = [sys.executable, "-m", "app"]  # `torchwork` (tests replace it)
        self._config = config
        self.study: tuple[str, str] | None = None  # (storage, name) on show
        self.snapshot: StudySnapshot | None = None
        self._reader: StudyReader | None = None
        self._read_again = False
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.command: list[str] = []
        self.finished_trials = 0
        self.search_ended = False  # the progress line then tells how the search ended
        self._adopted: dict | None = None  # the configuration's [search] last shown

        self.messages = MessageBar(log, scope="search", source=SOURCE)
        self.search = SearchProcess(self)
        self.search.event.connect(self._on_event)
        self.search.finished.connect(self._on_finished)
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self.refresh)

        self.form = SearchSpaceForm(config)
        self.start_button = self._button("Start", "Search this configuration over the space "
                                         "(as `torchwork search FILE`)", self.start)
        self.stop_button = self._button("Stop", "Stop the search: running trials end as "
                                        "after Ctrl+C in a terminal", self.stop)
        self.open_button = self._button("Open study…", "View a study from a storage URL",
                                        self.open_study_dialog)
        self.load_button = self._button("Load…", "Take the [search] section of a TOML file",
                                        self.load_dialog)
        self.save_button = self._button("Save…", "Save the configuration with this [search] "
                                        "section, for `torchwork search FILE`",
                                        self.save_dialog)
        self.train_best_button = self._button("Train best", "Put the best trial's "
                                              "configuration in the form", self.train_best)
        self.export_best_button = self._button("Export best", "Export the best trial's "
                                               "model (File ▸ Export)", self.export_best)
        self.progress = QLabel("No study yet: set a space and press Start, or open a study.")
        self.progress.setWordWrap(True)

        self.trials = TrialsTable()
        self.trials.runRequested.connect(self.trainRequested)
        self.history = HistoryPlot()
        self.parallel = ParallelPlot()
        self.importance = ImportancePlot()
        self.slice = SlicePlot()
        self.intermediate = IntermediatePlot()
        self.views = (self.trials, self.history, self.parallel, self.importance, self.slice,
                      self.intermediate)
        self.tabs = QTabWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        scroll.setFrameShape(QScrollArea.NoFrame)
        for widget, label in ((scroll, "Search space"), (self.trials, "Trials"),
                              (self.history, "History"),
                              (self.parallel, "Parallel coordinates"),
                              (self.importance, "Importances"), (self.slice, "Slice"),
                              (self.intermediate, "Intermediate values")):
            self.tabs.addTab(widget, label)

        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.open_button, self.load_button,
                       self.save_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.train_best_button)
        buttons.addWidget(self.export_best_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.messages)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.tabs, 1)
        self._update_buttons()
        self.apply_theme(False)

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    # --- starting and stopping a search ------------------------------------------------
    @property
    def running(self) -> bool:
        return self.search.running

    def workspace(self) -> Path:
        from engine.workspace.store import default_workspace_dir

        return Path(self.workspace_dir) if self.workspace_dir else default_workspace_dir()

    def default_study(self, cfg: RunConfig) -> str:
        arch = "custom" if cfg.model.arch.startswith("custom:") else cfg.model.arch
        return f"{dataset_name(cfg.data.dataset)}-{arch}"

    def prepare(self) -> tuple[list[str], Path] | None:
        """The command line of a search of the form's configuration and space, with the
        TOML file it reads written; None, with the reason in the message bar, when either
        has a problem."""
        cfg = self._config()
        problems = cfg.errors()
        try:
            spec = self.form.spec()
            problems += spec.errors()
        except SpecError as exc:
            problems += exc.messages
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.messages.show_message(f"Cannot start the search: {problems[0]}{more}", "error")
            return None
        if not spec.study:
            spec.study = self.default_study(cfg)
            self.form.study.setText(spec.study)
        storage = spec.storage or default_storage(self.workspace_dir)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="torchwork-search-")
        path = Path(self._tmp.name) / f"{_file_stem(spec.study)}.toml"
        path.write_text(search_toml(cfg, spec), encoding="utf-8")
        argv = [*self.launcher, "search", str(path), "--study", spec.study,
                "--storage", storage, "--workspace", str(self.workspace()), "--json"]
        return argv, path

    def start(self) -> None:
        if self.running:
            return
        prepared = self.prepare()
        if prepared is None:
            return
        self.command, _path = prepared
        spec = self.form.spec()
        self.study = (self.command[self.command.index("--storage") + 1], spec.study)
        self.snapshot = None
        self.finished_trials = 0
        self.search_ended = False
        self.messages.clear_own()
        self.search.start(self.command)
        self.form.set_read_only(True)
        self.progress.setText(f"Searching: study {spec.study}, {_trials_text(spec)} "
                              f"({spec.sampler} sampler, {spec.pruner} pruner).")
        self.progress.setToolTip(" ".join(self.command))
        self.poll.start()
        self.tabs.setCurrentWidget(self.history)
        self._update_buttons()

    def stop(self) -> None:
        if self.running:
            self.search.stop()
            self.progress.setText("Stopping: the running trials end after their current step…")
            self._update_buttons()

    def shutdown(self, wait_ms: int = 20_000) -> None:
        """The window closes: stop a running search and wait for it a while."""
        self.poll.stop()
        if self.running:
            self.search.end(wait_ms)
        if self._reader is not None:
            self._reader.wait()

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "worker_error":
            self.messages.show_message(f"A search worker failed: {event.get('error')}",
                                       "warning")
        elif kind == "trial_finished":
            if event.get("state") == "FAIL" and event.get("error"):
                if self.search.stopping:  # ended by Stop, not by a fault of its own
                    self.messages.show_message(f"Trial {event.get('number')}: "
                                               f"{event['error']}", "info")
                else:
                    self.messages.show_message(f"Trial {event.get('number')} failed (the "
                                               f"search goes on): {event['error']}", "warning")
            self.finished_trials += 1
            value = event.get("value")
            shown = f" = {value:.4g}" if isinstance(value, int | float) else ""
            self.progress.setText(f"Trial {event.get('number')} {event.get('state', '')}"
                                  f"{shown}; {self.finished_trials} trials finished.")
            self.refresh()
        elif kind == "search_finished":
            best = event.get("best_value")
            if isinstance(best, int | float):
                self.progress.setText(f"Search finished: best trial {event.get('best_trial')} "
                                      f"= {best:.4g} (run {event.get('best_run_id')}).")

    def _on_finished(self, code: int, message: str) -> None:
        self.poll.stop()
        self.form.set_read_only(False)
        self.search_ended = True
        if message:
            self.messages.show_message(f"The search failed: {message}", "error")
            self.progress.setText(f"The search ended with an error after "
                                  f"{self.finished_trials} trials.")
        elif not self.progress.text().startswith("Search finished"):
            self.progress.setText(f"Search stopped after {self.finished_trials} trials." if
                                  code != 0 or self.search.stopping else
                                  f"Search finished after {self.finished_trials} trials.")
        self._update_buttons()
        if self.study is not None:
            self.refresh()

    def adopt(self, cfg: RunConfig) -> None:
        """Show the [search] section a configuration brings (a file opened in the window),
        once per section: the form's later edits are the user's."""
        section = getattr(cfg, "search", None)
        if section is None or self.running:
            return
        data = section if isinstance(section, dict) else dataclasses.asdict(section)
        if data == self._adopted:
            return
        self._adopted = data
        try:
            self.form.set_spec(SearchSpec.from_dict(data))
        except (SpecError, TypeError) as exc:
            self.messages.show_message(f"The configuration's [search] section cannot be shown "
                                       f"here: {exc}", "warning")

    def show_opened(self, cfg: RunConfig) -> None:
        """A configuration was put in the window's form (File ▸ Open, a run): its [search]
        section shows, even one shown before and edited since; none leaves the dock as is."""
        self._adopted = None
        self.adopt(cfg)

    def follow_config(self, *_args) -> None:
        """The window's form may have a new configuration: adopt its [search] section."""
        self.adopt(self._config())

    # --- the study ------------------------------------------------------------------------
    def open_study(self, storage: str, name: str) -> None:
        """Show the study ``name`` of ``storage`` (a read on a thread; errors in the bar)."""
        self.study = (storage, name)
        self.snapshot = None
        self.search_ended = False
        self.tabs.setCurrentWidget(self.trials)
        self.refresh()

    def refresh(self) -> None:
        """Read the study again, unless a read is under way (then once more after it)."""
        if self.study is None:
            return
        if self._reader is not None:
            self._read_again = True
            return
        self._reader = StudyReader(*self.study, previous=self.snapshot, parent=self)
        self._reader.read.connect(self._on_read)
        self._reader.failed.connect(self._on_read_failed)
        self._reader.finished.connect(self._on_reader_done)
        self._reader.start()

    def wait_for_read(self) -> None:
        if self._reader is not None:
            self._reader.wait()

    def _on_reader_done(self) -> None:
        self._reader.deleteLater()
        self._reader = None
        if self._read_again:
            self._read_again = False
            self.refresh()

    def _on_read_failed(self, text: str) -> None:
        if self.running and text.startswith("no study"):
            return  # the search has not created it yet
        self.messages.show_message(text, "error")

    def _on_read(self, snapshot: StudySnapshot) -> None:
        if self.study != (snapshot.storage, snapshot.name):
            return  # a read of a study no longer on show
        previous, self.snapshot = self.snapshot, snapshot
        if previous is None or previous.trials != snapshot.trials \
                or previous.importances != snapshot.importances:  # else nothing to redraw
            for view in self.views:
                view.show_study(snapshot)
        if not self.running and not self.search_ended:
            best = snapshot.best
            self.progress.setText(
                f"Study {snapshot.name}: {len(snapshot.trials)} trials"
                + (f", best trial {best.number} = {best.value:.4g}" if best else
                   ", none completed yet") + ".")
        self._update_buttons()
        self.studyShown.emit()

    # --- acting on the best trial -------------------------------------------------------
    def best_run(self) -> int | None:
        if self.snapshot is None or self.snapshot.best is None:
            return None
        return self.snapshot.best.run_id

    def train_best(self) -> None:
        run_id = self._best_or_say("Train best")
        if run_id is not None:
            self.trainRequested.emit(run_id)

    def export_best(self) -> None:
        run_id = self._best_or_say("Export best")
        if run_id is not None:
            self.exportRequested.emit(run_id)

    def _best_or_say(self, action: str) -> int | None:
        if self.snapshot is None or self.snapshot.best is None:
            self.messages.show_message(f"{action}: the study has no completed trial yet.",
                                       "warning")
            return None
        if self.snapshot.best.run_id is None:
            self.messages.show_message(f"{action}: the best trial "
                                       f"({self.snapshot.best.number}) names no workspace run "
                                       f"(user attribute run_id); was it made by `torchwork "
                                       f"search`?", "warning")
            return None
        return self.snapshot.best.run_id

    def _update_buttons(self) -> None:
        running = self.running
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running and not self.search.stopping)
        for button in (self.open_button, self.load_button):
            button.setEnabled(not running)
        has_best = self.best_run() is not None
        self.train_best_button.setEnabled(has_best)
        self.export_best_button.setEnabled(has_best)

    # --- files and dialogs ----------------------------------------------------------------
    def load_file(self, path: str) -> bool:
        try:
            spec = spec_from_toml(Path(path).read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            self.messages.show_message(f"Cannot read {path}: {exc}", "error")
            return False
        except SpecError as exc:
            self.messages.show_message(exc.messages[0], "error")
            return False
        self.form.set_spec(spec)
        return True

    def save_file(self, path: str) -> bool:
        try:
            spec = self.form.spec()
        except SpecError as exc:
            self.messages.show_message(f"Cannot save: {exc.messages[0]}", "error")
            return False
        try:
            Path(path).write_text(search_toml(self._config(), spec), encoding="utf-8")
        except OSError as exc:
            self.messages.show_message(f"Cannot save {path}: {exc}", "error")
            return False
        self.messages.show_message(f"Saved the configuration and its search to {path}; run "
                                   f"it with `torchwork search {path}`", "info")
        return True

    def config_text(self, cfg: RunConfig) -> tuple[str | None, str]:
        """What File ▸ Save writes while the dock holds a space: ``cfg`` with the dock's
        [search] section, and a note for the message. (None, "") when the dock's space is
        empty (the configuration is saved as it is); (None, why) when the space cannot be
        read, so the configuration is saved without it and the user is told."""
        if self.form.table.rowCount() == 0:
            return None, ""
        try:
            spec = self.form.spec()
        except SpecError as exc:
            return None, (f"; the Search dock's space was left out ({exc.messages[0]}): fix "
                          f"it and save again")
        return search_toml(cfg, spec), ", with the Search dock's search space"

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a search", _last_dir(),
                                              "Run configurations (*.toml)")
        if path:
            self.load_file(path)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the configuration and its search",
                                              _last_dir(), "Run configurations (*.toml)")
        if path:
            self.save_file(path if path.endswith(".toml") else path + ".toml")

    def open_study_dialog(self) -> None:
        storage, name = self.study or (default_storage(self.workspace_dir), "")
        dialog = OpenStudyDialog(storage, name, self)
        if dialog.exec() and dialog.name():
            self.open_study(dialog.storage(), dialog.name())

    def spec(self) -> SearchSpec:
        return self.form.spec()

    def apply_theme(self, dark: bool) -> None:
        for view in self.views:
            view.apply_theme(dark)


def _trials_text(spec: SearchSpec) -> str:
    if spec.n_trials and spec.timeout:
        return f"{spec.n_trials} trials or {spec.timeout:.0f} s"
    return f"{spec.n_trials} trials" if spec.n_trials else f"for {spec.timeout:.0f} s"


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "search"


def _last_dir() -> str:
    return QSettings("Torchwork", "Torchwork").value("last_dir", "") or str(Path.home())


def install(window) -> SearchPanel:
    """Put the Search dock's panel in ``window.search_dock`` and wire it to the window."""
    panel = SearchPanel(window.workspace_dir, window.config_panel.config, log=window.log)
    old = window.search_dock.widget()
    window.search_dock.setWidget(panel)
    old.deleteLater()
    panel.messages.historyRequested.connect(window.show_messages)
    panel.trainRequested.connect(window.open_run)
    # a configuration opened in the window shows its [search] section here (set_config
    # signals only a change of validity; the dock coming forward catches the rest)
    window.config_panel.validityChanged.connect(panel.follow_config)
    window.config_panel.configSet.connect(panel.show_opened)
    window.search_dock.visibilityChanged.connect(panel.follow_config)
    panel.adopt(window.config_panel.config())
    panel.exporter = _ExportRun(window.export_actions, panel)
    panel.exportRequested.connect(panel.exporter.export)
    panel.apply_theme(window.dark)
    return panel


class _ExportRun(QObject):
    """Export best: File ▸ Export trained model…, with the trial's run chosen."""

    def __init__(self, export_actions, parent=None):
        super().__init__(parent)
        self.export_actions = export_actions

    def export(self, run_id: int) -> None:
        self.export_actions.current_run = run_id
        self.export_actions.export_model_dialog()

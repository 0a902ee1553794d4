"""The one place where engine events become Qt signals.

Each run trains in its own process (app/run_process.py), so the window shares
no GIL with the training loop. The process puts the engine's event objects
(frozen dataclasses of plain numbers) on a queue; a GUI-thread timer drains it
20 times a second (4 while a CPU run fills a small machine's cores, see
app.pacing) and emits the matching public signals. So the signals are only
ever emitted, connected and disconnected on the GUI thread, and however fast a
run goes the GUI thread wakes at most that often for it. Nothing flows back
except commands (pause, resume, stop) through a pipe. Panels connect to these
signals; none of them talks to the engine.
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine.config import RunConfig

from . import run_process
from .pacing import NORMAL, pace_for
from .rank_launch import RankLaunch
from .run_process import RunInfo

IDLE, STARTING, RUNNING, PAUSED, STOPPING = "idle", "starting", "running", "paused", "stopping"
_CONTEXT = multiprocessing.get_context("spawn")  # no fork of a process running Qt

__all__ = ["TrainingBridge", "RunInfo", "IDLE", "STARTING", "RUNNING", "PAUSED", "STOPPING"]


class TrainingBridge(QObject):
    """Starts, steers and reports one run at a time; lives on the GUI thread."""

    stateChanged = Signal(str)
    runCreated = Signal(object)  # RunInfo
    buildFailed = Signal(str)  # the run could not start: config, model file, checkpoint
    internalError = Signal(str, str)  # message, traceback (for a details box)
    runStarted = Signal(object)  # ev.RunStarted
    epochStarted = Signal(object)
    metricsLogged = Signal(object)  # ev.MetricsLogged
    # The same events, consecutive ones together (a list, once per delivery): a
    # panel appends them in one go instead of paying Python's overhead per step.
    metricsBatch = Signal(object)
    validationEnded = Signal(object)
    epochEnded = Signal(object)  # ev.EpochEnded
    checkpointSaved = Signal(object)
    paused = Signal(object)
    resumed = Signal(object)
    stopRequested = Signal(object)
    exceptionRaised = Signal(object)  # ev.ExceptionRaised: NaN, OOM, errors in the loop
    runEnded = Signal(object)  # ev.RunEnded
    energyMeasured = Signal(object)  # ev.EnergyMeasured: at epoch ends, and final before runEnded
    hardwareSampled = Signal(object)  # engine.monitor.Sample, from the run's process
    profileDone = Signal(object)  # engine.profiling.options.CaptureResult

    def __init__(self, workspace_dir: str | Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self._process = None
        self._events = None
        self._commands = None
        self._state = IDLE
        self._delivery = QTimer(self)
        self._delivery.setInterval(NORMAL.delivery_ms)
        self._delivery.timeout.connect(self.deliver)
        # bound methods, not lambdas: PySide crashes on lambdas that capture self
        self.runStarted.connect(self._on_running)
        self.runStarted.connect(self._set_pace)
        self.paused.connect(self._on_paused)
        self.resumed.connect(self._on_running)

    # --- commands --------------------------------------------------------------
    def start(self, config: RunConfig, name: str | None = None, kind: str = "train") -> None:
        """Train ``config`` as a new workspace run; ``kind`` "profile" marks a dedicated
        profiler capture (kept out of the lists of trained runs)."""
        config.validate()
        self._launch(config.to_toml(), None, name, kind)

    def start_ranks(self, config: RunConfig, nproc: int, name: str | None = None) -> None:
        """Train ``config`` on ``nproc`` local processes (`torchwork run --nproc-per-node`);
        rank 0 reports here as the window's own run process does (app/rank_launch.py)."""
        config.validate()
        if self.busy:
            raise RuntimeError("a run is already in progress: stop it first")
        workspace = str(self.workspace_dir) if self.workspace_dir is not None else None
        launch = RankLaunch(config.to_toml(), nproc, workspace, name)
        self._process, self._events, self._commands = launch, launch.events, launch
        self._set_state(STARTING)
        self._delivery.start()

    def resume_run(self, run_id: int) -> None:
        """Continue a stopped or interrupted workspace run from its last checkpoint."""
        self._launch(None, run_id)

    def pause(self) -> None:
        self._send("pause")

    def resume(self) -> None:
        self._send("resume")

    def profile(self, options) -> None:
        """Profile the next steps of the run (engine.profiling.options.CaptureOptions)."""
        self._send(("profile", options))

    def stop(self) -> None:
        """Stop after the current step; the run writes a checkpoint on the way out."""
        if self._process is None:
            return
        self._send("stop")
        if self._state in (RUNNING, PAUSED, STARTING):
            self._set_state(STOPPING)

    def wait(self, timeout_ms: int = 60000) -> bool:
        """Block until the run's process has ended and its events are delivered."""
        if self._process is None:
            return True
        self._process.join(timeout_ms / 1000)
        if self._process.is_alive():
            return False
        self.deliver()
        return self._process is None

    @property
    def state(self) -> str:
        return self._state

    @property
    def delivery_ms(self) -> int:
        """How often the panels hear from the run (app.pacing)."""
        return self._delivery.interval()

    @property
    def busy(self) -> bool:
        return self._process is not None

    # --- internals ---------------------------------------------------------------
    def _launch(self, config_toml: str | None, run_id: int | None,
                name: str | None = None, kind: str = "train") -> None:
        if self.busy:
            raise RuntimeError("a run is already in progress: stop it first")
        self._events = _CONTEXT.Queue()
        self._commands, child_end = _CONTEXT.Pipe()
        workspace = str(self.workspace_dir) if self.workspace_dir is not None else None
        self._process = _CONTEXT.Process(
            target=run_process.main, name="torchwork-run", daemon=True,
            args=(config_toml, run_id, workspace, self._events, child_end, name, kind))
        self._set_state(STARTING)
        self._process.start()
        child_end.close()
        self._delivery.start()

    def _send(self, command) -> None:
        if self._commands is not None:
            try:
                self._commands.send(command)
            except (BrokenPipeError, OSError):
                pass  # the run has just ended

    def deliver(self) -> None:
        """Emit what the run has reported since the last delivery, in order."""
        if self._events is None:
            return
        events: list = []
        while not (events and events[-1][0] == run_process.DONE):  # nothing comes after it
            try:
                events += self._events.get_nowait()
            except queue.Empty:
                break
        done = self._emit(events)
        if done or not self._process.is_alive():
            self._finish(done)

    def _emit(self, events: list) -> bool:
        """Emit the run's events; True when they hold its last word.

        Consecutive steps' metrics go out as one metricsBatch (and one
        metricsLogged each). Hardware samples, a stream of their own, do not
        split them: a delivery of many sends is then one batch for the plots.
        """
        metrics = []
        for name, args in events:
            if name == "metricsLogged":
                metrics.append(args[0])
                self.metricsLogged.emit(*args)
                continue
            if metrics and name != "hardwareSampled":
                self.metricsBatch.emit(metrics)
                metrics = []
            if name == run_process.DONE:
                return True
            getattr(self, name).emit(*args)
        if metrics:
            self.metricsBatch.emit(metrics)
        return False

    def _finish(self, clean: bool) -> None:
        process = self._process
        process.join(5)
        if not clean:  # died without saying goodbye: drain what it did say, then report
            while True:
                try:
                    self._emit(self._events.get(timeout=0.2))
                except queue.Empty:
                    break
            self.internalError.emit(f"the training process ended unexpectedly (exit code "
                                    f"{process.exitcode})", "")
        self._delivery.stop()
        self._delivery.setInterval(NORMAL.delivery_ms)
        self._commands.close()
        self._events.close()
        self._process = self._events = self._commands = None
        self._set_state(IDLE)

    def _on_running(self, _event) -> None:
        self._set_state(RUNNING)

    def _set_pace(self, e) -> None:
        self._delivery.setInterval(pace_for(e.device).delivery_ms)

    def _on_paused(self, _event) -> None:
        self._set_state(PAUSED)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            if self._state == STOPPING and state in (RUNNING, PAUSED):
                return  # a late event must not undo a stop
            self._state = state
            self.stateChanged.emit(state)

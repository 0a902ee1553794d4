"""The one place where engine events become Qt signals.

A run is built and trained on a QThread. The Trainer calls our handlers on that
thread; each handler only appends the event object itself (a frozen dataclass
of plain numbers) to an inbox, and a GUI-thread timer delivers the inbox 20
times a second as the matching public signals. So the public signals are only
ever emitted, connected and disconnected on the GUI thread, which PySide needs
to stay race-free, and however fast a run goes the GUI thread wakes at most 20
times a second for it: each wake-up takes the GIL from the training thread and
a core from its OpenMP threads. Nothing flows back except commands, which set
the Trainer's flags. Panels connect to these signals; none talks to the engine.
"""

from __future__ import annotations

import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from engine.config import ConfigError, RunConfig
from engine.training import events as ev

IDLE, STARTING, RUNNING, PAUSED, STOPPING = "idle", "starting", "running", "paused", "stopping"
DELIVERY_MS = 50


@dataclass(frozen=True)
class RunInfo:
    """Which workspace run the window is showing (plain data, safe across threads)."""
    run_id: int
    name: str
    folder: str
    resumed: bool


class _RunThread(QThread):
    """Builds the Trainer and runs it; every failure becomes a signal, never a traceback."""

    def __init__(self, bridge: TrainingBridge, config: RunConfig, resume_run: int | None):
        super().__init__()
        self.bridge, self.config, self.resume_run = bridge, config, resume_run
        self.trainer = None
        self.stop_asked = False

    def run(self) -> None:
        b = self.bridge
        try:
            trainer, ws, run = self._build()
        except Exception as exc:  # a bad config, model file or checkpoint: the user can act
            b.inbox.append(("buildFailed", (_message(exc),)))
            return
        try:
            b.inbox.append(("runCreated", (RunInfo(run.id, run.name, str(run.dir),
                                                   self.resume_run is not None),)))
            trainer.run()
        except Exception as exc:  # a handler failed after the run ended (e.g. a full disk)
            b.inbox.append(("internalError", (_message(exc), traceback.format_exc())))
        finally:
            ws.close()

    def _build(self):
        from engine.training import Trainer
        from engine.workspace import Workspace, WorkspaceWriter

        ws = Workspace(self.bridge.workspace_dir)
        try:
            if self.resume_run is not None:
                run = ws.get_run(self.resume_run)
                trainer = Trainer(RunConfig.from_toml(run.config_toml))
                checkpoint = run.checkpoint or str(run.dir / "checkpoints" / "last.pt")
                trainer.load_checkpoint(checkpoint)
                ws.truncate_after(run.id, trainer.step)
            else:
                trainer = Trainer(self.config)
                run = ws.create_run(self.config)
        except BaseException:
            ws.close()
            raise
        trainer.run_id = str(run.id)
        trainer.enable_checkpoints(run.dir / "checkpoints")
        WorkspaceWriter(ws, run).attach(trainer)
        self.bridge._forward(trainer)
        self.trainer = trainer
        if self.stop_asked:  # Stop pressed while the run was still being built
            trainer.stop()
        return trainer, ws, run


class TrainingBridge(QObject):
    """Starts, steers and reports one run at a time; lives on the GUI thread."""

    stateChanged = Signal(str)
    runCreated = Signal(object)  # RunInfo
    buildFailed = Signal(str)  # the run could not start: config, model file, checkpoint
    internalError = Signal(str, str)  # message, traceback (for a details box)
    runStarted = Signal(object)  # ev.RunStarted
    epochStarted = Signal(object)
    metricsLogged = Signal(object)  # ev.MetricsLogged
    validationEnded = Signal(object)
    epochEnded = Signal(object)  # ev.EpochEnded
    checkpointSaved = Signal(object)
    paused = Signal(object)
    resumed = Signal(object)
    stopRequested = Signal(object)
    exceptionRaised = Signal(object)  # ev.ExceptionRaised: NaN, OOM, errors in the loop
    runEnded = Signal(object)  # ev.RunEnded

    def __init__(self, workspace_dir: str | Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self._thread: _RunThread | None = None
        self._state = IDLE
        self.inbox: deque[tuple[str, tuple]] = deque()  # appended on the run's thread
        self._delivery = QTimer(self)
        self._delivery.setInterval(DELIVERY_MS)
        self._delivery.timeout.connect(self.deliver)
        # bound methods, not lambdas: PySide crashes on lambdas that capture self
        self.runStarted.connect(self._on_running)
        self.paused.connect(self._on_paused)
        self.resumed.connect(self._on_running)

    # --- commands --------------------------------------------------------------
    def start(self, config: RunConfig) -> None:
        self._launch(config, None)

    def resume_run(self, run_id: int) -> None:
        """Continue a stopped or interrupted workspace run from its last checkpoint."""
        self._launch(None, run_id)

    def pause(self) -> None:
        if self._thread and self._thread.trainer:
            self._thread.trainer.pause()

    def resume(self) -> None:
        if self._thread and self._thread.trainer:
            self._thread.trainer.resume()

    def stop(self) -> None:
        """Stop after the current step; the Trainer writes a checkpoint on the way out."""
        thread = self._thread
        if thread is None:
            return
        thread.stop_asked = True
        if thread.trainer:
            thread.trainer.stop()
        if self._state in (RUNNING, PAUSED, STARTING):
            self._set_state(STOPPING)

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the run's thread has finished (True) or the timeout passed."""
        return self._thread is None or self._thread.wait(timeout_ms)

    @property
    def state(self) -> str:
        return self._state

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    # --- internals ---------------------------------------------------------------
    def _launch(self, config: RunConfig | None, run_id: int | None) -> None:
        if self.busy:
            raise RuntimeError("a run is already in progress: stop it first")
        if config is not None:
            config.validate()
        thread = _RunThread(self, config, run_id)
        thread.finished.connect(self._on_thread_finished)
        self._thread = thread
        self._set_state(STARTING)
        self._delivery.start()
        thread.start()

    def _forward(self, trainer) -> None:
        """Subscribe to the Trainer (on its thread); each event leaves as a queued signal."""
        pairs = ((ev.RunStarted, "runStarted"), (ev.EpochStarted, "epochStarted"),
                 (ev.MetricsLogged, "metricsLogged"), (ev.ValidationEnded, "validationEnded"),
                 (ev.EpochEnded, "epochEnded"), (ev.CheckpointSaved, "checkpointSaved"),
                 (ev.Paused, "paused"), (ev.Resumed, "resumed"),
                 (ev.StopRequested, "stopRequested"), (ev.ExceptionRaised, "exceptionRaised"),
                 (ev.RunEnded, "runEnded"))
        append = self.inbox.append
        for event_type, name in pairs:
            trainer.on(event_type, lambda event, name=name: append((name, (event,))))

    def _on_running(self, _event) -> None:
        self._set_state(RUNNING)

    def _on_paused(self, _event) -> None:
        self._set_state(PAUSED)

    def deliver(self) -> None:
        """Emit what the run has reported since the last delivery, in order."""
        while self.inbox:
            name, args = self.inbox.popleft()
            getattr(self, name).emit(*args)

    def _on_thread_finished(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.wait()  # finished is emitted just before the thread ends: let it end
        self._delivery.stop()
        self.deliver()
        self._set_state(IDLE)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            if self._state == STOPPING and state in (RUNNING, PAUSED):
                return  # a late event must not undo a stop
            self._state = state
            self.stateChanged.emit(state)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ConfigError):
        return str(exc)
    text = str(exc)
    return text if text else type(exc).__name__

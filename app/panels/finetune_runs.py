"""Compression's fine-tuning and distillation runs, trained through the window's bridge.

engine.compression.compress calls ``train(config, name)`` for each run and
waits for the trained model. In the window that call comes on the compression
worker thread; this object carries it to the GUI thread, starts the run
through the bridge like any run (its own process, live plots in the Training
dock, recorded in the workspace, resumable) and wakes the worker when the
bridge is idle again. A run the user started first is let finish: the
fine-tuning run starts when the bridge is free.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from app import gc_guard
from app.bridge import IDLE
from engine.compression import CompressionError
from engine.compression.pipeline import check_finished
from engine.config import RunConfig
from engine.export import load_run_model


class BridgeTrainer(QObject):
    """``train`` for compress(): call it from a worker thread; lives on the GUI thread."""

    requested = Signal(str, str)  # config TOML, run name (worker thread -> GUI thread)
    waiting = Signal(str)  # what the worker waits for, for the panel's status line

    def __init__(self, bridge, workspace_dir, parent: QObject | None = None):
        super().__init__(parent)
        self.bridge, self.workspace_dir = bridge, workspace_dir
        self._done = threading.Event()
        self._pending: tuple[str, str] | None = None  # asked for, waiting for a free bridge
        self._active = False  # a request is in hand, from asking until the worker wakes
        self._run_id: int | None = None
        self._outcome: tuple[str, str | None] | None = None
        self._steps: int | None = None  # where our run ended
        self.requested.connect(self._request)  # queued: emitted on the worker thread
        bridge.runCreated.connect(self._on_created)
        bridge.runEnded.connect(self._on_ended)
        bridge.buildFailed.connect(self._on_build_failed)
        bridge.internalError.connect(self._on_internal_error)
        bridge.stateChanged.connect(self._on_state)

    def __call__(self, config: RunConfig, name: str):
        """Worker thread: train ``config`` as a workspace run, return its trained model."""
        self._done.clear()
        self._run_id, self._outcome, self._steps = None, None, None
        self.requested.emit(config.to_toml(), name)
        with gc_guard.lifted():  # minutes of waiting: let the GUI thread collect meanwhile
            self._done.wait()
        run_id, (status, error) = self._run_id, self._outcome
        if run_id is None:
            raise CompressionError(f"the fine-tuning run did not start: {error}")
        check_finished(run_id, status, error, self._steps)
        return load_run_model(self.workspace_dir, run_id).model

    def cancel(self, reason: str = "the window is closing") -> None:
        """Wake a waiting worker (its compression fails with ``reason``)."""
        self._pending = None
        if self._outcome is None:
            self._outcome = ("stopped", reason)
        self._wake()

    # --- GUI thread ---------------------------------------------------------------
    def _request(self, toml: str, name: str) -> None:
        self._active = True
        self._pending = (toml, name)
        if self.bridge.busy:
            self.waiting.emit("waiting for the current run to end before fine-tuning")
        else:
            self._start_pending()

    def _start_pending(self) -> None:
        toml, name = self._pending
        self._pending = None
        try:
            self.bridge.start(RunConfig.from_toml(toml), name)
        except Exception as exc:  # an invalid config: the worker reports it
            self._outcome = ("failed", str(exc))
            self._wake()
            return
        self.waiting.emit(f"training {name} (curves in the Training dock; Stop ends it)")

    def _on_created(self, info) -> None:
        if self._awaiting():
            self._run_id = info.run_id

    def _on_ended(self, e) -> None:
        if self._awaiting() and self._run_id is not None:
            self._outcome, self._steps = (e.status, e.error), e.steps

    def _on_build_failed(self, text: str) -> None:
        if self._awaiting():
            self._outcome = ("failed", text)

    def _on_internal_error(self, text: str, _traceback: str) -> None:
        if self._awaiting() and self._outcome is None:
            self._outcome = ("failed", text)

    def _on_state(self, state: str) -> None:
        if state != IDLE:
            return
        if self._pending is not None:
            self._start_pending()
        elif self._awaiting() and (self._run_id is not None or self._outcome is not None):
            if self._outcome is None:
                self._outcome = ("failed", "the training process ended without a result")
            self._wake()

    def _awaiting(self) -> bool:
        """Our run is the bridge's current one (not a run the user started before)."""
        return self._active and self._pending is None

    def _wake(self) -> None:
        self._active = False
        self._done.set()

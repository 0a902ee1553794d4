"""Capture torch.profiler traces of a training run, in TensorBoard's folder layout.

A ``ProfilerCapture`` handler sits on the Trainer's step events. A request (from
the command line before the run, or from the window while it trains) arms it;
the profiler then starts on the training thread at the next step, advances with
``prof.step()`` after every optimizer step, and writes
``<run folder>/profile/<capture>/<worker>.<ts>.pt.trace.json`` once its active
steps are recorded. ``tensorboard --logdir <run folder>`` with torch-tb-profiler
opens the same files. A run that fails or stops mid-capture still writes what
was recorded, so a crash can be profiled.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from ..training import events as ev
from .options import PROFILE_DIR, CaptureOptions, CaptureResult, capture_name

# Kineto (torch.profiler's engine) writes a "USDT: profiler_start/stop" line and stage
# notes to the terminal on every capture: noise around our report. Level 6 quiets it (its
# own errors too; a failed capture is reported by CaptureResult). Kineto reads it when a
# profiler first starts, not when torch is imported; a user's own setting wins.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")


class ProfilerCapture:
    """Trainer handler: profiles ``options.steps`` optimizer steps once requested.

    ``request`` is safe from any thread, also before ``attach`` (the window may
    ask while the run is still being built); the profiler itself starts, steps
    and stops on the training thread. ``on_done`` gets a CaptureResult; a
    failure of the profiler is reported there and never raised into the loop.
    """

    def __init__(self, *, worker: str = "worker0",
                 on_done: Callable[[CaptureResult], None] | None = None):
        self.run_dir: Path | None = None
        self.worker = worker
        self.on_done = on_done
        self.results: list[CaptureResult] = []
        self._lock = threading.Lock()
        self._pending: tuple[CaptureOptions, str] | None = None
        self._prof: profile | None = None
        self._folder: Path | None = None
        self._stepped = 0
        self._options: CaptureOptions | None = None
        self._device = "cpu"

    def attach(self, trainer, run_dir: str | Path) -> ProfilerCapture:
        """Profile ``trainer``, writing under ``<run_dir>/profile/``."""
        self.run_dir = Path(run_dir)
        self._device = trainer.device.type
        trainer.on(ev.StepStarted, self._on_step_started)
        trainer.on(ev.StepEnded, self._on_step_ended)
        trainer.on(ev.LoopEnded, self._on_loop_ended)
        return self

    @property
    def busy(self) -> bool:
        return self._pending is not None or self._prof is not None

    def request(self, options: CaptureOptions, name: str | None = None) -> str:
        """Arm a capture starting at the next step; returns its folder's name."""
        options.validate()
        name = name or capture_name()
        with self._lock:
            if self.busy:
                raise RuntimeError("a profiler capture is already running for this run: "
                                   "wait for its trace")
            self._pending = (options, name)
        return name

    # --- on the training thread ------------------------------------------------
    def _on_step_started(self, _event: ev.StepStarted) -> None:
        if self._pending is None or self._prof is not None:
            return
        with self._lock:
            options, name = self._pending
            self._pending = None
        folder = self.run_dir / PROFILE_DIR / name
        activities = [ProfilerActivity.CPU]
        if self._device == "cuda" and torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            prof = profile(activities=activities,
                           schedule=schedule(wait=options.wait, warmup=options.warmup,
                                             active=options.active, repeat=1),
                           on_trace_ready=tensorboard_trace_handler(str(folder),
                                                                    worker_name=self.worker),
                           record_shapes=options.record_shapes,
                           profile_memory=options.profile_memory, with_stack=options.with_stack,
                           # one cycle (repeat=1): keeping its events changes nothing but
                           # silences torch's "clears events at the end of each cycle" warning
                           acc_events=True)
            prof.start()
        except Exception as exc:  # the profiler must never end the run
            self._finish(CaptureResult(str(folder), None, True, f"{type(exc).__name__}: {exc}"))
            return
        self._prof, self._folder, self._options, self._stepped = prof, folder, options, 0

    def _on_step_ended(self, _event: ev.StepEnded) -> None:
        if self._prof is None:
            return
        self._stepped += 1
        try:
            self._prof.step()
        except Exception as exc:
            self._stop(f"{type(exc).__name__}: {exc}")
            return
        if self._stepped >= self._options.steps:
            self._stop()

    def _on_loop_ended(self, _event: ev.LoopEnded) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if self._prof is not None:
            self._stop()  # the run ended mid-capture: keep what was recorded
        elif pending is not None:
            self._finish(CaptureResult(str(self.run_dir / PROFILE_DIR / pending[1]), None, True,
                                       "the run ended before the capture's first step"))

    def _stop(self, error: str | None = None) -> None:
        prof, folder = self._prof, self._folder
        partial = self._stepped < self._options.steps
        self._prof = None
        try:
            prof.stop()
        except Exception as exc:
            error = error or f"{type(exc).__name__}: {exc}"
        traces = sorted(folder.glob("*.pt.trace.json*"), key=lambda p: p.stat().st_mtime)
        trace = str(traces[-1]) if traces else None
        if trace is None and error is None:
            error = (f"the run ended after {self._stepped} of {self._options.steps} profiled "
                     f"steps, before any active step was recorded")
        self._finish(CaptureResult(str(folder), trace, partial, error))

    def _finish(self, result: CaptureResult) -> None:
        self.results.append(result)
        if self.on_done is not None:
            self.on_done(result)


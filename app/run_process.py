"""The training process the window starts for each run. No Qt here.

Training in its own process shares no GIL with the window: pyqtgraph paints
in Python, and on a small machine every millisecond the GUI thread held the
GIL was a millisecond the training loop waited. Only plain data crosses: the
engine's event dataclasses go out through a queue, commands ("pause",
"resume", "stop", or ("profile", CaptureOptions)) come in through a pipe.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from functools import partial

DONE = "_done"
BATCH_S = 0.1  # per-step metrics travel in batches at most this old (the window draws at 20 Hz)
BATCHED = frozenset({"metricsLogged", "hardwareSampled"})  # the frequent ones wait for a batch


@dataclass(frozen=True)
class RunInfo:
    """Which workspace run the window is showing (plain data)."""
    run_id: int
    name: str
    folder: str
    resumed: bool


def message(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def main(config_toml: str | None, resume_run: int | None, workspace_dir, events,
         commands, name: str | None = None, kind: str = "train") -> None:
    """Build the run (called ``name``, or a name from its config; a workspace run of
    ``kind``), train it, and report everything on ``events`` as lists of (name, args)."""
    outbox = Outbox(events)
    try:
        _train(config_toml, resume_run, workspace_dir, outbox.post, commands, name, kind)
    finally:
        outbox.post(DONE)
        events.close()
        events.join_thread()  # everything is in the pipe before the process ends


class Outbox:
    """Sends events in batches: one pickle and one pipe write per batch, not per step.

    Per-step metrics and hardware samples wait until BATCH_S has passed since
    the last send; every other event (epoch end, pause, failure, the end) sends
    at once with what waits. The trainer's and the hardware sampler's threads
    both post, hence the lock.
    """

    def __init__(self, events):
        self._events = events
        self._waiting: list = []
        self._sent = time.monotonic()
        self._lock = threading.Lock()

    def post(self, name: str, *args) -> None:
        with self._lock:
            self._waiting.append((name, args))
            now = time.monotonic()
            if name not in BATCHED or now - self._sent >= BATCH_S:
                self._events.put(self._waiting)
                self._waiting = []
                self._sent = now


def _train(config_toml, resume_run, workspace_dir, post, commands, name, kind) -> None:
    from engine.config import RunConfig
    from engine.monitor.recorder import record_run
    from engine.profiling.capture import ProfilerCapture
    from engine.run_builder import build_trainer
    from engine.training import events as ev
    from engine.training.resume import prepare_resume
    from engine.workspace import Workspace

    stop_early = threading.Event()
    holder: list = []
    profiler = ProfilerCapture(on_done=lambda result: post("profileDone", result))

    def listen() -> None:  # commands arrive while the run is built and while it trains
        while True:
            try:
                command = commands.recv()
            except (EOFError, OSError):
                return
            if isinstance(command, tuple):  # ("profile", CaptureOptions)
                try:
                    profiler.request(command[1])
                except (RuntimeError, ValueError):
                    pass  # the window asks for one valid capture at a time
                continue
            if command == "stop":
                stop_early.set()
            if holder:
                getattr(holder[0], command)()

    threading.Thread(target=listen, name="commands", daemon=True).start()
    try:
        ws = Workspace(workspace_dir)
    except Exception as exc:
        post("buildFailed", f"cannot open the workspace: {message(exc)}")
        return
    try:
        try:
            if resume_run is not None:
                resumption = prepare_resume(ws, resume_run,
                                            build=partial(build_trainer, workspace=ws))
                trainer, run = resumption.trainer, resumption.run
            else:
                config = RunConfig.from_toml(config_toml)
                trainer = build_trainer(config, ws)
                run = ws.create_run(trainer.config, name, kind)  # the task its data decided
        except Exception as exc:  # a bad config, model file or checkpoint: the user can act
            post("buildFailed", message(exc))
            return
        record_run(trainer, ws, run, on_sample=partial(post, "hardwareSampled"))
        profiler.worker = f"run{run.id}"
        profiler.attach(trainer, run.dir)  # always: steps then carry the step events it needs
        for event_type in (ev.RunStarted, ev.EpochStarted, ev.MetricsLogged,
                           ev.ValidationEnded, ev.EpochEnded, ev.CheckpointSaved, ev.Paused,
                           ev.Resumed, ev.StopRequested, ev.ExceptionRaised, ev.RunEnded):
            trainer.on(event_type, lambda e, name=SIGNALS[event_type.__name__]: post(name, e))
        holder.append(trainer)
        if stop_early.is_set():  # Stop pressed while the run was still being built
            trainer.stop()
        post("runCreated", RunInfo(run.id, run.name, str(run.dir), resume_run is not None))
        try:
            trainer.run()
        except Exception as exc:  # a handler failed after the run ended (e.g. a full disk)
            post("internalError", message(exc), traceback.format_exc())
    finally:
        ws.close()


SIGNALS = {"RunStarted": "runStarted", "EpochStarted": "epochStarted",
           "MetricsLogged": "metricsLogged", "ValidationEnded": "validationEnded",
           "EpochEnded": "epochEnded", "CheckpointSaved": "checkpointSaved",
           "Paused": "paused", "Resumed": "resumed", "StopRequested": "stopRequested",
           "ExceptionRaised": "exceptionRaised", "RunEnded": "runEnded"}

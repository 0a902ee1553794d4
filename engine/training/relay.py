"""A run followed from another process: its events out, its commands in. No Qt here.

The window trains each run in a process of its own (app/run_process.py), and a
run on several processes (`torchwork run --nproc-per-node N`, started from the
window) reports through rank 0. Both speak the same way: the engine's event
dataclasses go out as lists of ``(signal name, args)`` in batches, and commands
("pause", "resume", "stop", or ("profile", CaptureOptions)) come in, so the
window's bridge reads one stream whichever launched the run.

A run started by the window on several processes finds the window through
TORCHWORK_WINDOW (``host:port`` of a multiprocessing listener) and
TORCHWORK_WINDOW_KEY (its hex authentication key); only rank 0 connects.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client

from . import events as ev

DONE = "_done"
BATCH_S = 0.1  # per-step metrics travel in batches at most this old (the window draws at 20 Hz)
BATCHED = frozenset({"metricsLogged", "hardwareSampled"})  # the frequent ones wait for a batch
WINDOW_ENV, WINDOW_KEY_ENV = "TORCHWORK_WINDOW", "TORCHWORK_WINDOW_KEY"

SIGNALS = {"RunStarted": "runStarted", "EpochStarted": "epochStarted",
           "MetricsLogged": "metricsLogged", "ValidationEnded": "validationEnded",
           "EpochEnded": "epochEnded", "CheckpointSaved": "checkpointSaved",
           "Paused": "paused", "Resumed": "resumed", "StopRequested": "stopRequested",
           "ExceptionRaised": "exceptionRaised", "EnergyMeasured": "energyMeasured",
           "RunEnded": "runEnded"}


@dataclass(frozen=True)
class RunInfo:
    """Which workspace run the window is showing (plain data)."""
    run_id: int
    name: str
    folder: str
    resumed: bool


class Outbox:
    """Sends events in batches: one pickle and one pipe write per batch, not per step.

    Per-step metrics and hardware samples wait until BATCH_S has passed since
    the last send; every other event (epoch end, pause, failure, the end) sends
    at once with what waits. The trainer's and the hardware sampler's threads
    both post, hence the lock. ``send`` takes a list of ``(name, args)``.
    """

    def __init__(self, send):
        self._send = send
        self._waiting: list = []
        self._sent = time.monotonic()
        self._lock = threading.Lock()

    def post(self, name: str, *args) -> None:
        with self._lock:
            self._waiting.append((name, args))
            now = time.monotonic()
            if name not in BATCHED or now - self._sent >= BATCH_S:
                self._send(self._waiting)
                self._waiting = []
                self._sent = now


def relay_events(trainer, post) -> None:
    """Post every event a viewer follows, under its signal's name."""
    for name, signal in SIGNALS.items():
        trainer.on(getattr(ev, name), partial(_post_event, post, signal))


def _post_event(post, signal: str, event) -> None:
    post(signal, event)


def listen(commands, holder: list, stopped: threading.Event | None = None,
           profiler=None) -> threading.Thread:
    """Apply commands from ``commands`` (a Connection) to the trainer in ``holder`` (empty
    while the run is being built: a stop then sets ``stopped``), on a thread of its own."""

    def serve() -> None:
        while True:
            try:
                command = commands.recv()
            except (EOFError, OSError):
                return
            if isinstance(command, tuple):  # ("profile", CaptureOptions)
                if profiler is not None:
                    try:
                        profiler.request(command[1])
                    except (RuntimeError, ValueError):
                        pass  # the window asks for one valid capture at a time
                continue
            if command == "stop" and stopped is not None:
                stopped.set()
            if holder and command in ("pause", "resume", "stop"):
                getattr(holder[0], command)()

    thread = threading.Thread(target=serve, name="commands", daemon=True)
    thread.start()
    return thread


def window_address() -> tuple[tuple[str, int], bytes] | None:
    """The window's listener this process reports to, from the environment (None: none)."""
    where, key = os.environ.get(WINDOW_ENV), os.environ.get(WINDOW_KEY_ENV)
    if not where or not key:
        return None
    host, _, port = where.rpartition(":")
    return (host, int(port)), bytes.fromhex(key)


class WindowLink:
    """Rank 0's line to the window that started the run: events out, commands in."""

    def __init__(self, address: tuple[str, int], key: bytes):
        self._conn = Client(address, authkey=key)
        self._lock = threading.Lock()
        self.outbox = Outbox(self._send)
        self.post = self.outbox.post

    def _send(self, batch: list) -> None:
        with self._lock:
            try:
                self._conn.send(batch)
            except (BrokenPipeError, OSError):
                pass  # the window closed: the run goes on, as a terminal's run does

    def follow(self, trainer, run) -> None:
        """Relay ``trainer``'s events as workspace run ``run`` and obey the window's commands
        (Profile ▸ Capture records rank 0's steps, as torch.profiler does per process)."""
        from ..profiling.capture import ProfilerCapture

        profiler = ProfilerCapture(worker=f"run{run.id}-rank0",
                                   on_done=partial(self.post, "profileDone"))
        profiler.attach(trainer, run.dir)
        relay_events(trainer, self.post)
        listen(self._conn, [trainer], profiler=profiler)
        self.post("runCreated", RunInfo(run.id, run.name, str(run.dir), False))

    def close(self) -> None:
        self.post(DONE)
        with self._lock:
            self._conn.close()


def connect_window() -> WindowLink | None:
    """The link to the window that started this run, when it did (rank 0 only)."""
    found = window_address()
    if found is None or os.environ.get("RANK", "0") != "0":
        return None
    try:
        return WindowLink(*found)
    except (OSError, EOFError, AuthenticationError):  # the window has gone: train unfollowed
        return None

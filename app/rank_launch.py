"""A run the window starts on several local processes. No Qt here.

The window starts `torchwork run CONFIG --nproc-per-node N` (torchrun's agent,
engine/distributed/launch.py) in a process of its own, and listens on a local
socket that rank 0 connects to (engine.training.relay: TORCHWORK_WINDOW). Rank 0
sends the same event batches the window's own run process puts on its queue and
obeys the same commands, so the bridge follows this run with the same code: a
``RankLaunch`` stands in for its process, its event queue and its command pipe.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Client, Listener
from pathlib import Path

from engine.training.relay import DONE, WINDOW_ENV, WINDOW_KEY_ENV

CONNECT_WAIT_S = 5.0  # after the launcher ended: how long rank 0's last words may take


class Inbox(queue.Queue):
    """The event batches rank 0 sent, in order (what the bridge drains)."""

    def close(self) -> None:
        """Nothing to release: a queue of this process (the bridge closes its inbox)."""


class RankLaunch:
    """`torchwork run --nproc-per-node N` for the window: process, event inbox, command pipe."""

    def __init__(self, config_toml: str, nproc: int, workspace: str | None,
                 name: str | None = None):
        self._key = os.urandom(16)
        self._listener = Listener(("127.0.0.1", 0), authkey=self._key)
        self.events = Inbox()
        self._conn = None
        self._pending: list = []  # commands sent before rank 0 connected
        self._lock = threading.Lock()
        self._done = False
        self._connected = False
        self._folder = Path(tempfile.mkdtemp(prefix="torchwork-ranks-"))
        config = self._folder / "run.toml"
        config.write_text(config_toml, encoding="utf-8")
        self._log_path = self._folder / "launch.log"
        argv = [sys.executable, "-m", "app", "run", str(config), f"--nproc-per-node={nproc}",
                "--json"]  # rank 0's console is a file nobody reads: no progress bar
        if workspace is not None:
            argv.append(f"--workspace={workspace}")
        if name:
            argv.append(f"--name={name}")
        host, port = self._listener.address
        env = {**os.environ, WINDOW_ENV: f"{host}:{port}", WINDOW_KEY_ENV: self._key.hex()}
        with open(self._log_path, "wb") as log:
            self._popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=log, env=env)
        self._reader = threading.Thread(target=self._read, name="rank0-events", daemon=True)
        self._reader.start()
        self._waiter = threading.Thread(target=self._wait, name="launcher", daemon=True)
        self._waiter.start()

    # --- the process, as the bridge sees it ------------------------------------
    @property
    def pid(self) -> int:
        return self._popen.pid

    def is_alive(self) -> bool:
        """Until the launcher has ended and everything rank 0 said is in the inbox."""
        return self._waiter.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._waiter.join(timeout)

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    # --- the command pipe --------------------------------------------------------
    def send(self, command) -> None:
        with self._lock:
            if self._conn is None:
                self._pending.append(command)
                return
            self._conn.send(command)

    def close(self) -> None:
        """Release the socket and the launch's folder (once the run has ended)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
        self._listener.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    # --- threads -------------------------------------------------------------------
    def _read(self) -> None:
        try:
            conn = self._listener.accept()
        except OSError:
            return
        with self._lock:
            self._conn = conn
            self._connected = True
            try:
                for command in self._pending:
                    conn.send(command)
            except OSError:
                pass
            self._pending = []
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                return
            self.events.put(batch)
            if batch and batch[-1][0] == DONE:
                self._done = True
                return

    def _wait(self) -> None:
        code = self._popen.wait()
        connected = self._connected
        if not connected:  # wake the reader from accept(): the launcher never came
            try:
                Client(self._listener.address, authkey=self._key).close()
            except OSError:
                pass
        self._reader.join(CONNECT_WAIT_S)
        if not self._done:  # a launch that ended without rank 0's last word: say why
            line = self.last_line()
            if not connected:
                self.events.put([("buildFailed", (line or f"the launcher ended with exit "
                                                          f"code {code}",)), (DONE, ())])
            else:
                self.events.put([("internalError", (f"the run on several processes ended "
                                                    f"unexpectedly (exit code {code})"
                                                    + (f": {line}" if line else ""),
                                                    self.log_text())), (DONE, ())])

    def log_text(self) -> str:
        try:
            return self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def last_line(self) -> str:
        """The launch's last line of its own (torchwork's one-line errors), not the agent's."""
        lines = [ln.strip() for ln in self.log_text().splitlines() if ln.strip()]
        ours = [ln for ln in lines if ln.startswith("torchwork")]
        return (ours or lines or [""])[-1]

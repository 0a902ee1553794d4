"""`torchwork search ... --json` as a child process of the window, read line by line.

The search trains many models: it runs in processes of its own, never in the
window's (see app/run_process.py for why). Its JSON lines on stdout become
``event`` signals; its stderr is kept (the last lines) for the message a failed
search leaves. Stop is Ctrl+C for the search's whole process group, as in a
terminal, so the search and its trial workers finish their current step, mark
the trial and leave the study consistent; a search that does not end soon after
is terminated, then killed. The Advisor dock runs `torchwork advise --json` with it too.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import deque

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

KILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL
STOP_GRACE_MS = 15_000  # after Ctrl+C, before SIGTERM; as long again before SIGKILL
STDERR_LINES = 40


class SearchProcess(QObject):
    """One search process at a time. ``event(dict)`` per JSON line; ``finished(code,
    message)`` when it ends: ``message`` is empty after a clean end, else the reason."""

    event = Signal(dict)
    output = Signal(str)  # a line on stdout that is not JSON (kept for the log)
    finished = Signal(int, str)

    def __init__(self, parent=None, noun: str = "search"):
        super().__init__(parent)
        self.noun = noun  # in its messages: "the search process crashed"
        self.process: QProcess | None = None
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._pending = b""
        self.stopping = 0  # 0: no; 1: asked (Ctrl+C); 2: terminated
        self._escalate = QTimer(self)
        self._escalate.setSingleShot(True)
        self._escalate.timeout.connect(self._force)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def start(self, argv: list[str]) -> None:
        if self.running:
            raise RuntimeError(f"a {self.noun} is already running")
        self.stderr.clear()
        self._pending, self.stopping = b"", 0
        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")  # each line as it is printed
        process.setProcessEnvironment(env)
        if sys.platform != "win32":  # its own group: Stop reaches its workers too
            process.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self.process = process
        process.start(argv[0], argv[1:])

    def stop(self) -> None:
        """Ask the search to stop as Ctrl+C would; force it if it has not ended in time."""
        if not self.running or self.stopping:
            return
        self.stopping = 1
        self._signal(signal.SIGINT)
        self._escalate.start(STOP_GRACE_MS)

    def wait(self, ms: int) -> bool:
        return self.process is None or self.process.waitForFinished(ms)

    def end(self, grace_ms: int) -> None:
        """Stop, and wait for it here (the window is closing: no event loop runs the
        timers that would force it): terminated after ``grace_ms``, killed soon after, so
        no search of its own session outlives the window unseen."""
        self.stop()
        for sig, ms in ((signal.SIGTERM, grace_ms), (KILL, 5000)):
            if self.wait(ms):
                return
            self.stopping = 2
            self._signal(sig)
        self.wait(2000)

    def _signal(self, sig) -> None:
        pid = self.process.processId()
        if sys.platform == "win32" or not pid:
            self.process.kill() if sig == KILL else self.process.terminate()
            return
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _force(self) -> None:
        if not self.running:
            return
        if self.stopping == 2:
            self._signal(KILL)
            return
        self.stopping = 2
        self._signal(signal.SIGTERM)
        self._escalate.start(STOP_GRACE_MS)

    def _read_stdout(self) -> None:
        self._pending += bytes(self.process.readAllStandardOutput())
        *lines, self._pending = self._pending.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").strip())

    def _line(self, line: str) -> None:
        if not line:
            return
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if isinstance(data, dict) and "event" in data:
            self.event.emit(data)
        else:
            self.output.emit(line)

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        self.stderr.extend(line.rstrip() for line in text.splitlines() if line.strip())

    def _on_finished(self, code: int, status) -> None:
        self._read_stdout()
        self._read_stderr()
        self._line(self._pending.decode("utf-8", "replace").strip())
        self._pending = b""
        self._escalate.stop()
        if self.stopping:
            message = ""
        elif status == QProcess.CrashExit:
            message = f"the {self.noun} process crashed{self._last_error(' (', ')')}"
        elif code != 0:
            message = (self._last_error("", "")
                       or f"the {self.noun} process exited with code {code}")
        else:
            message = ""
        self.finished.emit(code if status == QProcess.NormalExit else -1, message)

    def _on_error(self, error) -> None:
        if error == QProcess.FailedToStart:
            program = self.process.program()
            self.process = None
            self.finished.emit(-1, f"the {self.noun} could not start: {program} was not "
                                   f"found or cannot be run")

    def _last_error(self, before: str, after: str) -> str:
        """The search's own one-line message (the CLI prints one on a bad input)."""
        lines = [line for line in self.stderr if not line.startswith(("Traceback", "  "))]
        return f"{before}{lines[-1]}{after}" if lines else ""

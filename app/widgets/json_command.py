"""`torchwork … --json` in its own process: its one JSON object, or its one error line.

Work that may take long (a tuner, a model summary of a big model) runs as the
command a person could type, in a QProcess, so the window stays responsive and
closing the view ends the work at once. Progress lines (stderr) are passed on
as they come; the last line of stdout is the result; a non-zero exit reports
the command's own last line of stderr (its one clear message).
"""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QObject, QProcess, Signal


def torchwork_command(args: list[str]) -> tuple[str, list[str]]:
    """(program, arguments) that run `torchwork ARGS`: the bundle's own program when frozen
    (it is the command line too), else this interpreter with ``-m app``."""
    if getattr(sys, "frozen", False):
        return sys.executable, args
    return sys.executable, ["-m", "app", *args]


class JsonCommand(QObject):
    """Runs one `torchwork` command at a time. Signals: ``progress(line)`` for each stderr
    line, then either ``finished(result)`` with the parsed object or ``failed(text)``."""

    progress = Signal(str)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._stdout = b""
        self._stderr_tail: list[str] = []
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self._cancelled = False

    def start(self, args: list[str]) -> None:
        """Run `torchwork ARGS` (a command still running is ended first)."""
        self.cancel()
        self._stdout, self._stderr_tail, self._cancelled = b"", [], False
        program, arguments = torchwork_command(args)
        self.process.start(program, arguments)

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def cancel(self) -> None:
        """End the command; neither finished nor failed is emitted for it."""
        if self.running():
            self._cancelled = True
            self.process.kill()
            self.process.waitForFinished(3000)

    def _read_stdout(self) -> None:
        self._stdout += bytes(self.process.readAllStandardOutput())

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            self._stderr_tail = (self._stderr_tail + lines)[-20:]
            self.progress.emit(lines[-1])

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.failed.emit(f"could not start {self.process.program()}: "
                             f"{self.process.errorString()}")

    def _finished(self, code: int, status) -> None:
        self._read_stdout()
        self._read_stderr()
        if self._cancelled:
            return
        if status != QProcess.ExitStatus.NormalExit:
            self.failed.emit("the command stopped before it finished")
            return
        if code != 0:
            self.failed.emit(self._stderr_tail[-1] if self._stderr_tail else f"exit code {code}")
            return
        try:
            result = json.loads(self._stdout.decode("utf-8").strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.failed.emit("the command printed no result")
            return
        self.finished.emit(result)

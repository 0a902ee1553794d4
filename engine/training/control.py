"""Pause, resume and stop of a run: asked from any thread, honoured between optimizer steps.

Control is cooperative: the methods that ask only set flags under a condition; the
loop reads them at each step boundary. Under a process group what any rank was asked
(Ctrl-C, rank 0's command channel) is agreed first, so every rank pauses, resumes and
stops at the same step.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from . import events as ev

PAUSE_POLL_S = 0.5  # a paused DDP run's ranks agree this often whether to go on


class RunControl:
    """The control methods of engine.training.Trainer (a mixin: it reads the Trainer's
    ``_control`` condition, flags, ``dist`` and ``emit``)."""

    def pause(self) -> None:
        with self._control:
            self._paused = True
            self._flagged = True

    def resume(self) -> None:
        with self._control:
            self._paused = False
            self._flagged = self._stop_reason is not None
            self._control.notify_all()

    def stop(self, reason: str = "user") -> None:
        with self._control:
            if self._stop_reason is None:
                self._stop_reason = reason
            self._flagged = True
            self._control.notify_all()

    def _check_control(self) -> bool:
        """Honour pause and stop between optimizer steps; True when the run must stop.
        Under DDP what any rank was asked (Ctrl-C, rank 0's command channel) is agreed, so
        every rank pauses, resumes and stops at this same boundary."""
        if self.dist is not None:
            return self._check_control_together()
        if self._paused and self._stop_reason is None:
            self._pause_until(self._resumed_or_stopped)
        return self._stopping()

    def _check_control_together(self) -> bool:
        stop, pause = self.dist.agree(self._stop_reason is not None, self._paused)
        if pause and not stop:
            self._pause_until(self._agreed_go)
            stop = self._agreed_stop
        if not stop:  # a stop asked since: at the next boundary, on every rank
            return False
        self.stop("user")
        return self._stopping()

    def _pause_until(self, go: Callable[[], bool]) -> None:
        """Emit Paused, wait until ``go()``, emit Resumed; paused time is not training time."""
        self._tick_wall()
        self.emit(ev.Paused(self.step))
        paused_at = time.perf_counter()
        while not go():
            pass
        now = time.perf_counter()
        self._wall_mark = now
        self._interval_mark += now - paused_at
        self.emit(ev.Resumed(self.step))

    def _resumed_or_stopped(self) -> bool:
        with self._control:
            while self._paused and self._stop_reason is None:
                self._control.wait()
        return True

    def _agreed_go(self) -> bool:
        """One round of a pause under DDP: rank 0 waits a little for a command, then every
        rank agrees again (so a long pause never runs into the collective timeout)."""
        with self._control:
            if self._paused and self._stop_reason is None:
                self._control.wait(PAUSE_POLL_S)
        stop, pause = self.dist.agree(self._stop_reason is not None, self._paused)
        self._agreed_stop = stop
        return stop or not pause

    def _stopping(self) -> bool:
        if self._stop_reason is not None:
            self.emit(ev.StopRequested(self.step, self._stop_reason))
            return True
        return False

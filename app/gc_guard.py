"""No cyclic garbage collection while a worker thread of the window runs Python-heavy work.

A collection runs on whichever thread allocates when a threshold is crossed.
On a worker thread (the trace reader) it collected the wrapper of a Qt widget
and destroyed the widget there: the destructor waited for a Qt lock the GUI
thread held while the GUI thread waited for the GIL, and the window froze.
With torch.export on a worker thread, a collection on the GUI thread crashed
the process. So while any such job runs, automatic collection is off for the
whole process (reference counting still frees everything that is not a
cycle); it comes back on when the last job ends, and the GUI thread, the one
that allocates most, does the collecting again.
"""

from __future__ import annotations

import contextlib
import gc
import threading

_lock = threading.Lock()
_jobs = 0
_was_enabled = True


@contextlib.contextmanager
def paused():
    """Collection off while the block runs; nesting and overlapping jobs are fine."""
    _hold()
    try:
        yield
    finally:
        _release()


@contextlib.contextmanager
def lifted():
    """Inside paused(): hand this job's hold back while it only waits (for a run in another
    process), so the GUI thread collects meanwhile; the hold is taken again after."""
    _release()
    try:
        yield
    finally:
        _hold()


def _hold() -> None:
    global _jobs, _was_enabled
    with _lock:
        if _jobs == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _jobs += 1


def _release() -> None:
    global _jobs
    with _lock:
        _jobs -= 1
        if _jobs == 0 and _was_enabled:
            gc.enable()

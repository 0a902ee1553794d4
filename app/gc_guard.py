"""Python's cyclic garbage collection, only on the GUI thread.

Left automatic, a collection runs on whichever thread happens to allocate
when a threshold is crossed. On a worker thread (a trace reader, a
compression job) it can collect the wrapper of a Qt object and destroy that
object there: the destructor waits for a Qt lock the GUI thread holds while
the GUI thread waits for the GIL — the window froze — or it crashed outright
beside torch.export. So automatic collection is off and a GUI-thread timer
collects when the same thresholds are crossed (the recipe PyQt applications
use). ``paused()`` keeps collection away while torch export or training work
runs on a worker thread.
"""

from __future__ import annotations

import contextlib
import gc
import threading

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500

_lock = threading.Lock()
_pauses = 0


class _Collector(QObject):
    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    def collect(self) -> None:
        """Collect the generations whose thresholds are crossed, as gc itself would."""
        if _pauses:
            return
        counts, thresholds = gc.get_count(), gc.get_threshold()
        generation = -1
        for g in range(3):
            if counts[g] > thresholds[g]:
                generation = g
            else:
                break
        if generation >= 0:
            gc.collect(generation)


def install(app: QObject) -> None:
    """Collect garbage on ``app``'s (the GUI) thread only, from now on."""
    if app.findChild(_Collector) is None:
        gc.disable()
        _Collector(app)


@contextlib.contextmanager
def paused():
    """No collection while the block runs (on any thread); nesting and overlap are fine."""
    global _pauses
    with _lock:
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1

"""Work the window's first paint does not need, done right after it.

The window shows its configuration form and training plots first; the docks
behind other tabs and what they import (torch, scikit-learn, pyqtgraph plots
of hidden docks) are built once that first frame is on screen. A user who
acts before then waits for them instead of reaching a half-built window: any
input or close event for the window (its widgets, menus and dialogs) first
finishes the deferred work; another window's events (a tooltip closing) do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QWidget

# what a user can do to reach a deferred part: it waits for the deferred work first
INPUT = frozenset({QEvent.MouseButtonPress, QEvent.MouseButtonDblClick, QEvent.KeyPress,
                   QEvent.ShortcutOverride, QEvent.Shortcut, QEvent.Wheel,
                   QEvent.ContextMenu, QEvent.Close, QEvent.DragEnter, QEvent.Drop})


def placeholder() -> QWidget:
    """What a deferred dock shows in the first frame, should a restored layout show it."""
    label = QLabel("Loading…")
    label.setAlignment(Qt.AlignCenter)
    label.setEnabled(False)
    return label


class AfterFirstPaint(QObject):
    """Runs ``work`` once, after ``widget``'s first frame is painted, or earlier at the
    first user input or close event (so that no action reaches unbuilt parts).

    ``painted_at`` is the time.time() at which the first frame was complete (None
    before, or when input came first), ``done_at`` when ``work`` had run.
    """

    def __init__(self, widget: QWidget, work: Callable[[], None]):
        super().__init__(widget)
        self.work = work
        self.painted_at: float | None = None
        self.done_at: float | None = None
        self._widget = widget
        self._painting = False
        QApplication.instance().installEventFilter(self)

    @property
    def done(self) -> bool:
        return self.done_at is not None

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if kind == QEvent.Paint and obj is self._widget and not self._painting:
            self._painting = True
            QTimer.singleShot(0, self._painted)  # once this frame has been flushed
        elif kind in INPUT and self._ours(obj):
            self.run()
        return False

    def _ours(self, obj) -> bool:
        """Whether ``obj`` is the widget or one of its widgets, menus or dialogs."""
        widget = obj if isinstance(obj, QWidget) else None
        while widget is not None:
            if widget is self._widget:
                return True
            widget = widget.parentWidget()
        return False

    def _painted(self) -> None:
        if not self.done:
            self.painted_at = time.time()
            self.run()

    def run(self) -> None:
        """Do the deferred work now (no-op once done)."""
        if self.done:
            return
        self.done_at = 0.0  # re-entry from events sent while it runs is a no-op
        QApplication.instance().removeEventFilter(self)
        self.work()
        self.done_at = time.time()

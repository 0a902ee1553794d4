"""How the timeline is driven: mouse, keys and search hits move the view the way Perfetto does.

Wheel or W/S zoom time, drag or A/D pan, F fits the selection, Shift-drag
selects a range and a click picks a slice. The view box turns mouse gestures
into calls on the ``TimelineView``; ``TimelineInput`` holds the moves themselves
and is mixed into ``TimelineView``, so they stay its public methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.widgets.timeline_keys import KEYS

if TYPE_CHECKING:
    from app.widgets.timeline_view import TimelineView

ROW_PX = 20  # a row's height on screen; rows that do not fit are reached by dragging
ZOOM_STEP = 0.8  # one W press shows 80% of the time it showed
PAN_STEP = 0.15  # one A/D press moves by 15% of the view


class TimelineViewBox(pg.ViewBox):
    """Wheel zooms time only; drag pans; Shift-drag selects a range; a click picks a slice."""

    def __init__(self, view: TimelineView):
        super().__init__(invertY=True, enableMenu=False)
        self._view = view
        self._range_from: float | None = None
        self.setMouseEnabled(x=True, y=False)

    def wheelEvent(self, ev, axis=None) -> None:
        factor = ZOOM_STEP ** (ev.delta() / 120)
        self._view.zoom(factor, self.mapToView(ev.pos()).x())
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        here = self.mapToView(ev.pos())
        if ev.isStart() and ev.modifiers() & Qt.ShiftModifier:
            self._range_from = self.mapToView(ev.buttonDownPos()).x()
        if self._range_from is not None:  # a drag that began with Shift held
            self._view.select_range(self._range_from, here.x(), final=ev.isFinish())
            if ev.isFinish():
                self._range_from = None
            return
        before = self.mapToView(ev.lastPos())
        (x0, x1), (y0, y1) = self.viewRange()
        shift_x, shift_y = before.x() - here.x(), before.y() - here.y()
        self._view.set_window(x0 + shift_x, x1 + shift_x)
        self._view.scroll_rows(y0 + shift_y)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        at = self.mapToView(ev.pos())
        self._view.pick(at.x(), at.y(), tolerance_us=3 * self.viewPixelSize()[0])


class TimelineInput:
    """Zoom, pan, fit, keys and search-hit stepping for ``TimelineView``.

    A mixin rather than a helper object so that tests, the profiler panel and the
    benchmark keep calling ``view.zoom()`` or ``view.next_hit()`` directly. It
    works on the view's own widgets and state (``viewbox``, ``plot``, ``index``,
    ``selected``, ``range_us``, ``search_box``, ``hits``, ...), which
    ``TimelineView`` builds.
    """

    # --- moving around -----------------------------------------------------------
    def window(self) -> tuple[float, float]:
        """The time shown, in µs from the trace's start."""
        return tuple(self.viewbox.viewRange()[0])

    def set_window(self, t0: float, t1: float) -> None:
        self.viewbox.setXRange(t0, t1, padding=0)

    def zoom(self, factor: float, centre: float | None = None) -> None:
        """Show ``factor`` times the time shown now, keeping ``centre`` where it is."""
        t0, t1 = self.window()
        c = (t0 + t1) / 2 if centre is None else centre
        self.set_window(c - (c - t0) * factor, c + (t1 - c) * factor)

    def pan(self, fraction: float) -> None:
        t0, t1 = self.window()
        shift = (t1 - t0) * fraction
        self.set_window(t0 + shift, t1 + shift)

    def scroll_rows(self, top: float) -> None:
        """Put row ``top`` at the top; rows are ROW_PX high and stay within the trace."""
        rows = len(self.index.rows) if self.index else 1
        shown = max(self.viewbox.height(), ROW_PX) / ROW_PX
        top = min(max(top, -0.25), max(-0.25, rows + 0.25 - shown))
        self.viewbox.setYRange(top, top + shown, padding=0)

    def fit(self) -> None:
        """Fit the selected slice, else the selected range, else the whole trace."""
        if self.index is None:
            return
        if self.selected is not None:
            i = self.selected
            s, e = float(self.index.start_us[i]), float(self.index.end_us[i])
        elif self.range_us is not None:
            s, e = self.range_us
        else:
            s, e = 0.0, self.index.span_us
        margin = max((e - s) * 0.05, 0.05)
        self.set_window(s - margin, e + margin)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        QTimer.singleShot(0, self, self._keep_rows)

    def _keep_rows(self) -> None:
        self.scroll_rows(self.viewbox.viewRange()[1][0])

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.KeyPress and self._key(event):
            return True
        if event.type() == QEvent.Resize and obj is self.plot:
            QTimer.singleShot(0, self, self._keep_rows)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event) -> None:
        if not self._key(event):
            super().keyPressEvent(event)

    def _key(self, event) -> bool:
        """A key of ``KEYS`` (W/S zoom, A/D pan, F fit) runs its move."""
        if self.index is None or event.modifiers() & (Qt.ControlModifier | Qt.AltModifier):
            return False
        entry = KEYS.get(event.key())
        if entry is None:
            return False
        getattr(self, entry[1])()
        return True

    def zoom_in(self) -> None:
        self.zoom(ZOOM_STEP, self._mouse_time())

    def zoom_out(self) -> None:
        self.zoom(1 / ZOOM_STEP, self._mouse_time())

    def pan_left(self) -> None:
        self.pan(-PAN_STEP)

    def pan_right(self) -> None:
        self.pan(PAN_STEP)

    def _mouse_time(self) -> float | None:
        pos = self.plot.mapFromGlobal(self.cursor().pos())
        if not self.plot.rect().contains(pos):
            return None
        scene = self.plot.mapToScene(pos)
        if not self.viewbox.sceneBoundingRect().contains(scene):
            return None
        return self.viewbox.mapSceneToView(scene).x()

    # --- search ------------------------------------------------------------------
    def search(self, text: str) -> int:
        """Find slices named like ``text``; returns how many. Next/previous step through them."""
        self.search_box.setText(text)
        self._search_timer.stop()
        self._run_search()
        return len(self.hits)

    def _run_search(self) -> None:
        text = self.search_box.text()
        self.hits = self.index.search(text) if self.index is not None and text.strip() else \
            np.empty(0, dtype=np.int64)
        self.hit = -1
        self._show_hit_count()

    def _search_enter(self) -> None:
        if self._search_timer.isActive():
            self._search_timer.stop()
            self._run_search()
        if QApplication.keyboardModifiers() & Qt.ShiftModifier:
            self.previous_hit()
        else:
            self.next_hit()

    def next_hit(self) -> None:
        self._step_hit(+1)

    def previous_hit(self) -> None:
        self._step_hit(-1)

    def _step_hit(self, step: int) -> None:
        if not len(self.hits):
            return
        self.hit = (self.hit + step) % len(self.hits) if self.hit >= 0 else \
            (0 if step > 0 else len(self.hits) - 1)
        self.select_event(int(self.hits[self.hit]), centre=True)
        self._show_hit_count()

    def _show_hit_count(self) -> None:
        n = len(self.hits)
        if not self.search_box.text().strip():
            self.hit_label.setText("")
        elif n == 0:
            self.hit_label.setText("no matches")
        else:
            where = f"{self.hit + 1} of {n:,}" if self.hit >= 0 else f"{n:,} matches"
            self.hit_label.setText(where)

"""A native trace timeline: a lane per thread or CUDA stream, nested slices, fluid on big traces.

The slices item paints only what the view shows, asking the engine's
``TraceIndex.visible`` for each visible row's bars at the current pixel size,
so a frame costs about the same for a thousand slices or a million. Mouse and
keys follow Perfetto: wheel or W/S zoom time, drag or A/D pan, F fits the
selection, Shift-drag selects a range whose time per name fills a table, and a
click shows the slice's name, duration, input shapes and args.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
import qtawesome as qta
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.widgets.live_plot import DARK, LIGHT
from engine.profiling.timeline import TraceIndex

ROW_PX = 20  # a row's height on screen; rows that do not fit are reached by dragging
LABEL_MIN_PX = 28  # a slice this wide gets its name drawn on it
ZOOM_STEP = 0.8  # one W press shows 80% of the time it showed
PAN_STEP = 0.15  # one A/D press moves by 15% of the view
STATS_ROWS = 500  # names listed for a range; the rest are small


def format_us(us: float) -> str:
    """A duration in the unit that reads best: 850 µs, 12.3 ms, 1.25 s."""
    if abs(us) < 1000:
        return f"{us:.3g} µs" if abs(us) < 100 else f"{us:.0f} µs"
    if abs(us) < 1e6:
        return f"{us / 1000:.4g} ms"
    return f"{us / 1e6:.4g} s"


class _SlicesItem(pg.GraphicsObject):
    """Paints the visible rows of the trace in device pixels: bars, names, selection."""

    def __init__(self, view: TimelineView):
        super().__init__()
        self._view = view
        self._argb = np.zeros(0, dtype=np.uint32)  # a colour per category, as the image wants
        self._image = np.zeros((1, 1), dtype=np.uint32)
        self._text_pens: dict[int, QPen] = {}
        self._font = QFont()
        self._font.setPointSizeF(8)
        self._metrics = QFontMetrics(self._font)
        self.separator = QColor("#d0d7de")
        self.outline = QColor("#1f2328")
        self.bars_drawn = 0  # in the last frame: what level of detail leaves to draw

    def set_index(self, index: TraceIndex) -> None:
        self._text_pens = {}
        self._argb = np.array([QColor(index.colour(c)).rgba()
                               for c in range(len(index.categories))], dtype=np.uint32)
        for c in range(len(index.categories)):
            colour = QColor(index.colour(c))
            light = 0.299 * colour.redF() + 0.587 * colour.greenF() + 0.114 * colour.blueF()
            self._text_pens[c] = QPen(QColor("#111111" if light > 0.55 else "#ffffff"))
        self.prepareGeometryChange()
        self.update()

    def boundingRect(self) -> QRectF:
        index = self._view.index
        if index is None:
            return QRectF()
        return QRectF(0, 0, max(index.span_us, 1e-3), max(len(index.rows), 1))

    def paint(self, painter: QPainter, *args) -> None:
        """Rasterise each visible row's bars into one image line with numpy, then label.

        However many bars a row has, its cost is a few array operations over the
        view's width and one ``drawImage``: no Python object per bar.
        """
        index = self._view.index
        vb = self.getViewBox()
        if index is None or vb is None:
            return
        (x0, x1), (y0, y1) = vb.viewRange()
        t = painter.transform()
        sx, dx, sy, dy = t.m11(), t.dx(), t.m22(), t.dy()
        width = math.ceil((x1 - x0) * sx)
        if sx <= 0 or width <= 0:
            return
        px_us = 1.0 / sx
        painter.resetTransform()
        painter.setRenderHint(QPainter.SmoothPixmapTransform, False)
        first, last = max(0, math.floor(min(y0, y1))), min(len(index.rows), math.ceil(max(y0, y1)))
        image = np.zeros((max(last - first, 1), width), dtype=np.uint32)
        labels: list[tuple[QRectF, str, int]] = []
        row_h = abs(sy)
        h = row_h - 2
        left_px = x0 * sx + dx
        drawn = 0
        for r in range(first, last):
            bars = index.visible(r, x0, x1, px_us)
            if not len(bars):
                continue
            drawn += len(bars)
            a = (bars.start - x0) * sx
            b = (bars.end - x0) * sx
            image[r - first] = self._raster(a, b, bars.category, width)
            if h >= 10:
                top = min(r * sy, (r + 1) * sy) + dy + 1
                lo, hi = np.maximum(a, 0.0), np.minimum(b, width)
                wide = np.flatnonzero((hi - lo >= LABEL_MIN_PX) & (bars.count == 1))
                for x, w, name, cat in zip((lo[wide] + left_px + 2).tolist(),
                                           (hi[wide] - lo[wide] - 4).tolist(),
                                           index.name_id[bars.event[wide]].tolist(),
                                           bars.category[wide].tolist()):
                    labels.append((QRectF(x, top, w, h), index.names[name], cat))
        self.bars_drawn = drawn
        self._image = image  # QImage reads this buffer: keep it alive while painting
        qimage = QImage(image.data, width, image.shape[0], width * 4,
                        QImage.Format_ARGB32_Premultiplied)
        for r in range(first, last):
            top = min(r * sy, (r + 1) * sy) + dy + 1
            painter.drawImage(QRectF(left_px, top, width, h), qimage,
                              QRectF(0, r - first, width, 1))
        painter.setFont(self._font)
        pen = None
        for rect, name, cat in sorted(labels, key=lambda label: label[2]):
            if self._text_pens[cat] is not pen:
                pen = self._text_pens[cat]
                painter.setPen(pen)
            text = self._metrics.elidedText(name, Qt.ElideRight, int(rect.width()))
            painter.drawText(rect, Qt.AlignVCenter | Qt.AlignLeft, text)
        self._paint_separators(painter, index, x0, x1, sx, dx, sy, dy)
        self._paint_selection(painter, index, x0, x1, sx, dx, sy, dy)

    def _raster(self, a: np.ndarray, b: np.ndarray, category: np.ndarray,
                width: int) -> np.ndarray:
        """One row's pixels: each bar covers at least one pixel; neighbouring bars three
        pixels wide or more are parted by a transparent pixel, so slices of one colour
        stay apart."""
        p0 = np.clip(np.floor(a), 0, width - 1).astype(np.int64)
        p1 = np.clip(np.maximum(np.ceil(b), p0 + 1), 1, width).astype(np.int64)
        lengths = np.maximum(p1 - p0, 1)
        bar = np.repeat(np.arange(len(a)), lengths)
        cols = np.arange(len(bar)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + \
            np.repeat(p0, lengths)
        owner = np.full(width + 1, -1, dtype=np.int64)
        owner[np.minimum(cols, width - 1)] = bar
        owner = owner[:width]
        edge = np.flatnonzero((owner[1:] != owner[:-1]) & (owner[1:] >= 0) & (owner[:-1] >= 0))
        owner[edge[lengths[owner[edge]] >= 3]] = -1
        colours = np.append(self._argb[category], np.uint32(0))
        return colours[owner]  # -1 picks the transparent last entry

    def _paint_separators(self, painter, index, x0, x1, sx, dx, sy, dy) -> None:
        painter.setPen(QPen(self.separator, 1))
        for track in index.tracks[1:]:
            y = track.first_row * sy + dy
            painter.drawLine(x0 * sx + dx, y, x1 * sx + dx, y)

    def _paint_selection(self, painter, index, x0, x1, sx, dx, sy, dy) -> None:
        i = self._view.selected
        if i is None or index.end_us[i] < x0 or index.start_us[i] > x1:
            return
        row = index.row_of(i)
        left = max(float(index.start_us[i]), x0) * sx + dx
        right = min(float(index.end_us[i]), x1) * sx + dx
        top = min(row * sy, (row + 1) * sy) + dy
        painter.setPen(QPen(self.outline, 2))
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(QRectF(left - 1, top, max(right - left, 1) + 2, abs(sy)))


class _TimelineViewBox(pg.ViewBox):
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


class TimelineView(QWidget):
    """A trace's timeline with search, a slice's details and a range's time per name."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.index: TraceIndex | None = None
        self.selected: int | None = None
        self.hits = np.empty(0, dtype=np.int64)
        self.hit = -1  # position in ``hits`` of the slice shown, -1 before the first
        self.range_us: tuple[float, float] | None = None
        self._build()
        self.apply_theme(False)

    # --- layout ------------------------------------------------------------------
    def _build(self) -> None:
        self.search_box = QLineEdit(placeholderText="Search slices by name (Enter: next)")
        self.search_box.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=150)
        self._search_timer.timeout.connect(self._run_search)
        self.search_box.textChanged.connect(self._search_timer.start)
        self.search_box.returnPressed.connect(self._search_enter)
        self.prev_button = self._tool("mdi6.chevron-up", "Previous match (Shift+Enter)",
                                      self.previous_hit)
        self.next_button = self._tool("mdi6.chevron-down", "Next match (Enter)", self.next_hit)
        self.fit_button = self._tool("mdi6.fit-to-screen-outline",
                                     "Fit the selection, or everything (F)", self.fit)
        self.hit_label = QLabel("")
        hint = QLabel("W/S zoom · A/D pan · drag to pan · Shift-drag: range · click: details")
        hint.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.search_box, 2)
        for w in (self.prev_button, self.next_button, self.hit_label, self.fit_button):
            top.addWidget(w)
        top.addWidget(hint, 3, Qt.AlignRight)
        self.legend = QLabel()
        self.legend.setWordWrap(True)

        self.viewbox = _TimelineViewBox(self)
        time_axis = pg.AxisItem("bottom")
        time_axis.setScale(1e-6)
        time_axis.setLabel("time since the trace began", units="s")
        self.track_axis = pg.AxisItem("left")
        self.track_axis.setStyle(tickLength=0)
        self.plot = pg.PlotWidget(viewBox=self.viewbox,
                                  axisItems={"bottom": time_axis, "left": self.track_axis})
        self.plot.getPlotItem().hideButtons()
        self.plot.setFocusPolicy(Qt.StrongFocus)
        self.slices = _SlicesItem(self)
        self.viewbox.addItem(self.slices)
        self.region = pg.LinearRegionItem(movable=True)
        self.region.setZValue(20)
        self.region.hide()
        self.region.sigRegionChangeFinished.connect(self._region_moved)
        self.viewbox.addItem(self.region, ignoreBounds=True)
        self.plot.installEventFilter(self)
        self.plot.viewport().installEventFilter(self)

        self.info = QTextBrowser()
        self.info.setPlaceholderText("Click a slice to see its name, duration, shapes and args.")
        self.range_label = QLabel("Shift-drag across the timeline to sum time per name.")
        self.range_label.setWordWrap(True)
        self.range_table = QTableWidget(0, 4)
        self.range_table.setHorizontalHeaderLabels(["name", "time", "% of range", "slices"])
        self.range_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.range_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.range_table.verticalHeader().hide()
        self.range_table.verticalHeader().setDefaultSectionSize(20)
        self.range_table.setWordWrap(False)
        header = self.range_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for c in (1, 2, 3):
            header.setSectionResizeMode(c, QHeaderView.ResizeToContents)
        side = QSplitter(Qt.Vertical)
        range_box = QWidget()
        range_layout = QVBoxLayout(range_box)
        range_layout.setContentsMargins(4, 2, 0, 0)
        range_layout.addWidget(self.range_label)
        range_layout.addWidget(self.range_table)
        side.addWidget(self.info)
        side.addWidget(range_box)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([900, 320])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.legend)
        layout.addWidget(split, 1)

    def _tool(self, icon: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setIcon(qta.icon(icon))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.clicked.connect(slot)
        return button

    # --- data --------------------------------------------------------------------
    def set_trace(self, index: TraceIndex) -> None:
        """Show ``index`` whole; search, selection and range start afresh."""
        self.index = index
        self.selected, self.range_us = None, None
        self.hits, self.hit = np.empty(0, dtype=np.int64), -1
        self.slices.set_index(index)
        self.track_axis.setTicks([[(t.first_row + 0.5, t.label) for t in index.tracks], []])
        widest = max(QFontMetrics(self.track_axis.font()).horizontalAdvance(t.label)
                     for t in index.tracks)
        self.track_axis.setWidth(min(widest + 16, 260))
        span = max(index.span_us, 1e-3)
        self.viewbox.setLimits(xMin=-0.02 * span, xMax=1.02 * span, minXRange=0.01,
                               maxXRange=1.04 * span)
        self.region.hide()
        self.range_table.setRowCount(0)
        self.info.clear()
        self._style_legend()
        self._run_search()
        self.fit()
        self.scroll_rows(-0.25)

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
        QTimer.singleShot(0, self._keep_rows)

    def _keep_rows(self) -> None:
        self.scroll_rows(self.viewbox.viewRange()[1][0])

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.KeyPress and self._key(event):
            return True
        if event.type() == QEvent.Resize and obj is self.plot:
            QTimer.singleShot(0, self._keep_rows)
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event) -> None:
        if not self._key(event):
            super().keyPressEvent(event)

    def _key(self, event) -> bool:
        """W/S zoom in/out around the mouse (or the middle), A/D pan, F fit."""
        if self.index is None or event.modifiers() & (Qt.ControlModifier | Qt.AltModifier):
            return False
        key = event.key()
        if key in (Qt.Key_W, Qt.Key_S):
            self.zoom(ZOOM_STEP if key == Qt.Key_W else 1 / ZOOM_STEP, self._mouse_time())
        elif key in (Qt.Key_A, Qt.Key_D):
            self.pan(-PAN_STEP if key == Qt.Key_A else PAN_STEP)
        elif key == Qt.Key_F:
            self.fit()
        else:
            return False
        return True

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

    # --- selection ---------------------------------------------------------------
    def pick(self, t: float, y: float, tolerance_us: float = 0.0) -> int | None:
        """Select the slice at time ``t`` on row ``y`` (view units), or clear the selection."""
        found = None
        if self.index is not None and 0 <= y < len(self.index.rows):
            found = self.index.event_at(int(y), t, tolerance_us)
        if found is None:
            self.selected = None
            self.info.clear()
            self.slices.update()
        else:
            self.select_event(found)
        return found

    def select_event(self, i: int, centre: bool = False) -> None:
        """Select slice ``i``, show its details and, with ``centre``, bring it into view."""
        self.selected = i
        self.info.setHtml(self._info_html(self.index.event_info(i)))
        if centre:
            s, e = float(self.index.start_us[i]), float(self.index.end_us[i])
            t0, t1 = self.window()
            width = t1 - t0
            if not 0.05 * width <= e - s <= 0.8 * width:  # a sliver, or cut off
                width = max((e - s) / 0.6, 0.05)  # the hit takes 60% of the view
            mid = (s + e) / 2
            self.set_window(mid - width / 2, mid + width / 2)
            row = self.index.row_of(i)
            y0, y1 = self.viewbox.viewRange()[1]
            if not (y0 <= row and row + 1 <= y1):
                self.scroll_rows(row - (y1 - y0) / 2)
        self.slices.update()

    def info_text(self) -> str:
        return self.info.toPlainText()

    def _info_html(self, info: dict) -> str:
        colour = self.index.colour(self.index.categories.index(info["category"]))
        rows = [("category", f'<span style="color:{colour}">&#9632;</span> '
                 f'{html.escape(info["category"])}'),
                ("duration", format_us(info["dur_us"])),
                ("start", format_us(info["start_us"]) + " after the trace began"),
                ("track", html.escape(f'{info["track"]}, depth {info["depth"]}'))]
        dims, types = info["shapes"].get("Input Dims"), info["shapes"].get("Input type")
        if dims is not None or types is not None:
            n = max(len(dims or ()), len(types or ()))
            inputs = []
            for k in range(n):
                kind = types[k] if types and k < len(types) else ""
                dim = dims[k] if dims and k < len(dims) else ""
                inputs.append(html.escape(f"{kind} {dim}".strip()) or "–")
            rows.append(("inputs", "<br>".join(inputs)))
        for key, value in info["args"].items():
            text = str(value)
            rows.append((html.escape(str(key)), html.escape(text[:300] + "…" * (len(text) > 300))))
        body = "".join(f'<tr><td style="padding-right:8px;color:gray">{k}</td><td>{v}</td></tr>'
                       for k, v in rows)
        return f"<b>{html.escape(info['name'])}</b><table>{body}</table>"

    # --- ranges ------------------------------------------------------------------
    def select_range(self, t0: float, t1: float, final: bool = True) -> None:
        """Select [t0, t1] (µs); once final, fill the table with time per name inside it."""
        t0, t1 = min(t0, t1), max(t0, t1)
        self.range_us = (t0, t1)
        self.region.blockSignals(True)
        self.region.setRegion((t0, t1))
        self.region.blockSignals(False)
        self.region.show()
        if final:
            self._fill_range_table()

    def _region_moved(self) -> None:
        self.select_range(*self.region.getRegion())

    def range_rows(self) -> list[tuple[str, str, str, str]]:
        """The range table's cells, top to bottom."""
        t = self.range_table
        return [tuple(t.item(r, c).text() for c in range(4)) for r in range(t.rowCount())]

    def _fill_range_table(self) -> None:
        if self.index is None or self.range_us is None:
            return
        t0, t1 = self.range_us
        stats = self.index.range_stats(t0, t1)
        width = max(t1 - t0, 1e-9)
        self.range_label.setText(f"{format_us(t1 - t0)} selected ({format_us(t0)} to "
                                 f"{format_us(t1)}): {len(stats):,} names, time per name "
                                 "inside it, summed over lanes; a parent's time includes its "
                                 "children's")
        table = self.range_table
        table.setSortingEnabled(False)
        table.setRowCount(min(len(stats), STATS_ROWS))
        for r, (name, total, count) in enumerate(stats[:STATS_ROWS]):
            cells = (name, format_us(total), f"{100 * total / width:.1f}", f"{count:,}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                item.setToolTip(name)
                table.setItem(r, c, item)

    # --- looks -------------------------------------------------------------------
    def apply_theme(self, dark: bool) -> None:
        theme = DARK if dark else LIGHT
        fg = QColor(theme["foreground"])
        self.plot.setBackground(QColor(theme["background"]))
        item = self.plot.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
        self.slices.separator = QColor("#3a3d42" if dark else "#d0d7de")
        self.slices.outline = QColor("#ffffff" if dark else "#111111")
        self.region.setBrush(pg.mkBrush(QColor(90, 150, 255, 45)))
        for line in self.region.lines:
            line.setPen(pg.mkPen(QColor("#6ab0ff" if dark else "#2f6fd6"), width=1))
        self._style_legend()
        self.slices.update()

    def _style_legend(self) -> None:
        if self.index is None:
            self.legend.setText("")
            return
        present = np.unique(self.index.category_id)
        items = [f'<span style="color:{self.index.colour(c)}">&#9632;</span>&nbsp;'
                 f'{html.escape(self.index.categories[c])}' for c in present.tolist()]
        self.legend.setText("&nbsp;&nbsp; ".join(items))

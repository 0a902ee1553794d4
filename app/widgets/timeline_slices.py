"""The timeline's slices, painted so a frame costs the same for a thousand slices or a million.

Only what the view shows is painted: each visible row asks the engine's
``TraceIndex.visible`` for its bars at the current pixel size (the level of
detail), and the bars are rasterised with numpy instead of one Qt item each.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen

from engine.profiling.timeline import TraceIndex

if TYPE_CHECKING:
    from app.widgets.timeline_view import TimelineView

LABEL_MIN_PX = 28  # a slice this wide gets its name drawn on it


class SlicesItem(pg.GraphicsObject):
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

"""A plot for curves that grow while a run trains, drawn at a bounded rate.

Values are appended into preallocated numpy buffers that double when full, so
an append is amortised O(1) and the plot reads views, never copies. Each
curve's PlotDataItem is created once; ``refresh()`` (called from a timer by
the owner) hands new data to the curves that changed and to no other, and
pyqtgraph clips to the visible range and peak-downsamples to the pixel width,
so a million points cost about what a few thousand do.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsItem

from app.widgets.growing import GrowingColumns, GrowingSeries

# Mid-luminance colours: at least 3:1 contrast on white and on near-black alike.
PALETTE = ("#2f7ed8", "#d95f02", "#2ca02c", "#8e6cd6", "#e7298a", "#1f9bb0", "#c77c02")
LIGHT = {"background": "#ffffff", "foreground": "#333333"}
DARK = {"background": "#1e1f22", "foreground": "#d0d0d0"}
LEGEND_MAX_SHARE = 0.6  # of the plot area's height, at most, for a legend inside it


@dataclass
class _Curve:
    label: str
    item: pg.PlotDataItem
    table: GrowingColumns
    y: str
    color: QColor
    shown: bool = True
    drawn_revision: int = -1
    drawn_x: str | None = None
    connect_all: bool | None = None  # what the item was last told: "all" (no NaN check) or not


class LivePlot(pg.PlotWidget):
    """A titled plot with a legend, a crosshair read-out and curves redrawn by ``refresh()``.

    A curve reads its x and y from columns of a ``GrowingColumns`` table. By
    default it gets a ``GrowingSeries`` of its own, fed with ``append``; curves
    may instead share a table with others (``table=``, ``y=``), so one record of
    a training step feeds several curves, and ``set_x_column`` switches all of
    them to another column of their tables (step, epoch, wall time) without
    losing anything.
    """

    legend: pg.LegendItem | None = None
    painted = Signal()  # after each paint, its time added to paint_ms

    def __init__(self, title: str, *, y_label: str, y_units: str = "", x_label: str = "x",
                 x_units: str = "", x_column: str = "x", log_y: bool = False,
                 dark: bool = False, steady: bool = False, x_origin: float | None = None,
                 parent=None):
        """``x_origin``: where the x range starts at the latest (plots of one run share it,
        so curves that begin at different steps still line up one above the other)."""
        super().__init__(parent)
        self._steady = steady
        self._x_origin = x_origin
        self._following = True
        self._fitted = False
        self.paint_ms = 0.0  # time spent painting since the owner last read it
        self._title = title
        self._x_column = x_column
        self._curves: dict[str, _Curve] = {}
        self._theme = LIGHT
        item = self.getPlotItem()
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.setLogMode(y=log_y)
        if log_y:  # empty, a log axis of 1 to 10 labels its minor ticks 2 ... 9 alone
            item.getViewBox().setYRange(-4, 0, padding=0)
        item.showGrid(x=True, y=True, alpha=0.15)
        for name in ("left", "bottom"):
            item.getAxis(name).enableAutoSIPrefix(False)
            # Grid lines at major and minor ticks only: the third level cost ~2 ms a paint.
            item.getAxis(name).setStyle(maxTickLevel=1)
            # Replaying an axis's recorded text costs more than drawing the curve:
            # keep it as a pixmap until its range or size changes.
            item.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        item.setLabel("left", y_label, units=y_units or None)
        item.setLabel("bottom", x_label, units=x_units or None)
        # Title on the left and legend on the right of the header row: neither covers data.
        item.titleLabel.setAttr("justify", "left")
        self.legend = pg.LegendItem(offset=None, labelTextSize="8pt", horSpacing=10,
                                    verSpacing=-8)
        self._legend_inside: bool | None = None  # placed by _fit_legend
        self._legend_fits = True  # whether it has room (see _fit_legend)
        item.legend = self.legend  # curves added with a name join it
        self._vline = pg.InfiniteLine(angle=90, movable=False)
        self._vline.setZValue(50)
        self._vline.hide()
        item.addItem(self._vline, ignoreBounds=True)
        self._readout = pg.TextItem(anchor=(0, 0))
        self._readout.setParentItem(item.getViewBox())  # placed in pixels, not data units
        self._readout.setZValue(60)
        self._readout.hide()
        self._mouse = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=30,
                                     slot=self._mouse_moved)
        if steady:
            vb = item.getViewBox()
            vb.disableAutoRange()
            vb.sigRangeChangedManually.connect(self._zoomed_by_user)
            item.autoBtn.clicked.connect(self.follow_data)
            item.hideButtons()
        self.apply_theme(dark)

    # --- view range --------------------------------------------------------------
    def follow_data(self) -> None:
        """Zoom out to all the data and keep following it as it grows."""
        if not self._steady:
            self.getPlotItem().enableAutoRange()
            return
        self._following = True
        self._fitted = False  # the next data sets the range afresh, even if it comes later
        item = self.getPlotItem()
        item.getViewBox().disableAutoRange()  # the "A" button turned it on
        item.hideButtons()
        self._fit(force=True)

    def _zoomed_by_user(self, _mask) -> None:
        self._following = False
        self.getPlotItem().showButtons()  # "A" brings the following back

    def _fit(self, force: bool = False) -> None:
        """Keep all the data in view, changing the range in steps, not on every frame.

        A live curve that grows by a point per frame would otherwise move both
        axes on every redraw, and re-laying out the tick labels costs more than
        drawing the curve. The x range gets 25% headroom ahead of the data and
        the y range 10% either side; the range changes only when data leaves it
        or fills less than half of it. The first fit after ``follow_data`` (a
        new run) ignores the range the previous data left.
        """
        bounds = self._data_bounds()
        if bounds is None:
            return
        force = force or not self._fitted
        self._fitted = True
        log_y = self.getPlotItem().getAxis("left").logMode
        x0, x1 = visible_span(*bounds[0])
        if self._x_origin is not None:
            x0 = min(x0, self._x_origin)
        y0, y1 = visible_span(*bounds[1], log=log_y)
        vb = self.getPlotItem().getViewBox()
        (vx0, vx1), (vy0, vy1) = vb.viewRange()
        span_x, span_y = x1 - x0, y1 - y0
        if force or x0 < vx0 or x1 > vx1 or span_x < 0.5 * (vx1 - vx0):
            vb.setXRange(x0, x0 + span_x * 1.25, padding=0)
        if force or y0 < vy0 or y1 > vy1 or span_y < 0.5 * (vy1 - vy0):
            vb.setYRange(y0 - 0.1 * span_y, y1 + 0.1 * span_y, padding=0)

    def _data_bounds(self):
        """(x0, x1), (y0, y1) of the shown curves' finite data, in view coordinates.

        From the buffers, not from pyqtgraph's items: those hold only what is
        clipped to the current view.
        """
        xs, ys = [], []
        for c in self._curves.values():
            if not c.shown or len(c.table) == 0:
                continue
            x, y = c.table.column(self._x_column), c.table.column(c.y)
            log_y = c.item.opts["logMode"][1]
            if (c.table.all_finite(self._x_column) and c.table.all_finite(c.y)
                    and (not log_y or c.table.all_positive(c.y))):
                # No mask to build: a min and max of each column (20 runs of 100,000
                # steps took 115 ms a redraw the other way; bench/run_overlay.py).
                lo, hi = y.min(), y.max()
                xs += [x.min(), x.max()]
                ys += [np.log10(lo), np.log10(hi)] if log_y else [lo, hi]
                continue
            if log_y:
                with np.errstate(invalid="ignore", divide="ignore"):
                    y = np.log10(np.where(y > 0, y, np.nan))
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.any():
                xs += [x[ok].min(), x[ok].max()]
                ys += [y[ok].min(), y[ok].max()]
        if not xs:
            return None
        return (min(xs), max(xs)), (min(ys), max(ys))

    # --- curves ------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        """Paint, and add the time it took to ``paint_ms`` so the owner can pace redraws."""
        started = time.perf_counter()
        super().paintEvent(event)
        self.paint_ms += (time.perf_counter() - started) * 1000
        self.painted.emit()

    def add_curve(self, name: str, label: str, color: str | QColor, *,
                  table: GrowingColumns | None = None, y: str = "y", width: float = 1.0,
                  symbol: str | None = None, symbol_size: int = 6,
                  capacity: int = 1024, style=None, legend: bool = True) -> pg.PlotDataItem:
        """Create the curve's one PlotDataItem; everything after is ``setData`` on it.

        ``style``: a Qt.PenStyle (solid by default); ``legend=False`` keeps the curve out
        of the legend (the crosshair read-out still names it)."""
        if name in self._curves:
            raise ValueError(f"curve {name!r} already exists in plot {self._title!r}")
        table = GrowingSeries(capacity) if table is None else table
        for column in (self._x_column, y):
            if column not in table.names:
                raise KeyError(f"curve {name!r}: its table has no column {column!r} "
                               f"(columns: {', '.join(table.names)})")
        color = QColor(color)
        # Peak downsampling keeps each bin's min and max, so two bins a pixel draw the
        # same envelope as pyqtgraph's default five, with 2.5 times fewer points.
        markers = {} if symbol is None else dict(symbol=symbol, symbolSize=symbol_size,
                                                 symbolBrush=color, symbolPen=color)
        pen = pg.mkPen(color, width=width) if style is None else \
            pg.mkPen(color, width=width, style=style)
        item = pg.PlotDataItem(pen=pen, name=label if legend else None, connect="finite",
                               autoDownsampleFactor=2.0, **markers)
        if markers:  # the legend draws markers from the scatter item, styled only with data
            item.scatter.setBrush(color)
            item.scatter.setPen(color)
            item.scatter.setSize(symbol_size)
        self.getPlotItem().addItem(item)
        self._curves[name] = _Curve(label, item, table, y, color)
        self._fit_legend()
        return item

    def remove_curve(self, name: str) -> None:
        """Take a curve, and its legend entry, off the plot."""
        c = self._curves.pop(name)
        self.getPlotItem().removeItem(c.item)  # and from the legend
        self._fit_legend()

    def curve_names(self) -> list[str]:
        return list(self._curves)

    def item(self, name: str) -> pg.PlotDataItem:
        return self._curves[name].item

    def append(self, name: str, x: float, y: float) -> None:
        """Add a point to a curve that has its own series; it is drawn at the next refresh."""
        self._own_series(name).append(x, y)

    def append_many(self, name: str, xs, ys) -> None:
        self._own_series(name).append_many(xs, ys)

    def _own_series(self, name: str) -> GrowingSeries:
        table = self._curves[name].table
        if not isinstance(table, GrowingSeries):
            raise TypeError(f"curve {name!r} reads a shared table: append to the table instead")
        return table

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The curve's buffered points (views): what the next refresh will draw."""
        c = self._curves[name]
        return c.table.column(self._x_column), c.table.column(c.y)

    def drawn_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """What the curve was last given by ``refresh`` (empty before the first)."""
        x, y = self._curves[name].item.getOriginalDataset()
        return (np.empty(0), np.empty(0)) if x is None else (x, y)

    def set_curve_shown(self, name: str, shown: bool) -> None:
        """Show or hide a curve and its legend entry; a hidden curve is not updated."""
        c = self._curves[name]
        if c.shown == shown:
            return
        c.shown = shown
        c.item.setVisible(shown)
        if shown and c.item.name():  # a curve kept out of the legend stays out
            self.legend.addItem(c.item, c.label)
            self._style_legend()
        else:
            self.legend.removeItem(c.item)
        self._fit_legend()

    def set_curve_pen(self, name: str, color: str | QColor, width: float = 1.0) -> None:
        self._curves[name].item.setPen(pg.mkPen(color, width=width))

    @property
    def x_column(self) -> str:
        return self._x_column

    def set_x_column(self, column: str, label: str, units: str = "") -> None:
        """Plot every curve against another column of its table, and zoom out to all of it."""
        for name, c in self._curves.items():
            if column not in c.table.names:
                raise KeyError(f"curve {name!r}: its table has no column {column!r}")
        self._x_column = column
        self.getPlotItem().setLabel("bottom", label, units=units or None)
        self.follow_data()
        self.hide_crosshair()

    def is_dirty(self, name: str) -> bool:
        c = self._curves[name]
        return c.drawn_revision != c.table.revision or c.drawn_x != self._x_column

    def has_changes(self) -> bool:
        """Whether a shown curve has data it has not drawn yet."""
        return any(c.shown and self.is_dirty(name) for name, c in self._curves.items())

    def refresh(self) -> int:
        """Hand new data to each shown curve that changed since it was last drawn.

        Returns how many curves were updated. The views given to pyqtgraph are
        never written over (see GrowingColumns), so no copy is needed.
        """
        updated = 0
        for name, c in self._curves.items():
            if not c.shown or not self.is_dirty(name):
                continue
            x, y = c.table.column(self._x_column), c.table.column(c.y)
            log_y = c.item.opts["logMode"][1]
            safe = (c.table.all_finite(self._x_column) and c.table.all_finite(c.y)
                    and (not log_y or c.table.all_positive(c.y)))
            if not safe and not np.isfinite(y).any():
                x = y = np.empty(0)  # nothing to draw (pyqtgraph warns on all-NaN markers)
            if safe != c.connect_all:
                # Only all-finite data may skip pyqtgraph's NaN checks; NaN breaks the line.
                c.item.setData(x, y, connect="all" if safe else "finite", skipFiniteCheck=safe)
                c.connect_all = safe
            else:
                c.item.setData(x, y)
            c.drawn_revision, c.drawn_x = c.table.revision, self._x_column
            updated += 1
        if updated:
            if self._steady and self._following:
                self._fit()
            # pyqtgraph applies a new view range (and lays out what depends on it) only
            # when the paint starts; what that moves then asks for a second paint of the
            # plot area. Applying it now, before the paint, makes it one paint.
            self.scene().prepareForPaint()
        return updated

    # --- crosshair ---------------------------------------------------------------
    def values_at(self, x: float) -> list[tuple[str, QColor, float]]:
        """(label, colour, value) of each shown curve at its point nearest to ``x``."""
        found = []
        for c in self._curves.values():
            xs, ys = c.table.column(self._x_column), c.table.column(c.y)
            if not c.shown or len(xs) == 0:
                continue
            i = int(np.searchsorted(xs, x))
            if i == len(xs) or (i > 0 and x - xs[i - 1] < xs[i] - x):
                i -= 1
            if np.isfinite(ys[i]):
                found.append((c.label, c.color, float(ys[i])))
        return found

    def show_crosshair(self, x: float) -> None:
        """Put the vertical line at ``x`` (data units) with the curves' values beside it."""
        values = self.values_at(x)
        if not values:
            self.hide_crosshair()
            return
        fg = self._theme["foreground"]
        axis = self.getPlotItem().getAxis("bottom")
        where = f"{axis.labelText or 'x'} {x:.4g} {axis.labelUnits or ''}".rstrip()
        rows = [f'<span style="color:{fg}">{html.escape(where)}</span>']
        rows += [f'<span style="color:{color.name()}">&#9632;</span> '
                 f'<span style="color:{fg}">{html.escape(label)}: {value:.4g}</span>'
                 for label, color, value in values]
        self._readout.setHtml("<br>".join(rows))
        vb = self.getPlotItem().getViewBox()
        self._vline.setPos(x)
        self._vline.show()
        px = vb.mapFromView(QPointF(x, 0)).x()
        width = self._readout.textItem.boundingRect().width()
        left = px + 6 + width > vb.width() and px - 6 - width >= 0  # keep it in the view
        self._readout.setAnchor((1, 0) if left else (0, 0))
        self._readout.setPos(px - 6 if left else max(0.0, min(px + 6, vb.width() - width)), 2)
        self._readout.show()
        self._show_legend()

    def readout_text(self) -> str:
        """The crosshair read-out as plain text; empty while it is hidden."""
        return self._readout.textItem.toPlainText() if self._readout.isVisible() else ""

    def hide_crosshair(self) -> None:
        self._vline.hide()
        self._readout.hide()
        self._show_legend()

    def _mouse_moved(self, args) -> None:
        pos = args[0]
        vb = self.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(pos):
            self.hide_crosshair()
            return
        self.show_crosshair(vb.mapSceneToView(pos).x())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_legend()
        # The plot area may be laid out to the new size only after this event: look again
        # then (a timer, not the view box's resize signal, which can fire mid-teardown).
        QTimer.singleShot(0, self, self._fit_legend)  # not called once self is deleted

    def _fit_legend(self) -> None:
        """The legend goes in one row beside the title where there is room, else in a
        column in the plot's top right corner, on a translucent background (as many
        columns as it takes to keep it to LEGEND_MAX_SHARE of the height: many runs
        overlaid, say)."""
        item = self.getPlotItem()
        if self.legend is None or item is None:  # mid-setup, or closed
            return
        room = item.width() - item.titleLabel.item.boundingRect().width() - 24
        entries = len(self.legend.items)
        self.legend.setColumnCount(max(1, entries))
        inside = self.legend.width() > room
        if inside:
            self.legend.setColumnCount(1)
            row = self.legend.height() / max(1, entries)
            rows = max(1, int(LEGEND_MAX_SHARE * item.getViewBox().height() // max(row, 1)))
            if rows < entries:
                self.legend.setColumnCount(-(-entries // rows))
        if inside != self._legend_inside:
            self._legend_inside = inside
            self.legend.setParentItem(item.getViewBox() if inside else item)
            self.legend.anchor(itemPos=(1, 0), parentPos=(1, 0),
                               offset=(-6, 6) if inside else (-6, 1))
            self._style_legend()
        # Inside a small plot a legend would cover most of the curves, or be cut off at
        # the plot's edge: it is left out there (the crosshair read-out names the curves).
        vb = item.getViewBox()
        self._legend_fits = not inside or (self.legend.width() + 12 <= vb.width() and
                                           self.legend.height() <= LEGEND_MAX_SHARE * vb.height())
        self._show_legend()

    def _show_legend(self) -> None:
        """Shown where it has room, except inside the plot while the crosshair read-out
        (which names the curves too) is there to overlap it."""
        self.legend.setVisible(self._legend_fits and not (self._legend_inside and
                                                          self._readout.isVisible()))

    def leaveEvent(self, event) -> None:
        self.hide_crosshair()
        super().leaveEvent(event)

    # --- looks -------------------------------------------------------------------
    def apply_theme(self, dark: bool) -> None:
        self._theme = DARK if dark else LIGHT
        fg, bg = style_plot(self, self._title, dark)
        self._vline.setPen(pg.mkPen(fg, width=1, style=pg.QtCore.Qt.PenStyle.DashLine))
        self._readout.fill = pg.mkBrush(_with_alpha(bg, 215))
        self._readout.border = pg.mkPen(_with_alpha(fg, 70))
        self._readout.update()
        self._style_legend()

    def _style_legend(self) -> None:
        fg, bg = QColor(self._theme["foreground"]), QColor(self._theme["background"])
        self.legend.setBrush(_with_alpha(bg, 210) if self._legend_inside else None)
        self.legend.setPen(_with_alpha(fg, 60) if self._legend_inside else None)
        self.legend.setLabelTextColor(fg)
        for _, label in self.legend.items:
            label.setText(label.text)  # re-render with the new colour


def visible_span(lo: float, hi: float, *, log: bool = False) -> tuple[float, float]:
    """A range around data from ``lo`` to ``hi`` wide enough for readable ticks: one
    value, or values a rounding error apart, would give a range so narrow that the
    tick labels print float noise ("23.0000000000005"). A single value gets +-5%
    (at least +-0.5, half a decade on a log axis), near ones 1e-3 of their size."""
    mag = max(abs(lo), abs(hi))
    if hi - lo <= 1e-9 * max(mag, 1.0):
        half = 0.5 if log else max(0.05 * mag, 0.5)
    elif hi - lo < 1e-3 * mag:
        half = 0.5e-3 * mag
    else:
        return lo, hi
    mid = 0.5 * (lo + hi)
    return mid - half, mid + half


def style_plot(widget: pg.PlotWidget, title: str, dark: bool) -> tuple[QColor, QColor]:
    """Background, title and axes in the theme's colours; returns (foreground, background)."""
    theme = DARK if dark else LIGHT
    fg, bg = QColor(theme["foreground"]), QColor(theme["background"])
    widget.setBackground(bg)
    item = widget.getPlotItem()
    item.setTitle(title, color=fg.name(), size="10pt")
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setPen(fg)
        axis.setTextPen(fg)
    return fg, bg


def _with_alpha(color: QColor, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c

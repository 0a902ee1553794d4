"""A native trace timeline: a lane per thread or device stream, nested slices, fluid on big traces.

This module lays the widget out and reports on the trace: a clicked slice's
name, duration, input shapes and args, and a range's time per name. Painting
and its level of detail live in ``timeline_slices``; mouse, keys and search
navigation in ``timeline_input``.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
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

from app import theme
from app.widgets.live_plot import DARK, LIGHT
from app.widgets.timeline_input import TimelineInput, TimelineViewBox
from app.widgets.timeline_slices import SlicesItem
from engine.profiling.timeline import TraceIndex

STATS_ROWS = 500  # names listed for a range; the rest are small


def format_us(us: float) -> str:
    """A duration in the unit that reads best: 850 µs, 12.3 ms, 1.25 s."""
    if abs(us) < 1000:
        return f"{us:.3g} µs" if abs(us) < 100 else f"{us:.0f} µs"
    if abs(us) < 1e6:
        return f"{us / 1000:.4g} ms"
    return f"{us / 1e6:.4g} s"


class TimelineView(TimelineInput, QWidget):
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

        self.viewbox = TimelineViewBox(self)
        time_axis = pg.AxisItem("bottom")
        time_axis.setScale(1e-6)
        time_axis.setLabel("time since the trace began", units="s")
        self.track_axis = pg.AxisItem("left")
        self.track_axis.setStyle(tickLength=0)
        self.plot = pg.PlotWidget(viewBox=self.viewbox,
                                  axisItems={"bottom": time_axis, "left": self.track_axis})
        self.plot.getPlotItem().hideButtons()
        self.plot.setFocusPolicy(Qt.StrongFocus)
        self.slices = SlicesItem(self)
        self.viewbox.addItem(self.slices)
        self.region = pg.LinearRegionItem(movable=True)
        self.region.setZValue(20)
        self.region.hide()
        self.region.sigRegionChangeFinished.connect(self._region_moved)
        self.viewbox.addItem(self.region, ignoreBounds=True)
        self.plot.installEventFilter(self)
        self.plot.viewport().installEventFilter(self)

        self.info = QTextBrowser()
        # short: a placeholder does not wrap in a narrow details pane
        self.info.setPlaceholderText("Click a slice for its details.")
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
        button.setIcon(theme.icon(icon))
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

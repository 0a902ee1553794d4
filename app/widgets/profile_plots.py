"""Plots of a profile report: the step-time breakdown as stacked bars, the memory curve.

Both draw a whole report at once (a few steps, a few thousand memory points),
so they set their items when a report arrives and never on a timer.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from engine.profiling.report import CATEGORIES, MemoryCurve, ProfileReport

from .live_plot import style_plot

# One colour per category, the same in the summary, the legend and the bars.
CATEGORY_COLOURS = {"Kernel": "#3fae5a", "Memcpy": "#d9534f", "Memset": "#e77fa8",
                    "Runtime": "#e0a33a", "DataLoader": "#8e6cc9", "CPU Exec": "#4a90d9",
                    "Other": "#9aa3ad"}
BAR_WIDTH = 0.7


class _ThemedPlot(pg.PlotWidget):
    def __init__(self, title: str, left: str, bottom: str, parent=None):
        super().__init__(parent)
        self._title = title
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.showGrid(x=False, y=True, alpha=0.25)
        item.setLabel("left", left)
        item.setLabel("bottom", bottom)
        self.legend = item.addLegend(offset=(-10, 10), labelTextSize="9pt")
        self.apply_theme(False)

    def apply_theme(self, dark: bool) -> None:
        fg, bg = style_plot(self, self._title, dark)
        item = self.getPlotItem()
        for name in ("left", "bottom"):
            item.getAxis(name).label.setDefaultTextColor(fg)
        back = QColor(bg)
        back.setAlpha(210)
        self.legend.setBrush(back)
        self.legend.setLabelTextColor(fg)
        for _, label in self.legend.items:
            label.setText(label.text)


class StepBreakdownPlot(_ThemedPlot):
    """Stacked bars, one per profiled step and one for the average, split by category."""

    def __init__(self, parent=None):
        super().__init__("Step time by category", "time (ms)", "step", parent)
        self.setMouseEnabled(x=False, y=False)
        self.bars: dict[str, pg.BarGraphItem] = {}

    def set_report(self, report: ProfileReport | None) -> None:
        item = self.getPlotItem()
        for bar in self.bars.values():
            item.removeItem(bar)
        self.bars.clear()
        self.legend.clear()
        if report is None:
            return
        steps = (*report.steps, report.average)
        x = np.arange(len(steps), dtype=float)
        base = np.zeros(len(steps))
        for cat in CATEGORIES:
            ms = np.array([s.costs_us[cat] for s in steps]) / 1000.0
            if not ms.any():
                continue  # a category no step has stays out of the legend
            colour = CATEGORY_COLOURS[cat]
            bar = pg.BarGraphItem(x=x, y0=base.copy(), height=ms, width=BAR_WIDTH,
                                  brush=colour, pen=pg.mkPen(QColor(colour).darker(130)))
            item.addItem(bar)
            self.legend.addItem(bar, cat)
            self.bars[cat] = bar
            base += ms
        labels = [(i, s.step) for i, s in enumerate(steps)]
        item.getAxis("bottom").setTicks([labels])
        item.setXRange(-0.6, len(steps) - 0.4 + 0.8, padding=0)  # room for the legend
        item.setYRange(0, float(base.max()) * 1.05 if base.max() > 0 else 1.0, padding=0)


class MemoryCurvePlot(_ThemedPlot):
    """Memory allocated (solid) and reserved (dashed) per device over the capture."""

    DEVICE_COLOURS = ("#2f6fd6", "#3fae5a", "#d9534f", "#e0a33a")

    def __init__(self, parent=None):
        super().__init__("Memory in use", "memory (MB)", "time since capture start (ms)", parent)
        self.curves: list[pg.PlotDataItem] = []

    def set_curves(self, curves: tuple[MemoryCurve, ...]) -> None:
        item = self.getPlotItem()
        for curve in self.curves:
            item.removeItem(curve)
        self.curves.clear()
        self.legend.clear()
        for i, mem in enumerate(curves):
            colour = self.DEVICE_COLOURS[i % len(self.DEVICE_COLOURS)]
            t = np.asarray(mem.time_ms)
            for values, style, what in ((mem.allocated_mb, pg.QtCore.Qt.SolidLine, "allocated"),
                                        (mem.reserved_mb, pg.QtCore.Qt.DashLine, "reserved")):
                if what == "reserved" and not any(values):
                    continue  # the CPU allocator reserves nothing of its own
                line = item.plot(*_steps(t, np.asarray(values)),
                                 pen=pg.mkPen(colour, width=1.6, style=style),
                                 name=f"{mem.device} {what} (peak {mem.peak_mb:.1f} MB)"
                                 if what == "allocated" else f"{mem.device} {what}")
                self.curves.append(line)
        item.enableAutoRange()


def _steps(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A level holds until the next allocation or free: draw the curve as steps."""
    if len(t) < 2:
        return t, v
    return np.repeat(t, 2)[1:], np.repeat(v, 2)[:-1]

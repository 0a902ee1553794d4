"""The Search dock's plots of a study: history, parallel coordinates, importances, slices,
intermediate values. Each shows a ``StudySnapshot`` (plain data) with persistent items
whose data is replaced on every refresh; none reads Optuna itself.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..widgets.live_plot import DARK, LIGHT, PALETTE, style_plot
from .search_study import COMPLETE, PRUNED, ParamInfo, StudySnapshot

PRUNED_COLOUR = "#d95f02"
BEST_COLOUR = "#2ca02c"
LINE_BINS = 8  # parallel coordinates: lines drawn in this many colours, one item each


class _Plot(pg.PlotWidget):
    """A themed plot of the dock, with a legend and a title."""

    def __init__(self, title: str, x: str, y: str, legend=(-8, -8)):
        """``legend``: its offset from a corner (pyqtgraph's: negative from the right or
        bottom); bottom right by default, below the curves that rise towards the best."""
        super().__init__()
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setLabel("bottom", x)
        item.setLabel("left", y)
        for axis in ("left", "bottom"):
            item.getAxis(axis).enableAutoSIPrefix(False)
        self.title = title
        self.legend = item.addLegend(offset=legend, labelTextSize="8pt")
        self.dark = False

    def apply_theme(self, dark: bool) -> None:
        self.dark = dark
        fg, _bg = style_plot(self, self.title, dark)
        self.legend.setLabelTextColor(fg)

    def foreground(self) -> str:
        return (DARK if self.dark else LIGHT)["foreground"]

    def background(self) -> str:
        return (DARK if self.dark else LIGHT)["background"]


def objective_label(snapshot: StudySnapshot | None) -> str:
    return "Objective" if snapshot is None else f"Objective ({snapshot.direction})"


class HistoryPlot(_Plot):
    """Each completed trial's value by trial number, and the best value so far."""

    def __init__(self):
        super().__init__("Optimization history", "Trial", "Objective")
        self.points = pg.ScatterPlotItem(size=7, pen=None, brush=PALETTE[0], name="trial")
        self.best = pg.PlotDataItem(pen=pg.mkPen(BEST_COLOUR, width=2), stepMode=None,
                                    name="best so far")
        self.addItem(self.points)
        self.addItem(self.best)

    def show_study(self, snapshot: StudySnapshot) -> None:
        done = snapshot.complete()
        x = np.array([t.number for t in done], dtype=float)
        y = np.array([t.value for t in done], dtype=float)
        self.points.setData(x=x, y=y)
        best = (np.maximum if snapshot.direction == "maximize" else np.minimum).accumulate(y) \
            if len(y) else y
        self.best.setData(x, best)
        self.getPlotItem().setLabel("left", objective_label(snapshot))


class ParallelPlot(_Plot):
    """One line per completed trial across an axis per parameter and the objective, each
    axis scaled to its trials' range (log ranges in log space, choices evenly spaced); the
    line's colour is its objective, from the worst (light) to the best (dark)."""

    def __init__(self):
        super().__init__("Parallel coordinates", "", "")
        item = self.getPlotItem()
        item.showGrid(x=False, y=False)
        item.hideAxis("left")
        item.setMouseEnabled(x=False, y=False)
        self.lines = []
        for _ in range(LINE_BINS):
            line = pg.PlotDataItem(connect="finite")
            self.addItem(line)
            self.lines.append(line)
        self.axis_lines: list[pg.InfiniteLine] = []
        self.labels: list[pg.TextItem] = []
        self.axes: list[str] = []
        self.rows = np.zeros((0, 0))  # trials x axes, each in [0, 1]

    def show_study(self, snapshot: StudySnapshot) -> None:
        done = snapshot.complete()
        params = [p for p in snapshot.params if any(p.name in t.params for t in done)]
        self.axes = [p.name for p in params] + ["objective"]
        columns, ends = [], []
        for p in params:
            col, low, high = _scaled([t.params.get(p.name) for t in done], p)
            columns.append(col)
            ends.append((low, high))
        objective = ParamInfo("objective")
        col, low, high = _scaled([t.value for t in done], objective)
        columns.append(col)
        ends.append((low, high))
        self.rows = np.column_stack(columns) if done else np.zeros((0, len(self.axes)))
        rank = self.rows[:, -1] if snapshot.direction == "maximize" else 1 - self.rows[:, -1]
        bins = np.minimum((rank * LINE_BINS).astype(int), LINE_BINS - 1) if len(rank) else rank
        x = np.arange(len(self.axes), dtype=float)
        for b, line in enumerate(self.lines):
            chosen = self.rows[bins == b] if len(self.rows) else self.rows
            if not len(chosen):
                line.setData([], [])
                continue
            xs = np.tile(np.append(x, np.nan), len(chosen))
            ys = np.column_stack([chosen, np.full(len(chosen), np.nan)]).ravel()
            line.setData(xs, ys)
        self._label_axes(ends)

    def _label_axes(self, ends) -> None:
        for label in [*self.labels, *self.axis_lines]:
            self.removeItem(label)
        self.labels = []
        self.axis_lines = []
        for i in range(len(ends)):
            line = pg.InfiniteLine(i, angle=90, pen=pg.mkPen(self.foreground(), width=1))
            line.setZValue(-1)
            self.addItem(line)
            self.axis_lines.append(line)
        item = self.getPlotItem()
        item.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(self.axes)]])
        for i, (low, high) in enumerate(ends):
            for y, text, anchor in ((0.0, low, (0.5, 0)), (1.0, high, (0.5, 1))):
                label = pg.TextItem(text, color=self.foreground(), anchor=anchor,
                                    fill=self.background())
                label.setPos(i, y)
                self.addItem(label)
                self.labels.append(label)
        item.setXRange(-0.3, max(len(self.axes) - 0.7, 0.3), padding=0)
        item.setYRange(-0.12, 1.12, padding=0)

    def apply_theme(self, dark: bool) -> None:
        """Viridis from its dark end on a light background, from its light end on a dark
        one: every line stands out from the background, the best the most."""
        super().apply_theme(dark)
        cmap = pg.colormap.get("viridis")
        start, stop = (0.25, 1.0) if dark else (0.85, 0.0)  # the worst bin, the best
        for i, line in enumerate(self.lines):
            colour = cmap.map(start + (stop - start) * i / (LINE_BINS - 1), mode="qcolor")
            line.setPen(pg.mkPen(colour, width=1.5))
        for label in self.labels:
            label.setColor(self.foreground())
            label.fill = pg.mkBrush(self.background())
            label.update()
        self.getPlotItem().setTitle(f"{self.title} ({'brighter' if dark else 'darker'}: "
                                    f"better objective)", color=self.foreground(), size="10pt")
        for line in self.axis_lines:
            line.setPen(pg.mkPen(self.foreground(), width=1))


def _scaled(values: list, info: ParamInfo) -> tuple[np.ndarray, str, str]:
    """``values`` placed in [0, 1] on their axis, and the axis's end labels."""
    if info.choices is not None or any(isinstance(v, str) for v in values):
        choices = list(info.choices or sorted({str(v) for v in values}))
        index = {str(c): i for i, c in enumerate(choices)}
        span = max(len(choices) - 1, 1)
        col = np.array([index.get(str(v), 0) / span for v in values], dtype=float)
        return col, str(choices[0]), str(choices[-1])
    raw = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if not len(raw):
        return raw, "", ""
    axis = np.log10(raw) if info.log and np.all(raw > 0) else raw
    low, high = np.nanmin(axis), np.nanmax(axis)
    col = (axis - low) / (high - low) if high > low else np.full(len(axis), 0.5)
    return col, f"{np.nanmin(raw):.4g}", f"{np.nanmax(raw):.4g}"


class ImportancePlot(_Plot):
    """Each parameter's share of the objective's variance (Optuna's evaluator), largest on
    top."""

    def __init__(self):
        super().__init__("Parameter importances", "Importance", "")
        self.getPlotItem().getViewBox().invertY(True)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.6, width=[], brush=PALETTE[0],
                                    pen=None)
        self.addItem(self.bars)
        self.values: dict[str, float] = {}

    def show_study(self, snapshot: StudySnapshot) -> None:
        self.values = dict(sorted((snapshot.importances or {}).items(),
                                  key=lambda kv: -kv[1]))
        names = list(self.values)
        y = np.arange(len(names), dtype=float)
        self.bars.setOpts(x0=np.zeros(len(y)), y=y, width=list(self.values.values()),
                          height=0.6)
        self.getPlotItem().getAxis("left").setTicks([[(i, n) for i, n in enumerate(names)]])
        self.getPlotItem().setTitle(
            self.title if snapshot.importances is not None else
            f"{self.title}: {snapshot.importance_note}", color=self.foreground(), size="10pt")
        if names:
            self.getPlotItem().setXRange(0, max(self.values.values()) * 1.05, padding=0)
            self.getPlotItem().setYRange(-0.5, len(names) - 0.5, padding=0)


class SlicePlot(QWidget):
    """The objective against one parameter (chosen above the plot), a point per completed
    trial; a log range on a log axis, choices evenly spaced."""

    def __init__(self):
        super().__init__()
        self.param = QComboBox()
        self.param.setToolTip("The parameter on the x axis")
        self.param.currentIndexChanged.connect(self._redraw)
        self.plot = _Plot("Slice", "Parameter", "Objective")
        # a PlotDataItem of symbols, not a ScatterPlotItem: it follows the axis's log mode
        self.points = pg.PlotDataItem(pen=None, symbol="o", symbolSize=7, symbolPen=None,
                                      symbolBrush=PALETTE[0])
        self.plot.addItem(self.points)
        self.snapshot: StudySnapshot | None = None
        top = QHBoxLayout()
        top.addWidget(QLabel("Parameter"))
        top.addWidget(self.param, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)

    def show_study(self, snapshot: StudySnapshot) -> None:
        self.snapshot = snapshot
        names = [p.name for p in snapshot.params]
        if names != [self.param.itemText(i) for i in range(self.param.count())]:
            current = self.param.currentText()
            self.param.blockSignals(True)
            self.param.clear()
            self.param.addItems(names)
            if current in names:
                self.param.setCurrentText(current)
            self.param.blockSignals(False)
        self._redraw()

    def _redraw(self) -> None:
        snapshot = self.snapshot
        info = next((p for p in snapshot.params if p.name == self.param.currentText()), None) \
            if snapshot else None
        item = self.plot.getPlotItem()
        if info is None:
            self.points.setData([], [])
            return
        done = [t for t in snapshot.complete() if info.name in t.params]
        values = [t.params[info.name] for t in done]
        axis = item.getAxis("bottom")
        if info.choices is not None:
            index = {str(c): i for i, c in enumerate(info.choices)}
            x = np.array([index.get(str(v), 0) for v in values], dtype=float)
            axis.setTicks([[(i, str(c)) for i, c in enumerate(info.choices)]])
            item.setLogMode(x=False)
        else:
            x = np.array(values, dtype=float)
            log = info.log and len(x) > 0 and bool(np.all(x > 0))
            axis.setTicks(_decades(x) if log else None)
            item.setLogMode(x=log)
        self.points.setData(x, np.array([t.value for t in done], dtype=float))
        item.setLabel("bottom", info.name)
        item.setLabel("left", objective_label(snapshot))

    def apply_theme(self, dark: bool) -> None:
        self.plot.apply_theme(dark)


def _decades(x: np.ndarray) -> list[list[tuple[float, str]]]:
    """Ticks of a log axis: a label at each power of ten, unlabelled lines at 2..9 times
    it (pyqtgraph labels those too, and on a narrow axis they overlap)."""
    low, high = math.floor(np.log10(x.min())), math.ceil(np.log10(x.max()))
    major = [(float(k), f"{10.0 ** k:g}") for k in range(low, high + 1)]
    minor = [(math.log10(m * 10.0 ** k), "") for k in range(low, high) for m in range(2, 10)]
    return [major, minor]


class IntermediatePlot(_Plot):
    """Each trial's reported objective by epoch: completed trials in blue, pruned ones in
    orange with a cross where the pruner stopped them."""

    def __init__(self):
        super().__init__("Intermediate values", "Epoch", "Objective")
        self.complete = pg.PlotDataItem(pen=pg.mkPen(PALETTE[0], width=1.2), connect="finite",
                                        name="completed")
        self.pruned = pg.PlotDataItem(pen=pg.mkPen(PRUNED_COLOUR, width=1.2), connect="finite",
                                      name="pruned")
        self.stops = pg.ScatterPlotItem(symbol="x", size=11, pen=pg.mkPen(PRUNED_COLOUR, width=2),
                                        brush=PRUNED_COLOUR, name="where pruned")
        for item in (self.complete, self.pruned, self.stops):
            self.addItem(item)

    def show_study(self, snapshot: StudySnapshot) -> None:
        for state, item in ((COMPLETE, self.complete), (PRUNED, self.pruned)):
            xs, ys = _joined([t.intermediate for t in snapshot.trials
                              if t.state == state and t.intermediate])
            item.setData(xs, ys)
        ends = [max(t.intermediate.items()) for t in snapshot.trials
                if t.state == PRUNED and t.intermediate]
        self.stops.setData(x=[e[0] for e in ends], y=[e[1] for e in ends])
        self.getPlotItem().setLabel("left", objective_label(snapshot))


def _joined(curves: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Several curves as one NaN-separated line: one item draws them all."""
    xs, ys = [], []
    for curve in curves:
        xs.extend([*curve.keys(), math.nan])
        ys.extend([*curve.values(), math.nan])
    return np.array(xs, dtype=float), np.array(ys, dtype=float)

"""The Hardware dock: live GPU utilization, memory, power and temperature beside the loss
curves, with CPU, RAM and torch's allocator, the current values as text and warnings.

While a run trains, its samples come from the run's own process through the
bridge (``on_sample``): that process is the one holding GPU memory and the one
whose CPU use matters. When the run ends its readings stay on screen, frozen,
until the next run or "Back to live": sampling the window's own idle process
into the same curves would read as the run's process dropping to nothing.
With no run, the panel samples by itself in the window process: an engine
Sampler thread fills a deque and a GUI timer reads it, so no NVML call ever
runs on the GUI thread. Curves live in growing buffers and
are redrawn a few times a second at most, like the training plots.
"""

from __future__ import annotations

import collections
import math
import time

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.pacing import NORMAL, pace_for
from app.widgets.growing import GrowingColumns
from app.widgets.live_plot import PALETTE, LivePlot
from app.widgets.redraw_pacing import RedrawPacing, on_screen
from engine.monitor import DEFAULT_INTERVAL_S, Alerts, Sample, Sampler

BLUE, ORANGE, GREEN, PURPLE, ROSE, TEAL, OCHRE = PALETTE
GIB = 1024 ** 3
REFRESH_MS = 250  # hardware changes slowly: 4 redraws a second at most
ROLLING_S = 300.0  # "Last 5 min"
HOST_COLUMNS = ("t", "step", "process_cpu", "system_cpu", "ram_used", "ram_total", "rss")
GPU_COLUMNS = ("t", "step", "utilization", "memory_utilization", "memory_used", "memory_total",
               "process_memory", "power", "power_limit", "temperature", "torch_allocated",
               "torch_reserved")
GIB_COLUMNS = frozenset({"ram_used", "ram_total", "rss", "memory_used", "memory_total",
                         "process_memory", "torch_allocated", "torch_reserved", "process_rss"})

# plot key: title, y label, y units, GPU plot?
PLOTS = {
    "utilization": ("GPU utilization", "busy", "%", True),
    "memory": ("GPU memory", "memory", "GiB", True),
    "power": ("GPU power", "power", "W", True),
    "temperature": ("GPU temperature", "temperature", "°C", True),
    "torch": ("torch memory", "memory", "GiB", True),
    "cpu": ("CPU", "load", "%", False),
    "ram": ("RAM", "memory", "GiB", False),
}
# curve: plot key, column, legend label, colour, dashed (a limit, not a reading)
GPU_CURVES = {
    "utilization": ("utilization", "utilization", "GPU", BLUE, False),
    "memory_utilization": ("utilization", "memory_utilization", "memory", PURPLE, False),
    "memory_used": ("memory", "memory_used", "used", BLUE, False),
    "process_memory": ("memory", "process_memory", "process", GREEN, False),
    "memory_total": ("memory", "memory_total", "total", ROSE, True),
    "power": ("power", "power", "draw", OCHRE, False),
    "power_limit": ("power", "power_limit", "limit", ROSE, True),
    "temperature": ("temperature", "temperature", "GPU", ORANGE, False),
    "torch_allocated": ("torch", "torch_allocated", "allocated", PURPLE, False),
    "torch_reserved": ("torch", "torch_reserved", "reserved", TEAL, False),
}
HOST_CURVES = {
    "process_cpu": ("cpu", "process_cpu", "process (% of 1 core)", BLUE, False),
    "system_cpu": ("cpu", "system_cpu", "system (% of all)", ORANGE, False),
    "ram_used": ("ram", "ram_used", "used", BLUE, False),
    "rss": ("ram", "rss", "process", GREEN, False),
    "ram_total": ("ram", "ram_total", "total", ROSE, True),
}


class HardwarePanel(QWidget):
    """Plots, current values and warnings of the hardware, live or of a stored run."""

    def __init__(self, parent=None, *, dark: bool | None = None,
                 interval: float = DEFAULT_INTERVAL_S, nvml=None):
        super().__init__(parent)
        if dark is None:
            dark = QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128
        self._interval = interval
        self._nvml = nvml  # None: the real pynvml; tests and the screenshot pass a stand-in
        self._sampler: Sampler | None = None
        self._inbox: collections.deque[Sample] = collections.deque()
        self._poll = QTimer(self)
        self._poll.timeout.connect(self._drain)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self._on_timer)
        self._pacing = RedrawPacing(self.refresh_timer, self._wait_ms)
        self.training = False  # set by the window while a run trains (not paused)
        self.pace = NORMAL  # how much drawing may cost while a run trains (app.pacing)
        self._own = True  # sample by itself while shown (no run, no stored run)
        self._in_run = False  # the samples come from a run's process (live or ended)
        self._ended = False  # ...that has ended: they are kept, frozen
        self._run_name = "The run"
        self.alerts = Alerts()
        self.latest: Sample | None = None
        self.warnings: list[str] = []
        self.problems: tuple[str, ...] = ()
        self._t0: float | None = None
        self._host = GrowingColumns(HOST_COLUMNS, capacity=2048)
        self._gpus: dict[int, GrowingColumns] = {}
        self._present: set[int] = set()  # GPUs in what is shown now (a stored run may differ)
        self._selected: int | None = None
        self._history_label = ""
        self._torch_seen = False  # torch counters come only from a process that uses CUDA

        self.gpu_combo = QComboBox()
        self.gpu_combo.setToolTip("Which GPU the GPU plots and values show")
        self.gpu_combo.currentIndexChanged.connect(self._gpu_chosen)
        self.gpu_label = QLabel("GPU:")
        self.rolling = QRadioButton("Last 5 min")
        self.whole = QRadioButton("Whole run")
        self.rolling.setChecked(True)
        self._span = QButtonGroup(self)
        for b in (self.rolling, self.whole):
            self._span.addButton(b)
        # what the user picked (clicks only): a stored run is shown whole, and leaving it
        # for a new run, a resumed one or live readings brings the user's choice back
        self._span_choice: QRadioButton = self.rolling
        self._span.buttonClicked.connect(self._span_picked)
        self.rolling.toggled.connect(self._span_changed)
        self.x_combo = QComboBox()
        self.x_combo.addItem("time (s)", "t")
        self.x_combo.addItem("training step", "step")  # the loss curves' axis
        self.x_combo.setToolTip("What the horizontal axis shows; steps line up with the loss")
        self.x_combo.currentIndexChanged.connect(self._x_chosen)
        self.source = QLabel()
        self.live_button = QPushButton("Back to live")
        self.live_button.setToolTip("Leave the stored or ended run's readings and show this "
                                    "machine's hardware now")
        self.live_button.clicked.connect(self.go_live)
        self.live_button.hide()
        controls = QHBoxLayout()
        controls.addWidget(self.gpu_label)
        controls.addWidget(self.gpu_combo)
        controls.addSpacing(12)
        controls.addWidget(self.rolling)
        controls.addWidget(self.whole)
        controls.addWidget(QLabel("X axis:"))
        controls.addWidget(self.x_combo)
        controls.addSpacing(12)
        controls.addWidget(self.source, 1)
        controls.addWidget(self.live_button)

        self.values = QLabel()
        self.values.setTextFormat(Qt.TextFormat.RichText)
        self.values.setWordWrap(True)
        self.values.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice = QLabel()  # what cannot be read: said once, stays put
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("QLabel { background: rgba(47, 111, 214, 0.12); "
                                  "border: 1px solid #2f6fd6; border-radius: 4px; "
                                  "padding: 4px 8px; }")
        self.notice.hide()
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("QLabel { background: rgba(191, 135, 0, 0.14); "
                                         "border: 1px solid #bf8700; border-radius: 4px; "
                                         "padding: 4px 8px; }")
        self.warning_label.hide()

        self.plots: dict[str, LivePlot] = {}
        for key, (title, y_label, units, _gpu) in PLOTS.items():
            plot = LivePlot(title, y_label=y_label, y_units=units, x_label="time",
                            x_units="s", x_column="t", dark=dark, parent=self)
            plot.setMinimumSize(200, 140)
            plot.getPlotItem().getViewBox().setAutoVisible(y=True)
            self._pacing.watch(plot)
            self.plots[key] = plot
        # a busy share reads against its full scale, as in nvidia-smi and nvitop
        self.plots["utilization"].getPlotItem().setYRange(0, 100, padding=0.02)
        for name, (key, column, label, colour, dashed) in HOST_CURVES.items():
            self._add_curve(self.plots[key], name, label, colour, self._host, column, dashed)
        self._grid = QGridLayout()
        self._grid.setSpacing(4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.notice)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.values)
        layout.addLayout(self._grid, 1)
        self._arrange()
        self._show_values()
        self._show_source()

    # --- sources ---------------------------------------------------------------------
    def start_sampling(self) -> None:
        """Sample this machine from the window's process (when no run does it)."""
        if self._sampler is not None:
            return
        self._sampler = Sampler(self._interval, on_sample=self._inbox.append, nvml=self._nvml,
                                torch_memory=False).start()
        self._poll.start(max(100, int(self._interval * 1000)))

    def stop_sampling(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        self._poll.stop()
        self._drain()

    @property
    def sampling(self) -> bool:
        return self._sampler is not None

    def set_interval(self, seconds: float) -> None:
        """Sample at another interval from now on (the run's monitor.interval)."""
        if seconds != self._interval:
            self._interval = seconds
            if self.sampling:
                self.stop_sampling()
                self.start_sampling()

    def begin_run(self) -> None:
        """A run starts: its process samples now; the window's own sampler rests."""
        self._own = False
        self._in_run, self._ended = True, False
        self._run_name = "The run"
        self.stop_sampling()
        self._leave_history()
        self.clear()
        self._show_source()

    def on_run_started(self, e) -> None:
        """The run is known (ev.RunStarted): name it, draw at the pace its device leaves."""
        self.pace = pace_for(e.device)
        if e.run_id:
            self._run_name = f"Run {e.run_id}"
            self._show_source()

    def end_run(self) -> None:
        """The run is over: its readings stay, frozen, until a new run or "Back to live"."""
        self.training = False
        self.pace = NORMAL
        self.alerts = Alerts()
        if not self._in_run:
            return
        if self.latest is None:  # it ended before its first reading: nothing to keep
            self.go_live()
            return
        self._ended = True
        self.live_button.show()
        self._show_source()

    def go_live(self) -> None:
        self._leave_history()
        self.clear()
        self._own = True
        self._in_run = self._ended = False
        self._show_source()
        if self.isVisible():
            self.start_sampling()

    def _drain(self) -> None:
        while self._inbox:
            self.on_sample(self._inbox.popleft())

    # --- data in ---------------------------------------------------------------------
    def on_sample(self, s: Sample) -> None:
        """Append one sample (from the bridge or the own sampler); drawn at the next tick."""
        if self._t0 is None:
            self._t0 = s.time
        t, step = s.time - self._t0, math.nan if s.step is None else s.step
        self._host.append(t=t, step=step, process_cpu=s.process_cpu, system_cpu=s.system_cpu,
                          ram_used=s.ram_used / GIB, ram_total=s.ram_total / GIB,
                          rss=s.process_rss / GIB)
        for g in s.gpus:
            if not self._torch_seen and math.isfinite(g.torch_reserved):
                self._torch_seen = True
                self._arrange()
            self._gpu_table(g.index, g.name).append(
                t=t, step=step, **{c: getattr(g, c) / (GIB if c in GIB_COLUMNS else 1)
                                   for c in GPU_COLUMNS[2:]})
        self.latest = s
        self.warnings = self.alerts.update(s, self.training)
        if s.problems != self.problems:
            self.problems = s.problems
            self._show_notice()
        self._schedule()

    def show_history(self, history: dict, label: str) -> None:
        """Show a stored run's samples (``Workspace.hardware_samples``); live sampling stops."""
        self._own = False
        self._in_run = self._ended = False
        self.stop_sampling()
        self.clear()
        self._history_label = label
        self.extend_history(history)
        self._show_source()
        self.live_button.show()
        self.whole.setChecked(True)
        self._show_notice()

    def extend_history(self, history: dict) -> None:
        """Append stored samples taken after those shown (a run followed as it trains
        elsewhere: app/panels/run_follow.py); drawn at the next tick."""
        host = history["host"]
        if len(host["time"]):
            if self._t0 is None:
                self._t0 = float(host["time"][0])
            self._host.append_many(t=host["time"] - self._t0, step=_steps(host["step"]),
                                   process_cpu=host["process_cpu"],
                                   system_cpu=host["system_cpu"],
                                   ram_used=host["ram_used"] / GIB,
                                   ram_total=host["ram_total"] / GIB,
                                   rss=host["process_rss"] / GIB)
        for index, cols in sorted(history["gpus"].items()):
            if not self._torch_seen and np.isfinite(cols["torch_reserved"]).any():
                self._torch_seen = True
                self._arrange()
            if self._t0 is None:
                self._t0 = float(cols["time"][0])
            self._gpu_table(index, f"GPU {index}").append_many(
                t=cols["time"] - self._t0, step=_steps(cols["step"]),
                **{c: cols[c] / (GIB if c in GIB_COLUMNS else 1) for c in GPU_COLUMNS[2:]})
        self._schedule()

    def clear(self) -> None:
        self._host.clear()
        for table in self._gpus.values():
            table.clear()
        self._t0 = None
        self.latest = None
        self.warnings = []
        self.alerts = Alerts()
        self._present.clear()
        self._selected = None
        self._torch_seen = False
        self.gpu_combo.blockSignals(True)
        self.gpu_combo.clear()
        self.gpu_combo.blockSignals(False)
        self._arrange()
        for plot in self.plots.values():
            self._auto_range(plot)
        self._schedule()

    # --- drawing -----------------------------------------------------------------------
    def refresh(self) -> int:
        """Redraw the visible plots that changed, keep the window, update the text."""
        drawn = 0
        for plot in self.plots.values():
            if plot.isVisibleTo(self):
                drawn += plot.refresh()
        times = self._host.column("t")
        if self.rolling.isChecked() and len(times):
            lo, hi = self._x_extent(times >= times[-1] - ROLLING_S)
            for plot in self.plots.values():
                plot.getPlotItem().setXRange(lo, hi, padding=0)
        self._show_values()
        return drawn

    def _on_timer(self) -> None:
        """Redraw, then wait ``pace.hardware_budget`` times what it cost (painting included).

        In a rolling view every redraw moves the time axis, and re-laying out
        tick labels on a small machine's software raster costs milliseconds per
        plot: the pacing keeps this dock from taking the CPU a run trains on.
        """
        if not on_screen(self):  # hidden, or behind another tab: drawn when shown (set_shown)
            return
        started = time.perf_counter()
        self.refresh()
        self._pacing.redrew((time.perf_counter() - started) * 1000)

    def _wait_ms(self, spent_ms: float) -> int:
        return self.pace.hardware_wait_ms(spent_ms, REFRESH_MS)

    def apply_theme(self, dark: bool) -> None:
        for plot in self.plots.values():
            plot.apply_theme(dark)

    def gpu_indices(self) -> list[int]:
        return sorted(self._present)

    def select_gpu(self, index: int) -> None:
        self.gpu_combo.setCurrentIndex(self.gpu_combo.findData(index))

    @property
    def selected_gpu(self) -> int | None:
        return self._selected

    def curve_data(self, name: str, gpu: int | None = None):
        """(x, y) a curve holds: a host curve by name, a GPU curve by name and index."""
        key = name if gpu is None else f"{name}:{gpu}"
        plot = self.plots[(HOST_CURVES.get(name) or GPU_CURVES[name])[0]]
        return plot.curve_data(key)

    # --- inner workings ----------------------------------------------------------------
    def _gpu_table(self, index: int, name: str) -> GrowingColumns:
        table = self._gpus.get(index)
        if table is None:  # curves are made once per GPU index and kept (pyqtgraph habit)
            table = self._gpus[index] = GrowingColumns(GPU_COLUMNS, capacity=2048)
            for curve, (key, column, label, colour, dashed) in GPU_CURVES.items():
                self._add_curve(self.plots[key], f"{curve}:{index}", label, colour, table,
                                column, dashed)
        if index not in self._present:
            self._present.add(index)
            self.gpu_combo.addItem(f"{index}: {name}", index)  # the first one is selected
            self._gpu_chosen(self.gpu_combo.currentIndex())  # a later one stays hidden
            self._arrange()
        return table

    @staticmethod
    def _add_curve(plot, name, label, colour, table, column, dashed) -> None:
        item = plot.add_curve(name, label, colour, table=table, y=column,
                              width=1.0 if dashed else 1.5)
        if dashed:
            pen = item.opts["pen"]
            pen.setStyle(Qt.PenStyle.DashLine)
            item.setPen(pen)

    def _gpu_chosen(self, position: int) -> None:
        index = self.gpu_combo.itemData(position)
        if index is None:
            return
        self._selected = index
        for gpu in self._gpus:
            for curve, (key, *_rest) in GPU_CURVES.items():
                self.plots[key].set_curve_shown(f"{curve}:{gpu}", gpu == index)
        self._schedule()

    def _arrange(self) -> None:
        """GPU plots on top when there is a GPU; CPU and RAM always."""
        for plot in self.plots.values():
            self._grid.removeWidget(plot)
        if self._present:
            order = ("utilization", "memory", "power", "temperature",
                     *(("torch",) if self._torch_seen else ()), "cpu", "ram")
            columns = 4
        else:
            order, columns = ("cpu", "ram"), 2
        for i, key in enumerate(order):
            self._grid.addWidget(self.plots[key], i // columns, i % columns)
        for key, plot in self.plots.items():
            plot.setVisible(key in order)
        many = len(self._present) > 1
        self.gpu_combo.setVisible(many)
        self.gpu_label.setVisible(many)
        self._schedule()

    def _x_extent(self, rows) -> tuple[float, float]:
        """(first, last) x of the host rows selected by ``rows``, at least 1 apart."""
        x = self._host.column(self.plots["cpu"].x_column)[rows]
        x = x[np.isfinite(x)]
        lo = float(x.min()) if len(x) else 0.0
        return lo, max(float(x.max()) if len(x) else 0.0, lo + 1.0)

    def _x_chosen(self, position: int) -> None:
        column = self.x_combo.itemData(position)
        for plot in self.plots.values():
            plot.set_x_column(column, *(("time", "s") if column == "t" else ("step", "")))
        self._span_changed()

    def _span_picked(self, button: QRadioButton) -> None:
        self._span_choice = button

    def _span_changed(self) -> None:
        if self.whole.isChecked():
            for plot in self.plots.values():
                self._auto_range(plot)
        self._schedule()

    def _auto_range(self, plot: LivePlot) -> None:
        """Zoom out to all the data. The x range is set first: the curves clip to the
        view, so auto-range alone would only see the last five minutes they were given."""
        item = plot.getPlotItem()
        if len(self._host):
            item.setXRange(*self._x_extent(slice(None)), padding=0.02)
        item.enableAutoRange(x=True, y=plot is not self.plots["utilization"])

    def _schedule(self) -> None:
        if not self.refresh_timer.isActive():
            self.refresh_timer.start()

    def _leave_history(self) -> None:
        self._history_label = ""
        self.live_button.hide()
        self._span_choice.setChecked(True)

    def _show_source(self) -> None:
        """Whose readings these are: the process curves are of that process alone."""
        if self._history_label:
            text = self._history_label
        elif not self._in_run:
            text = "This machine, live (process: this window)"
        elif self._ended:
            text = f"{self._run_name} ended: its readings, kept until the next run"
        else:
            text = f"{self._run_name}, live (process: the run's)"
        self.source.setText(text)

    def _show_notice(self) -> None:
        lines = list(self.problems)
        if not self._present and any(p.startswith("No NVIDIA GPU found") for p in lines):
            lines.append("CPU and RAM are still shown.")
        self.notice.setText("\n".join(lines))
        self.notice.setVisible(bool(lines) and not self._history_label)

    def _show_values(self) -> None:
        """The latest readings as one line per device, and the warnings that hold now."""
        s = self.latest
        if s is None:
            if self._history_label:
                self.values.setText("")
            else:
                self.values.setText("<i>Waiting for the first reading…</i>")
        else:
            rows = []
            g = s.gpu(self._selected) if self._selected is not None else None
            if g is not None:
                rows.append(
                    f"<b>GPU {g.index}</b> {g.name}: {_num(g.utilization)}% busy · "
                    f"{_num(g.memory_used / GIB, '.1f')} / {_num(g.memory_total / GIB, '.1f')}"
                    f" GiB · {_num(g.power)} / {_num(g.power_limit)} W · "
                    f"{_num(g.temperature)} °C · SM {_num(g.sm_clock)} MHz · PCIe ↑"
                    f"{_num(g.pcie_tx / 1e9, '.2f')} ↓{_num(g.pcie_rx / 1e9, '.2f')} GB/s · "
                    f"torch {_num(g.torch_allocated / GIB, '.2f')} / "
                    f"{_num(g.torch_reserved / GIB, '.2f')} GiB (peak "
                    f"{_num(g.torch_peak / GIB, '.2f')})")
            rows.append(f"<b>CPU</b> {_num(s.system_cpu)}% (process "
                        f"{_num(s.process_cpu)}% of a core) · <b>RAM</b> "
                        f"{_num(s.ram_used / GIB, '.1f')} / {_num(s.ram_total / GIB, '.1f')} GiB"
                        f" (process {_num(s.process_rss / GIB, '.2f')} GiB)")
            self.values.setText("<br>".join(rows))
        self.warning_label.setText("\n".join(f"⚠ {w}" for w in self.warnings))
        self.warning_label.setVisible(bool(self.warnings))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._own:
            self.start_sampling()
        self._schedule()

    def set_shown(self, shown: bool) -> None:
        """The dock's tab came to the front (or went behind another): draw what waited."""
        if shown:
            self._schedule()

    def hideEvent(self, event) -> None:
        """A closed or tabbed-away dock costs nothing: its own sampling stops."""
        self.stop_sampling()
        super().hideEvent(event)


def _num(value: float, fmt: str = ".0f") -> str:
    return format(value, fmt) if math.isfinite(value) else "–"


def _steps(stored: np.ndarray) -> np.ndarray:
    """The store's steps with its -1 (sampled outside training) as NaN: no point there."""
    return np.where(stored < 0, np.nan, stored.astype(np.float64))

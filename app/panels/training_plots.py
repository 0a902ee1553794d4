"""Live training curves: loss, the task's validation metric, learning rate,
gradient norm and throughput, of the running run or of one opened from the
workspace.

The bridge calls the ``on_*`` slots on the GUI thread with the engine's own
event objects. A slot only appends a row to a buffer and starts the redraw
timer if it is idle, so however fast events come, the plots are redrawn at
most ~30 times a second. Every point keeps its step, epoch position and wall
time, so switching the x axis re-plots everything that was received.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.pacing import NORMAL, pace_for
from app.widgets.growing import GrowingColumns
from app.widgets.live_plot import PALETTE, LivePlot
from app.widgets.redraw_pacing import RedrawPacing, on_screen

if TYPE_CHECKING:  # engine.training imports torch, which the window's first paint does not need
    from app.panels.run_overlay import OverlayRun
    from engine.training.events import EpochEnded, MetricsLogged, RunEnded, RunStarted

REFRESH_MS = 33  # <= 30 redraws a second
PLOTS_PER_FRAME = 2
X_AXES = {"step": ("step", ""), "epoch": ("epoch", ""), "wall": ("wall time", "s")}
STEP_COLUMNS = ("step", "epoch", "wall", "loss", "loss_ema", "lr", "grad_norm", "samples_per_s")
EPOCH_COLUMNS = ("step", "epoch", "wall", "train_loss", "val_loss", "val_accuracy", "val_mse",
                 "val_mae", "val_r2")
REGRESSION_KEYS = frozenset({"val_mse", "val_mae", "val_r2"})
BLUE, ORANGE, GREEN, PURPLE, ROSE, TEAL, OCHRE = PALETTE

# plot key: title, y label, y units, log y
PLOTS = {
    "loss": ("Loss", "loss", "", False),
    "accuracy": ("Validation accuracy", "accuracy", "%", False),
    "error": ("Validation error", "MSE (units²), MAE (units)", "", False),
    "r2": ("Validation R²", "R²", "", False),
    "lr": ("Learning rate", "learning rate", "", True),
    "grad_norm": ("Gradient norm (before clipping)", "L2 norm", "", True),
    "throughput": ("Throughput", "throughput", "samples/s", False),
}
# curve name: plot key, table ("step" or "epoch"), column, legend label, colour, per-epoch markers
CURVES = {
    "train_loss": ("loss", "step", "loss", "train", BLUE, False),
    "train_loss_ema": ("loss", "step", "loss_ema", "smoothed", BLUE, False),
    "epoch_train_loss": ("loss", "epoch", "train_loss", "epoch mean", GREEN, True),
    "val_loss": ("loss", "epoch", "val_loss", "val", ORANGE, True),
    "val_accuracy": ("accuracy", "epoch", "val_accuracy", "validation", ORANGE, True),
    "val_mse": ("error", "epoch", "val_mse", "MSE", ORANGE, True),
    "val_mae": ("error", "epoch", "val_mae", "MAE", PURPLE, True),
    "val_r2": ("r2", "epoch", "val_r2", "R²", TEAL, True),
    "lr": ("lr", "step", "lr", "learning rate", PURPLE, False),
    "grad_norm": ("grad_norm", "step", "grad_norm", "gradient norm", ROSE, False),
    "samples_per_s": ("throughput", "step", "samples_per_s", "samples/s", TEAL, False),
}


def smooth(values: np.ndarray, weight: float) -> tuple[np.ndarray, float, int]:
    """TensorBoard's debiased EMA of ``values``; NaN stays NaN and is skipped.

    Debiasing makes each smoothed value a weighted mean of the values so far:
    it starts at the first value rather than at 0 and never leaves their range.
    Returns the smoothed array and the state (last biased value, count of
    finite values) an ``_Ema`` continues from.
    """
    finite = np.isfinite(values)
    every = bool(finite.all())
    v = values if every else values[finite]
    if len(v) == 0:
        return np.full(len(values), np.nan), 0.0, 0
    from scipy.signal import lfilter  # scipy: not needed at the window's start

    biased = lfilter([1.0 - weight], [1.0, -weight], v)
    # 1 - weight**k is exactly 1.0 in float64 once weight**k < 1e-17: raise to the power
    # only before that (~3,900 values at 0.99), not 100,000 times for a long run.
    debias = np.ones(len(v))
    if weight > 0:
        k = min(len(v), math.ceil(math.log(1e-17) / math.log(weight)))
        debias[:k] = 1.0 - weight ** np.arange(1, k + 1)
    if every:
        return biased / debias, float(biased[-1]), len(v)
    out = np.full(len(values), np.nan)
    out[finite] = biased / debias
    return out, float(biased[-1]), len(v)


def epoch_positions(steps: np.ndarray, epochs: np.ndarray, ends: Mapping[int, int],
                    steps_per_epoch: int | None = None) -> np.ndarray:
    """Where each step row lies on the "epoch" axis: epoch e spans (e-1, e], and a step's
    position is e-1 plus the fraction of e done (``ends``: epoch -> the step it ended at).

    One span per distinct epoch, taken from the epochs seen to end, else from
    ``steps_per_epoch``, else from the length of the last epoch that ended; a row of an
    epoch whose span is unknown sits at its end.
    """
    distinct, which = np.unique(np.asarray(epochs, dtype=np.int64), return_inverse=True)
    spans = [_epoch_span(int(e), ends, steps_per_epoch) for e in distinct]
    starts = np.array([s[0] if s else np.nan for s in spans])[which]
    lengths = np.array([s[1] if s else np.nan for s in spans])[which]
    with np.errstate(invalid="ignore"):
        fraction = np.where(np.isnan(lengths), 1.0,
                            np.clip((np.asarray(steps) - starts) / lengths, 0.0, 1.0))
    return distinct[which] - 1 + fraction


def _epoch_span(epoch: int, ends: Mapping[int, int],
                steps_per_epoch: int | None) -> tuple[float, float] | None:
    """(first step before the epoch, its length in steps), or None if unknown."""
    start = 0 if epoch == 1 else ends.get(epoch - 1)
    if start is not None and epoch in ends:
        length = ends[epoch] - start
    else:
        length = steps_per_epoch or _last_epoch_length(ends)
    if not length:
        return None
    return (epoch - 1) * length if start is None else start, length


def _last_epoch_length(ends: Mapping[int, int]) -> int | None:
    if not ends:
        return None
    last = max(ends)
    start = 0 if last == 1 else ends.get(last - 1)
    return None if start is None else ends[last] - start


@dataclass
class History:
    """A stored run's rows as the plots' tables take them (see ``history_rows``)."""
    steps: dict[str, np.ndarray] | None  # STEP_COLUMNS, or None without step rows
    epochs: dict[str, np.ndarray] | None  # EPOCH_COLUMNS, or None without epoch rows
    ends: dict[int, int]  # epoch -> the step it ended at
    ema_state: tuple[float, int]  # where the smoothed loss goes on from (see ``smooth``)


def history_rows(step_metrics: Mapping[str, np.ndarray], epoch_metrics: Mapping,
                 smoothing: float, steps_per_epoch: int | None = None) -> History:
    """``Workspace.step_metrics`` and ``epoch_metrics`` of one run as rows of the plots'
    step and epoch tables: steps in order with their epoch positions and smoothed loss,
    epochs with the wall time read off the step rows at each epoch's end."""
    ends: dict[int, int] = {}
    for series in epoch_metrics.values():
        ends.update(zip(series.epoch.tolist(), series.step.tolist()))
    order = np.argsort(np.asarray(step_metrics.get("step", ()), dtype=np.float64),
                       kind="stable")
    col = {name: np.asarray(step_metrics[name], dtype=np.float64)[order]
           for name in ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s",
                        "wall_s") if name in step_metrics}
    steps, ema_state = None, (0.0, 0)
    if len(order):
        ema, biased, count = (smooth(col["loss"], smoothing) if smoothing > 0 else
                              (col["loss"].copy(), 0.0, 0))  # off: no curve shows it
        ema_state = (biased, count)
        steps = dict(step=col["step"], wall=col["wall_s"], loss=col["loss"], loss_ema=ema,
                     lr=col["lr"], grad_norm=col["grad_norm"],
                     samples_per_s=col["samples_per_s"],
                     epoch=epoch_positions(col["step"], col["epoch"].astype(np.int64), ends,
                                           steps_per_epoch))
    return History(steps, _epoch_rows(epoch_metrics, ends, col), ends, ema_state)


def _epoch_rows(epoch_metrics: Mapping, ends: Mapping[int, int],
                step_col: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    epochs = sorted({int(e) for s in epoch_metrics.values() for e in s.epoch})
    if not epochs:
        return None
    index = {e: i for i, e in enumerate(epochs)}
    at = np.array([ends[e] for e in epochs], dtype=np.float64)
    rows: dict[str, np.ndarray] = {"epoch": np.array(epochs, dtype=np.float64), "step": at}
    # Epoch rows have no wall time of their own: read it off the step rows at the epoch end.
    rows["wall"] = (np.interp(at, step_col["step"], step_col["wall_s"])
                    if len(step_col.get("step", ())) else np.full(len(epochs), np.nan))
    for name in EPOCH_COLUMNS[3:]:
        values = np.full(len(epochs), np.nan)
        if name in epoch_metrics:
            s = epoch_metrics[name]
            values[[index[int(e)] for e in s.epoch]] = s.value
        rows[name] = 100.0 * values if name == "val_accuracy" else values
    return rows


class _Ema:
    """The same EMA one value at a time, for live appends."""

    def __init__(self, weight: float):
        self.weight, self.biased, self.count = weight, 0.0, 0

    def push(self, value: float) -> float:
        if not math.isfinite(value):
            return math.nan
        self.biased = self.weight * self.biased + (1.0 - self.weight) * value
        self.count += 1
        return self.biased / (1.0 - self.weight ** self.count)


class TrainingPlots(QWidget):
    """The grid of training plots, with x-axis and smoothing controls above it."""

    def __init__(self, parent=None, *, dark: bool | None = None):
        super().__init__(parent)
        self.task: str | None = None
        self.steps_per_epoch: int | None = None
        self._epoch_ends: dict[int, int] = {}  # epoch -> the step it ended at
        self._steps = GrowingColumns(STEP_COLUMNS, capacity=4096)
        self._epochs = GrowingColumns(EPOCH_COLUMNS, capacity=64)
        self._smoothing = 0.6
        self._ema = _Ema(self._smoothing)
        self._ema_stale = False  # the smoothing changed: recompute the column at the next draw
        if dark is None:
            dark = QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128

        self.pace = NORMAL  # how much drawing may cost while a run trains (app.pacing)
        self.refresh_timer = QTimer(self)
        self._pacing = RedrawPacing(self.refresh_timer, self._wait_ms)
        self._tick = 0  # timer ticks so far, and when each plot last redrew
        self._drawn_tick: dict[int, int] = {}
        self.refresh_timer.setSingleShot(True)  # started by the first change after a draw
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self._on_timer)
        self.x_combo = QComboBox()
        for key, (label, units) in X_AXES.items():
            self.x_combo.addItem(f"{label} ({units})" if units else label, key)
        self.x_combo.setToolTip("What the horizontal axis of every plot shows")
        # Bound methods, not lambdas holding self: those crash PySide6 when the panel is deleted.
        self.x_combo.currentIndexChanged.connect(self._x_combo_changed)
        self.smooth_slider = QSlider(Qt.Orientation.Horizontal)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setFixedWidth(140)
        self.smooth_spin = QDoubleSpinBox()
        self.smooth_spin.setRange(0.0, 0.99)
        self.smooth_spin.setSingleStep(0.01)
        self.smooth_spin.setDecimals(2)
        tip = ("Exponential moving average of the per-step training loss, drawn over the raw "
               "curve; 0 turns it off")
        for w in (self.smooth_slider, self.smooth_spin):
            w.setToolTip(tip)
        self.smooth_slider.valueChanged.connect(self._slider_moved)
        self.smooth_spin.valueChanged.connect(self.set_smoothing)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("X axis:"))
        controls.addWidget(self.x_combo)
        controls.addSpacing(16)
        controls.addWidget(QLabel("Loss smoothing:"))
        controls.addWidget(self.smooth_slider)
        controls.addWidget(self.smooth_spin)
        controls.addStretch(1)

        self.plots: dict[str, LivePlot] = {}
        for key, (title, y_label, y_units, log_y) in PLOTS.items():
            plot = LivePlot(title, y_label=y_label, y_units=y_units, x_label="step",
                            x_column="step", log_y=log_y, dark=dark, steady=True,
                            x_origin=0.0)  # steps, epochs and seconds all count from 0
            plot.setMinimumSize(220, 160)
            self._pacing.watch(plot)
            self.plots[key] = plot
        self._plot_of: dict[str, LivePlot] = {}
        for name, (key, table, column, label, color, markers) in CURVES.items():
            plot = self.plots[key]
            plot.add_curve(name, label, color, y=column,
                           table=self._steps if table == "step" else self._epochs,
                           width=2.0 if markers or name == "train_loss_ema" else 1.0,
                           symbol="o" if markers else None)
            self._plot_of[name] = plot
        self._grid = QGridLayout()
        self._grid.setSpacing(4)
        for column in range(3):
            self._grid.setColumnStretch(column, 1)
        for row in range(2):
            self._grid.setRowStretch(row, 1)
        # Above the plots while an overlay is shown: what it is (a CV group's summary).
        self.caption = QLabel()
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setWordWrap(True)
        self.close_overlay = QPushButton("Close comparison")
        self.close_overlay.setToolTip("Back to the run shown before the comparison")
        self.close_overlay.clicked.connect(self.clear_overlay)
        self.caption_row = QWidget()
        row = QHBoxLayout(self.caption_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.caption, 1)
        row.addWidget(self.close_overlay, 0, Qt.AlignmentFlag.AlignTop)
        self.caption_row.hide()
        from app.panels.run_overlay import RunOverlay  # it builds on this module

        self.overlay = RunOverlay(self.plots)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.caption_row)
        layout.addLayout(self._grid, 1)
        self._arrange()

        self._sync_smoothing_controls()
        self._style_loss_curves()

    # --- slots the bridge calls ------------------------------------------------------
    def on_run_started(self, e: RunStarted) -> None:
        """A new run clears the plots; a resumed one drops what came after its checkpoint."""
        if e.start_step > 0:
            self._truncate_after(e.start_step)
        else:
            self.clear()
        self.steps_per_epoch = e.steps_per_epoch or None
        self._set_task(e.task)
        self.pace = pace_for(e.device)

    def on_metrics(self, e: MetricsLogged) -> None:
        self._steps.append(step=e.step, epoch=self._epoch_position(e.step, e.epoch),
                           wall=e.wall_s, loss=e.loss, lr=e.lr, grad_norm=e.grad_norm,
                           samples_per_s=e.samples_per_s,
                           loss_ema=math.nan if self._ema_stale else self._ema.push(e.loss))
        self._schedule()

    def on_metrics_batch(self, events: list[MetricsLogged]) -> None:
        """Many steps at once: one append per column, not one per step."""
        def column(field: str) -> np.ndarray:
            return np.fromiter((getattr(e, field) for e in events), float, len(events))

        steps, loss = column("step"), column("loss")
        ema = (np.full(len(events), math.nan) if self._ema_stale
               else np.fromiter((self._ema.push(v) for v in loss), float, len(events)))
        self._steps.append_many(step=steps, epoch=self._epoch_positions(steps, column("epoch")),
                                wall=column("wall_s"), loss=loss, lr=column("lr"),
                                grad_norm=column("grad_norm"),
                                samples_per_s=column("samples_per_s"), loss_ema=ema)
        self._schedule()

    def on_epoch(self, e: EpochEnded) -> None:
        self._epoch_ends[e.epoch] = e.step
        m = e.metrics
        if self.task is None and m:
            self._set_task("regression" if REGRESSION_KEYS & set(m) else "classification")
        self._epochs.append(step=e.step, epoch=e.epoch, wall=e.wall_s, train_loss=e.train_loss,
                            val_loss=m.get("val_loss", math.nan),
                            val_accuracy=100.0 * m.get("val_accuracy", math.nan),
                            val_mse=m.get("val_mse", math.nan), val_mae=m.get("val_mae", math.nan),
                            val_r2=m.get("val_r2", math.nan))
        self._schedule()

    def on_run_ended(self, e: RunEnded) -> None:
        """Draw every plot up to the run's last step now.

        The paced timer redraws a couple of plots a tick, and a short run can end
        before it has drawn them all (a 70-step run's loss plot stood at step 28);
        after the end nothing else may come to move them on.
        """
        self.pace = NORMAL  # the cores are free again
        self.refresh()

    def clear(self) -> None:
        """Empty the plots for another run; an overlay goes too."""
        self.clear_overlay()
        self._steps.clear()
        self._epochs.clear()
        self._epoch_ends.clear()
        self._ema = _Ema(self._smoothing)
        self._ema_stale = False
        for plot in self.plots.values():
            plot.follow_data()
            plot.hide_crosshair()
        self._schedule()

    def load_history(self, step_metrics: Mapping[str, np.ndarray], epoch_metrics: Mapping,
                     task: str, steps_per_epoch: int | None = None) -> None:
        """Show a finished (or still running) run as the workspace stores it.

        ``step_metrics`` is ``Workspace.step_metrics(run_id)`` (column -> array),
        ``epoch_metrics`` is ``Workspace.epoch_metrics(run_id)`` (name -> Series).
        """
        self.clear()
        self.steps_per_epoch = steps_per_epoch or None
        self._set_task(task)
        h = history_rows(step_metrics, epoch_metrics, self._smoothing, self.steps_per_epoch)
        self._epoch_ends.update(h.ends)
        self._ema.biased, self._ema.count = h.ema_state
        if h.steps:
            self._steps.append_many(**h.steps)
        if h.epochs:
            self._epochs.append_many(**h.epochs)
        self._schedule()

    # --- several runs at once ---------------------------------------------------------
    def overlay_runs(self, runs: list[OverlayRun], caption: str = "") -> None:
        """Draw ``runs`` (see app.panels.run_overlay) together, one colour per run, in place
        of the run shown; ``caption`` (rich text) goes above the plots."""
        self.overlay.show(runs, self._smoothing)
        for name, plot in self._plot_of.items():
            plot.set_curve_shown(name, False)
        self._overlay_changed(caption)

    def clear_overlay(self) -> None:
        """Back to the run shown before (a live one has gone on filling its curves)."""
        if not self.overlay.active:
            return
        self.overlay.clear()
        for name, plot in self._plot_of.items():
            plot.set_curve_shown(name, name != "train_loss_ema" or self._smoothing > 0)
        self._overlay_changed("")

    def _overlay_changed(self, caption: str) -> None:
        self.caption.setText(caption)
        self.caption_row.setVisible(self.overlay.active)
        self._arrange()
        for plot in self.plots.values():
            plot.follow_data()
            plot.hide_crosshair()
        self._schedule()

    # --- what the panel shows ----------------------------------------------------------
    @property
    def x_axis(self) -> str:
        return self.plots["loss"].x_column

    def set_x_axis(self, axis: str) -> None:
        """Plot against "step", "epoch" (fractional within an epoch) or "wall" (seconds)."""
        if axis not in X_AXES:
            raise ValueError(f"x axis must be one of {', '.join(X_AXES)} (got {axis!r})")
        if axis == self.x_axis:
            return
        label, units = X_AXES[axis]
        for plot in self.plots.values():
            plot.set_x_column(axis, label, units)
        self.x_combo.setCurrentIndex(self.x_combo.findData(axis))
        self._schedule()

    @property
    def smoothing(self) -> float:
        return self._smoothing

    def set_smoothing(self, weight: float) -> None:
        """EMA weight of the smoothed loss curve, 0 (off) to 0.99."""
        weight = round(min(max(float(weight), 0.0), 0.99), 2)
        if weight == self._smoothing:
            return
        self._smoothing = weight
        self._ema_stale = True
        self.overlay.set_smoothing(weight)
        self._sync_smoothing_controls()
        self._style_loss_curves()
        self._schedule()

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The points a curve holds, against the current x axis (accuracy in %)."""
        if name == "train_loss_ema":
            self._update_ema()
        return self._plot_of[name].curve_data(name)

    def drawn_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The points a curve was given at the last redraw."""
        return self._plot_of[name].drawn_data(name)

    def plot_of(self, name: str) -> LivePlot:
        return self._plot_of[name]

    def refresh(self) -> int:
        """Redraw the curves that changed; returns how many were redrawn."""
        self._update_ema()
        return sum(plot.refresh() for plot in self.plots.values() if plot.isVisibleTo(self))

    def apply_theme(self, dark: bool) -> None:
        for plot in self.plots.values():
            plot.apply_theme(dark)

    # --- inner workings --------------------------------------------------------------
    def _schedule(self) -> None:
        if not self.refresh_timer.isActive():
            self.refresh_timer.start()

    def _on_timer(self) -> None:
        """Redraw a few plots, then wait ``pace.plot_budget`` times what drawing took.

        pyqtgraph paints in Python, and on a small machine its paint takes a core
        from the run's threads; so the time the last frames took to paint
        (measured in the plots' paintEvent) paces the next, keeping drawing to a
        few percent of a core, or one percent while a run fills the cores.
        At most ``PLOTS_PER_FRAME`` plots redraw per tick so that one event-loop
        iteration stays short and the window responsive.
        """
        if not on_screen(self):  # hidden, or behind another tab: drawn when shown (set_shown)
            return
        started = time.perf_counter()
        self._update_ema()
        shown = [p for p in self.plots.values() if p.isVisibleTo(self)]
        dirty = [p for p in shown if p.has_changes()]
        dirty.sort(key=lambda p: self._drawn_tick.get(id(p), -1))  # longest waiting first
        self._tick += 1
        for plot in dirty[:PLOTS_PER_FRAME]:
            plot.refresh()
            self._drawn_tick[id(plot)] = self._tick
        self._pacing.redrew((time.perf_counter() - started) * 1000)
        if len(dirty) > PLOTS_PER_FRAME:
            self._schedule()

    def _wait_ms(self, spent_ms: float) -> int:
        return self.pace.plot_wait_ms(spent_ms, REFRESH_MS)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._schedule()

    def set_shown(self, shown: bool) -> None:
        """The dock's tab came to the front (or went behind another): draw what waited."""
        if shown:
            self._schedule()

    def _update_ema(self) -> None:
        self.overlay.update()
        if self._ema_stale:
            ema, self._ema.biased, self._ema.count = smooth(self._steps.column("loss"),
                                                            self._smoothing)
            self._ema.weight = self._smoothing
            self._steps.set_column("loss_ema", ema)
            self._ema_stale = False

    def _epoch_position(self, step: float, epoch: int) -> float:
        return float(self._epoch_positions(np.array([step], dtype=np.float64),
                                           np.array([epoch]))[0])

    def _epoch_positions(self, steps: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        return epoch_positions(steps, epochs, self._epoch_ends, self.steps_per_epoch)

    def _truncate_after(self, step: int) -> None:
        keep = int(np.searchsorted(self._steps.column("step"), step, side="right"))
        self._steps.truncate(keep)
        keep = int(np.searchsorted(self._epochs.column("step"), step, side="right"))
        self._epochs.truncate(keep)
        self._epoch_ends = {e: s for e, s in self._epoch_ends.items() if s <= step}
        self._ema_stale = True
        self._schedule()

    def _set_task(self, task: str | None) -> None:
        if task != self.task:
            self.task = task
            self._arrange()

    def _arrange(self) -> None:
        """Classification: a wide loss plot and accuracy; regression: loss, error and R²."""
        regression = (self.overlay.task or self.task) == "regression"
        for plot in self.plots.values():
            self._grid.removeWidget(plot)
        top = (("loss", 1), ("error", 1), ("r2", 1)) if regression else \
            (("loss", 2), ("accuracy", 1))
        column = 0
        for key, span in top:
            self._grid.addWidget(self.plots[key], 0, column, 1, span)
            column += span
        for column, key in enumerate(("lr", "grad_norm", "throughput")):
            self._grid.addWidget(self.plots[key], 1, column)
        shown = {key for key, _ in top} | {"lr", "grad_norm", "throughput"}
        for key, plot in self.plots.items():
            plot.setVisible(key in shown)
        self._schedule()

    def _x_combo_changed(self, index: int) -> None:
        self.set_x_axis(self.x_combo.itemData(index))

    def _slider_moved(self, value: int) -> None:
        self.set_smoothing(value / 100)

    def _sync_smoothing_controls(self) -> None:
        for w, value in ((self.smooth_slider, round(self._smoothing * 100)),
                         (self.smooth_spin, self._smoothing)):
            w.blockSignals(True)
            w.setValue(value)
            w.blockSignals(False)

    def _style_loss_curves(self) -> None:
        """With smoothing on, the raw loss is drawn faint under the smoothed one."""
        plot, on = self.plots["loss"], self._smoothing > 0
        faint = plot.item("train_loss").opts["pen"].color()
        faint.setAlpha(80 if on else 255)
        plot.set_curve_pen("train_loss", faint)
        plot.set_curve_shown("train_loss_ema", on and not self.overlay.active)


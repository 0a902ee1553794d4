"""Several stored runs' curves on the training plots at once, one colour per run.

The Runs dock (a selection) and the cross-validation view (a group's folds) hand
``TrainingPlots.overlay_runs`` a list of ``OverlayRun``, as ``load_overlay``
reads them from the workspace. Each run gets tables of the same columns as the
live run's, so the x-axis choices (step, epoch, wall time), the loss smoothing,
the crosshair read-out and the plots' clipping and peak downsampling work on
the overlay as they do on one run: 20 runs of 100,000 steps stay fluid
(bench/run_overlay.py). While an overlay is shown the plots' own curves are
hidden, not dropped: a live run keeps filling them and shows again, whole,
when the overlay is cleared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import Qt

from app.panels.training_plots import (
    EPOCH_COLUMNS,
    REGRESSION_KEYS,
    STEP_COLUMNS,
    history_rows,
    smooth,
)
from app.widgets.growing import GrowingColumns
from app.widgets.live_plot import PALETTE, LivePlot

# Seven colours that read on both themes (app.widgets.live_plot), then the same
# seven dashed, dotted and dash-dotted: 28 runs before a colour and style repeat.
# Lines are one pixel wide: Qt strokes a wider pen, dashed above all, some 30 times
# slower, and 20 runs' curves took seconds a frame (bench/run_overlay.py).
STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine,
          Qt.PenStyle.DashDotLine)
MARKED_EPOCHS = 30  # runs of at most this many epochs get a marker at each epoch's values
TRAIN = "train"  # the step column the train-loss curve draws: raw, or smoothed (see smoothing)
# curve: plot key, table ("step" or "epoch"), column, read-out suffix, in the legend, marker.
# One legend, on the loss plot, names the runs: a run has one colour on every plot, and
# the legends of 20 runs would cover the small plots (their read-outs name the curves).
CURVES = (
    ("loss", "step", TRAIN, "", True, None),
    ("loss", "epoch", "val_loss", " val", False, "o"),
    ("accuracy", "epoch", "val_accuracy", "", False, "o"),
    ("error", "epoch", "val_mse", " MSE", False, "o"),
    ("error", "epoch", "val_mae", " MAE", False, "t"),
    ("r2", "epoch", "val_r2", "", False, "o"),
    ("lr", "step", "lr", "", False, None),
    ("grad_norm", "step", "grad_norm", "", False, None),
    ("throughput", "step", "samples_per_s", "", False, None),
)


@dataclass
class OverlayRun:
    """One run to overlay: its legend name and its metrics as the workspace returns them
    (``Workspace.step_metrics(id)``: column -> array; ``epoch_metrics(id)``: name -> Series)."""
    name: str
    steps: Mapping[str, np.ndarray]
    epochs: Mapping = field(default_factory=dict)

    @property
    def task(self) -> str:
        return "regression" if REGRESSION_KEYS & set(self.epochs) else "classification"


def load_overlay(ws, run_ids: Iterable[int]) -> list[OverlayRun]:
    """The runs ``run_ids`` of workspace ``ws``, in that order, named "id name" (runs of
    one configuration share a name); raises WorkspaceError for an unknown id."""
    runs = []
    for run_id in run_ids:
        run = ws.get_run(run_id)
        runs.append(OverlayRun(f"{run.id} {run.name}", ws.step_metrics(run.id),
                               ws.epoch_metrics(run.id)))
    return runs


def run_style(index: int) -> tuple[str, Qt.PenStyle]:
    """The colour and line style of the ``index``-th overlaid run."""
    return PALETTE[index % len(PALETTE)], STYLES[index // len(PALETTE) % len(STYLES)]


@dataclass
class _Shown:
    name: str
    steps: GrowingColumns
    epochs: GrowingColumns
    curves: list[tuple[LivePlot, str]]


class RunOverlay:
    """The overlaid runs' curves on ``plots`` (TrainingPlots.plots: key -> LivePlot)."""

    def __init__(self, plots: Mapping[str, LivePlot]):
        self._plots = plots
        self._shown: list[_Shown] = []
        self._smoothing = 0.0
        self._stale = False  # the smoothing changed since the train-loss columns were made
        self._task = "classification"

    @property
    def active(self) -> bool:
        return bool(self._shown)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._shown]

    @property
    def task(self) -> str | None:
        """The arrangement the overlay needs (regression when every run is one); None
        without an overlay."""
        return self._task if self._shown else None

    def show(self, runs: list[OverlayRun], smoothing: float) -> None:
        self.clear()
        self._smoothing, self._stale = smoothing, False
        self._task = ("regression" if runs and all(r.task == "regression" for r in runs)
                      else "classification")
        for index, run in enumerate(runs):
            self._shown.append(self._add(index, run))

    def clear(self) -> None:
        for shown in self._shown:
            for plot, name in shown.curves:
                plot.remove_curve(name)
        self._shown = []

    def set_smoothing(self, weight: float) -> None:
        """The train-loss curves follow the panel's smoothing, as the live one does, from
        the next ``update`` (the panel's next draw: a dragged slider smooths 20 runs of
        100,000 steps once a frame, not once per slider position)."""
        if weight != self._smoothing:
            self._smoothing, self._stale = weight, True

    def update(self) -> None:
        if self._stale:
            self._stale = False
            for shown in self._shown:
                shown.steps.set_column(TRAIN, self._train_loss(shown.steps.column("loss")))

    def _train_loss(self, loss: np.ndarray) -> np.ndarray:
        return smooth(loss, self._smoothing)[0] if self._smoothing > 0 else loss.copy()

    def _add(self, index: int, run: OverlayRun) -> _Shown:
        h = history_rows(run.steps, run.epochs, self._smoothing)
        n = len(h.steps["step"]) if h.steps else 0
        steps = GrowingColumns(STEP_COLUMNS + (TRAIN,), capacity=max(n, 16))
        epochs = GrowingColumns(EPOCH_COLUMNS, capacity=16)
        if h.steps:
            train = h.steps["loss_ema"] if self._smoothing > 0 else h.steps["loss"]
            steps.append_many(**h.steps, **{TRAIN: train})
        if h.epochs:
            epochs.append_many(**h.epochs)
        color, style = run_style(index)
        shown = _Shown(run.name, steps, epochs, [])
        # Markers a epoch help read a short run; on long ones they are a smear that costs
        # more than the lines on each pan (pyqtgraph re-clips every scatter item).
        few = len(epochs) <= MARKED_EPOCHS
        for plot_key, table, column, suffix, legend, marker in CURVES:
            source = steps if table == "step" else epochs
            if table == "epoch" and not np.isfinite(source.column(column)).any():
                continue  # a metric the run's task has not: no empty entry in the read-out
            plot, name = self._plots[plot_key], f"overlay{index}:{column}"
            plot.add_curve(name, run.name + suffix, color, table=source, y=column,
                           width=1.0, style=style, legend=legend,
                           symbol=marker if few else None, symbol_size=5)
            shown.curves.append((plot, name))
        return shown

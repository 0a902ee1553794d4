"""Plot ranges and ticks a person can read: one point is in view, ticks carry no
float noise, a new run gets ranges of its own, and a run's end draws every plot
up to its last step."""

from __future__ import annotations

import numpy as np
import pytest

from app.panels.training_plots import TrainingPlots
from app.widgets.live_plot import LivePlot
from engine.training.events import RunEnded
from tests.app.test_training_plots import SPE, ended, logged, started


@pytest.fixture
def plot(qtbot):
    p = LivePlot("Accuracy", y_label="accuracy", x_label="step", steady=True)
    qtbot.addWidget(p)
    p.resize(500, 300)
    p.show()
    qtbot.waitExposed(p)
    return p


@pytest.fixture
def panel(qtbot):
    w = TrainingPlots(dark=False)
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def tick_labels(plot: LivePlot, name: str) -> list[str]:
    """The labels the axis draws for its current range."""
    axis = plot.getPlotItem().getAxis(name)
    lo, hi = axis.range
    labels = []
    for spacing, values in axis.tickValues(lo, hi, 400):
        labels += axis.tickStrings(values, axis.scale, spacing)
    return labels


def test_one_point_is_in_view_with_readable_ticks(plot):
    plot.add_curve("acc", "validation", "#d95f02", symbol="o")
    plot.append("acc", 23.0, 7.0)
    plot.refresh()
    (x0, x1), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
    assert x0 < 23.0 < x1 and x1 - x0 >= 1.0
    assert y0 < 7.0 < y1 and y1 - y0 >= 0.5
    for name in ("bottom", "left"):
        labels = tick_labels(plot, name)
        assert labels and all(len(s) <= 6 for s in labels), (name, labels)


def test_values_a_rounding_error_apart_get_ticks_without_float_noise(plot):
    plot.add_curve("acc", "validation", "#d95f02")
    plot.append_many("acc", [1.0, 2.0, 3.0], [6.9999999, 7.0, 7.0000001])
    plot.refresh()
    (_, _), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
    assert y0 < 6.9999999 and y1 > 7.0000001
    labels = tick_labels(plot, "left")
    assert labels and all("0000" not in s and len(s) <= 6 for s in labels), labels


def test_a_constant_curve_on_a_log_axis_gets_a_readable_range(qtbot):
    plot = LivePlot("Learning rate", y_label="lr", log_y=True, steady=True)
    qtbot.addWidget(plot)
    plot.add_curve("lr", "learning rate", "#8e6cd6")
    plot.append_many("lr", [1.0, 2.0], [0.01, 0.01])
    plot.refresh()
    _, (y0, y1) = plot.getPlotItem().getViewBox().viewRange()  # log10 units
    assert y0 < -2.0 < y1 and y1 - y0 >= 0.5


def run(panel, steps, loss, start_step=0):
    panel.on_run_started(started(epochs=steps // SPE, start_step=start_step))
    for step in range(1, steps + 1):
        panel.on_metrics(logged(step, loss=loss(step)))
        if step % SPE == 0:
            panel.on_epoch(ended(step // SPE))


def test_a_new_run_sets_every_range_afresh(panel, qtbot):
    run(panel, 100, lambda s: 10.0 * (s % 2))  # loss 0 and 10
    panel.refresh()
    run(panel, 80, lambda s: 1.0 + 8.0 * (s % 2))  # within the old range, filling most of it
    panel.refresh()
    fresh = TrainingPlots(dark=False)
    qtbot.addWidget(fresh)
    run(fresh, 80, lambda s: 1.0 + 8.0 * (s % 2))
    fresh.refresh()
    for key in ("loss", "lr", "grad_norm"):
        np.testing.assert_allclose(panel.plots[key].getPlotItem().getViewBox().viewRange(),
                                   fresh.plots[key].getPlotItem().getViewBox().viewRange(),
                                   err_msg=key)


def test_the_end_of_a_run_draws_every_plot_up_to_its_last_step(panel):
    run(panel, 12, lambda s: 1.0 / s)
    panel.refresh_timer.stop()  # no paced redraw: the end alone must draw everything
    panel.on_run_ended(RunEnded("completed", 12, 3, 1.0, 12.0, 0.5, "val_loss", None, None))
    for name in ("train_loss", "train_loss_ema", "lr", "grad_norm", "samples_per_s",
                 "val_loss", "epoch_train_loss", "val_accuracy"):
        x, _ = panel.drawn_data(name)
        assert len(x) and x[-1] == 12, name


def test_a_curve_leaving_the_range_refits_unless_the_user_pinned_it(plot):
    plot.add_curve("loss", "train", "#2f7ed8")
    plot.append_many("loss", [1.0, 2.0], [1.0, 2.0])
    plot.refresh()
    plot.append("loss", 3.0, 50.0)  # a spike above the range
    plot.refresh()
    vb = plot.getPlotItem().getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    assert x1 > 3.0 and y1 > 50.0

    vb.setRange(xRange=(1.0, 2.0), yRange=(0.0, 3.0), padding=0)
    vb.sigRangeChangedManually.emit([True, True])  # as a wheel zoom does
    plot.append("loss", 4.0, 100.0)
    plot.refresh()
    np.testing.assert_allclose(vb.viewRange(), [[1.0, 2.0], [0.0, 3.0]])  # pinned
    plot.follow_data()  # the "A" button
    assert vb.viewRange()[1][1] > 100.0


@pytest.mark.parametrize("axis", ["step", "epoch", "wall"])
def test_the_plots_of_a_run_share_their_x_range_whatever_their_first_point(panel, axis):
    """Validation curves begin at the first epoch's end, the loss at the first logged
    step: one above the other, the same x still means the same moment."""
    panel.set_x_axis(axis)
    panel.on_run_started(started(epochs=3))
    for step in range(1, 3 * SPE + 1):
        panel.on_metrics(logged(step))
        if step % SPE == 0:
            panel.on_epoch(ended(step // SPE))
    panel.refresh()
    ranges = {key: plot.getPlotItem().getViewBox().viewRange()[0]
              for key, plot in panel.plots.items() if plot.isVisible()}
    assert {"loss", "accuracy", "lr"} <= set(ranges)
    for key, (x0, x1) in ranges.items():
        assert x0 == 0.0, key  # none starts at its own first point
        if axis != "wall":  # (validation ends a moment after the last step's loss)
            assert x1 == pytest.approx(ranges["loss"][1]), key


def test_an_empty_log_plot_spans_decades_not_one_to_ten(qtbot):
    """Before a run, a log axis of 1 to 10 would label its minor ticks 2 ... 9 alone."""
    plot = LivePlot("Learning rate", y_label="lr", log_y=True, steady=True)
    qtbot.addWidget(plot)
    (_, _), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
    assert y1 - y0 >= 3  # three decades or more: 0.001, 0.01, 0.1 labelled

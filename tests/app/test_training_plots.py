"""Training plots: events become curves, drawn by the timer only, on any x axis;
an opened run draws what the live run drew."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.pacing import FRUGAL, NORMAL
from app.panels.training_plots import REFRESH_MS, TrainingPlots, smooth
from app.widgets.growing import GrowingColumns, GrowingSeries
from app.widgets.live_plot import LivePlot
from engine.training import Trainer
from engine.training.events import EpochEnded, MetricsLogged, RunEnded, RunStarted
from engine.workspace import Workspace, WorkspaceWriter

SPE = 4  # steps per epoch in the hand-made runs


def started(task="classification", epochs=3, start_step=0, start_epoch=1):
    names = ("val_loss", "val_accuracy") if task == "classification" else \
        ("val_loss", "val_mse", "val_mae", "val_r2")
    return RunStarted(run_id="1", num_params=100, device="cpu", task=task, epochs=epochs,
                      steps_per_epoch=SPE, total_steps=SPE * epochs, start_step=start_step,
                      start_epoch=start_epoch, metric_names=names)


def logged(step, loss=None, lr=0.1, grad_norm=1.0):
    return MetricsLogged(step=step, epoch=(step - 1) // SPE + 1,
                         loss=1.0 / step if loss is None else loss, lr=lr, grad_norm=grad_norm,
                         samples_per_s=1000.0 + step, wall_s=0.5 * step)


def ended(epoch, task="classification", val_loss=None):
    metrics = {"val_loss": 2.0 / epoch if val_loss is None else val_loss}
    if task == "classification":
        metrics["val_accuracy"] = 0.5 + 0.1 * epoch
    else:
        metrics.update(val_mse=3.0 / epoch, val_mae=1.0 / epoch, val_r2=1 - 0.5 / epoch)
    return EpochEnded(epoch=epoch, step=epoch * SPE, train_loss=1.5 / epoch, lr=0.1,
                      wall_s=0.5 * epoch * SPE + 0.1, metrics=metrics)


def feed(panel, epochs=2, task="classification", every=2):
    """A run logging every ``every`` steps, with its epoch ends, as the bridge delivers it."""
    panel.on_run_started(started(task, epochs))
    for step in range(every, epochs * SPE + 1, every):
        panel.on_metrics(logged(step))
        if step % SPE == 0:
            panel.on_epoch(ended(step // SPE, task))


@pytest.fixture
def panel(qtbot):
    w = TrainingPlots(dark=False)
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_logged_metrics_become_step_curves(panel):
    feed(panel)
    panel.refresh()
    steps = [2, 4, 6, 8]
    for name, values in (("train_loss", [1 / s for s in steps]), ("lr", [0.1] * 4),
                         ("grad_norm", [1.0] * 4),
                         ("samples_per_s", [1000.0 + s for s in steps])):
        x, y = panel.curve_data(name)
        np.testing.assert_array_equal(x, steps)
        np.testing.assert_allclose(y, values)
        np.testing.assert_allclose(panel.drawn_data(name)[1], values)


def test_epoch_ends_draw_train_and_validation_loss_and_accuracy_in_percent(panel):
    feed(panel, epochs=3)
    panel.refresh()
    x, y = panel.drawn_data("val_loss")
    np.testing.assert_array_equal(x, [4, 8, 12])
    np.testing.assert_allclose(y, [2.0, 1.0, 2 / 3])
    np.testing.assert_allclose(panel.drawn_data("epoch_train_loss")[1], [1.5, 0.75, 0.5])
    np.testing.assert_allclose(panel.drawn_data("val_accuracy")[1], [60.0, 70.0, 80.0])
    assert panel.plots["accuracy"].isVisible() and not panel.plots["r2"].isVisible()


def test_switching_the_x_axis_replots_every_point_against_epoch_or_wall_time(panel):
    feed(panel)
    panel.set_x_axis("epoch")
    panel.refresh()
    assert panel.x_axis == "epoch" and panel.x_combo.currentData() == "epoch"
    np.testing.assert_allclose(panel.drawn_data("train_loss")[0], [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(panel.drawn_data("val_loss")[0], [1, 2])
    assert panel.plots["lr"].getPlotItem().getAxis("bottom").labelText == "epoch"

    panel.x_combo.setCurrentIndex(panel.x_combo.findData("wall"))  # as a person would
    panel.refresh()
    assert panel.x_axis == "wall"
    np.testing.assert_allclose(panel.drawn_data("train_loss")[0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(panel.drawn_data("val_loss")[0], [2.1, 4.1])
    np.testing.assert_allclose(panel.drawn_data("train_loss")[1], [1 / 2, 1 / 4, 1 / 6, 1 / 8])

    panel.set_x_axis("step")
    panel.refresh()
    np.testing.assert_array_equal(panel.drawn_data("grad_norm")[0], [2, 4, 6, 8])
    with pytest.raises(ValueError, match="x axis must be one of"):
        panel.set_x_axis("time")


def test_epoch_positions_come_from_the_epoch_ends_when_epochs_differ_in_length(panel):
    panel.on_run_started(started())
    panel.on_metrics(logged(4))
    panel.on_epoch(EpochEnded(1, 4, 1.0, 0.1, 2.0, {"val_loss": 1.0}))
    panel.on_metrics(MetricsLogged(6, 2, 0.5, 0.1, 1.0, 100.0, 3.0))
    panel.set_x_axis("epoch")
    np.testing.assert_allclose(panel.curve_data("train_loss")[0], [1.0, 1.5])


def test_smoothed_loss_stays_within_the_raw_range_and_follows_the_slider(panel):
    rng = np.random.default_rng(0)
    panel.on_run_started(started(epochs=25))
    raw = np.abs(1.0 + 0.5 * rng.standard_normal(100))
    for step, loss in enumerate(raw, start=1):
        panel.on_metrics(logged(step, loss=float(loss)))
    panel.set_smoothing(0.9)
    panel.refresh()
    _, smoothed = panel.drawn_data("train_loss_ema")
    assert len(smoothed) == len(raw)
    assert raw.min() <= smoothed.min() and smoothed.max() <= raw.max()
    assert smoothed[0] == pytest.approx(raw[0])
    assert np.std(np.diff(smoothed)) < 0.2 * np.std(np.diff(raw))
    assert panel.smooth_slider.value() == 90 and panel.smooth_spin.value() == pytest.approx(0.9)

    panel.on_metrics(logged(101, loss=5.0))  # continues the curve one value at a time
    whole, _, _ = smooth(np.append(raw, 5.0), 0.9)
    np.testing.assert_allclose(panel.curve_data("train_loss_ema")[1], whole)

    panel.smooth_spin.setValue(0.0)
    assert panel.smoothing == 0.0
    assert not panel.plot_of("train_loss_ema").item("train_loss_ema").isVisible()


def test_smoothing_skips_missing_values():
    values = np.array([1.0, np.nan, 3.0, 2.0])
    out, _, count = smooth(values, 0.5)
    assert math.isnan(out[1]) and count == 3
    assert out[0] == 1.0 and 1.0 <= out[2] <= 3.0 and 1.0 <= out[3] <= 3.0


def test_regression_runs_show_error_and_r2_plots(panel):
    feed(panel, epochs=2, task="regression")
    panel.refresh()
    assert panel.task == "regression"
    assert panel.plots["r2"].isVisible() and panel.plots["error"].isVisible()
    assert not panel.plots["accuracy"].isVisible()
    np.testing.assert_allclose(panel.drawn_data("val_r2")[1], [0.5, 0.75])
    np.testing.assert_allclose(panel.drawn_data("val_mse")[1], [3.0, 1.5])
    np.testing.assert_allclose(panel.drawn_data("val_mae")[1], [1.0, 0.5])


def test_the_task_is_inferred_from_the_metrics_when_no_run_start_was_seen(panel):
    panel.on_epoch(ended(1, "regression"))
    assert panel.task == "regression" and panel.plots["r2"].isVisibleTo(panel)


def test_an_opened_run_draws_what_the_live_run_drew(qtbot, tiny_config, tmp_path):
    cfg = tiny_config()
    live, opened = TrainingPlots(dark=False), TrainingPlots(dark=True)
    for w in (live, opened):
        qtbot.addWidget(w)
    with Workspace(tmp_path / "ws") as ws:
        run = ws.create_run(cfg)
        trainer = Trainer(cfg, run_id=str(run.id), checkpoint_dir=run.dir / "checkpoints")
        WorkspaceWriter(ws, run).attach(trainer)
        for event, slot in ((RunStarted, live.on_run_started), (MetricsLogged, live.on_metrics),
                            (EpochEnded, live.on_epoch), (RunEnded, live.on_run_ended)):
            trainer.on(event, slot)
        assert trainer.run().status == "completed"
        opened.load_history(ws.step_metrics(run.id), ws.epoch_metrics(run.id), trainer.task,
                            trainer.steps_per_epoch)
    assert opened.task == "classification"
    names = ("train_loss", "train_loss_ema", "lr", "grad_norm", "samples_per_s", "val_loss",
             "epoch_train_loss", "val_accuracy")
    for axis in ("step", "epoch", "wall"):
        for w in (live, opened):
            w.set_x_axis(axis)
        for name in names:
            if axis == "wall" and name in ("val_loss", "epoch_train_loss", "val_accuracy"):
                continue  # the store keeps no wall time per epoch: it is read off the step rows
            a, b = live.curve_data(name), opened.curve_data(name)
            assert len(a[0]) > 0, name
            np.testing.assert_allclose(a[0], b[0], err_msg=f"{name} x on {axis}")
            np.testing.assert_allclose(a[1], b[1], err_msg=f"{name} y on {axis}")
    opened.set_x_axis("epoch")
    np.testing.assert_array_equal(opened.curve_data("val_loss")[0], [1, 2, 3])
    assert opened.curve_data("train_loss")[0][-1] == 3.0  # the last step ends epoch 3


def test_history_without_steps_per_epoch_takes_epoch_lengths_from_the_epoch_ends(panel):
    from engine.workspace.records import Series

    steps = {"step": np.array([2, 4, 6, 8]), "epoch": np.array([1, 1, 2, 2]),
             "loss": np.array([1.0, 0.8, np.nan, 0.5]), "lr": np.full(4, 0.1),
             "grad_norm": np.array([1.0, np.nan, 1.0, 1.0]), "samples_per_s": np.full(4, 10.0),
             "wall_s": np.array([1.0, 2.0, 3.0, 4.0])}
    epochs = {"val_loss": Series(np.array([1, 2]), np.array([4, 8]), np.array([0.9, 0.6]))}
    panel.load_history(steps, epochs, "classification")
    panel.set_x_axis("epoch")
    panel.refresh()
    np.testing.assert_allclose(panel.drawn_data("train_loss")[0], [0.5, 1.0, 1.5, 2.0])
    assert math.isnan(panel.curve_data("train_loss_ema")[1][2])
    assert panel.plot_of("grad_norm").item("grad_norm").opts["connect"] == "finite"
    panel.set_x_axis("wall")
    np.testing.assert_allclose(panel.curve_data("val_loss")[0], [2.0, 4.0])


def test_resuming_drops_the_points_after_the_checkpoint(panel):
    feed(panel, epochs=2, every=1)
    panel.on_run_started(started(start_step=4, start_epoch=2))
    np.testing.assert_array_equal(panel.curve_data("train_loss")[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(panel.curve_data("val_loss")[0], [4])
    panel.on_metrics(logged(5, loss=9.0))
    assert panel.curve_data("train_loss")[1][-1] == 9.0
    panel.on_run_started(started())  # a new run starts empty
    assert len(panel.curve_data("train_loss")[0]) == 0


def test_events_are_drawn_by_the_timer_not_one_redraw_each(panel, qtbot, monkeypatch):
    assert panel.refresh_timer.interval() >= 33 and REFRESH_MS >= 33
    qtbot.wait(3 * REFRESH_MS)  # let the tick the first show scheduled go by
    redraws = []
    for plot in panel.plots.values():
        monkeypatch.setattr(plot, "refresh", lambda real=plot.refresh: redraws.append(1) or real())
    feed(panel, epochs=25, every=1)
    assert len(panel.drawn_data("train_loss")[0]) == 0  # received but not drawn yet
    assert len(panel.curve_data("train_loss")[0]) == 100
    assert panel.refresh_timer.isActive()
    # paced: on a loaded machine each redraw waits up to 100 times what it took
    qtbot.waitUntil(lambda: len(panel.drawn_data("train_loss")[0]) == 100, timeout=30000)
    qtbot.waitUntil(lambda: not panel.refresh_timer.isActive(), timeout=30000)
    shown = sum(p.isVisibleTo(panel) for p in panel.plots.values())
    assert len(redraws) <= shown  # 125 events: each plot redrawn once, then the timer rests


def test_redraws_are_paced_by_what_painting_took(panel, monkeypatch):
    import types

    from app.panels import training_plots

    clock = [0.0]  # a fake clock: the test must not depend on this machine's speed
    fake_time = types.SimpleNamespace(perf_counter=lambda: clock[0])
    monkeypatch.setattr(training_plots, "time", fake_time)
    panel.on_metrics(logged(1))
    for plot in panel.plots.values():
        plot.paint_ms = 0.0  # forget the real paints of showing the panel
    panel.plots["loss"].paint_ms = 4.0  # the last frame took 4 ms to paint
    panel._on_timer()
    # 4 ms of painting (and a little of handing data over): wait 25x that
    assert NORMAL.plot_budget * 4 <= panel.refresh_timer.interval() <= NORMAL.plot_budget * 5
    assert panel.plots["loss"].paint_ms == 0.0  # read and reset
    panel.plots["loss"].paint_ms = 500.0  # a very slow frame: still one redraw a second
    panel._on_timer()
    assert panel.refresh_timer.interval() == NORMAL.plot_max_ms
    panel.on_metrics(logged(2))
    for plot in panel.plots.values():
        plot.paint_ms = 0.0
    panel._on_timer()  # fast again: back to 30 a second
    assert panel.refresh_timer.interval() == REFRESH_MS


def test_the_paints_a_redraw_causes_lengthen_the_wait_before_the_next(panel, monkeypatch):
    import itertools
    import types

    from app.panels import training_plots
    from app.widgets import live_plot
    from app.widgets.redraw_pacing import take_paint_ms

    # fake clocks: handing data over costs nothing, and every paint takes 4 ms
    monkeypatch.setattr(training_plots, "time", types.SimpleNamespace(perf_counter=lambda: 0.0))
    ticks = itertools.count(0.0, 0.004)
    monkeypatch.setattr(live_plot, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    panel.on_metrics(logged(1))
    panel.refresh_timer.stop()
    take_paint_ms(panel.plots.values())  # forget the paints of showing the panel
    panel._on_timer()
    panel.refresh_timer.stop()  # the other plots' turn (two a tick) is not this test's
    assert panel.refresh_timer.interval() == REFRESH_MS  # nothing painted yet
    loss = panel.plots["loss"]
    loss.viewport().repaint()  # the redraw's paint comes after the tick...
    # ...and the next tick waits for what it cost, not for the tick alone
    assert panel.refresh_timer.interval() == NORMAL.plot_budget * 4
    assert loss.paint_ms == 0.0  # counted once
    panel.on_metrics(logged(2))  # new data: the timer runs
    assert panel.refresh_timer.isActive()
    loss.viewport().repaint()  # a paint while it runs (the mouse over a plot)...
    assert panel.refresh_timer.interval() == NORMAL.plot_budget * 4  # ...does not restart it,
    assert loss.paint_ms == 4.0  # it counts at the next tick


@pytest.mark.parametrize("device, cores, frugal", [("cpu", 2, True), ("cpu", 16, False),
                                                    ("cuda", 2, False)])
def test_a_cpu_run_that_fills_few_cores_gets_a_smaller_drawing_budget(panel, monkeypatch,
                                                                     device, cores, frugal):
    import dataclasses
    import types

    from app import pacing
    from app.panels import training_plots

    monkeypatch.setattr(pacing, "available_cores", lambda: cores)
    clock = [0.0]
    monkeypatch.setattr(training_plots, "time",
                        types.SimpleNamespace(perf_counter=lambda: clock[0]))
    panel.on_run_started(dataclasses.replace(started(), device=device))
    assert panel.pace is (FRUGAL if frugal else NORMAL)
    panel.on_metrics(logged(1))
    for plot in panel.plots.values():
        plot.paint_ms = 0.0
    panel.plots["loss"].paint_ms = 4.0
    panel._on_timer()
    budget = (FRUGAL if frugal else NORMAL).plot_budget
    assert budget * 4 <= panel.refresh_timer.interval() <= budget * 5
    panel.on_run_ended(RunEnded("completed", 1, 0, 1.0, 1.0, None, "val_loss", None, None))
    assert panel.pace is NORMAL  # the last points draw at the normal pace


def test_refresh_only_updates_curves_that_changed(panel):
    feed(panel)
    assert panel.refresh() > 0
    assert panel.refresh() == 0
    panel.on_epoch(ended(3))
    assert panel.refresh() == 3  # epoch train loss, val loss, val accuracy


def test_growing_buffers_keep_order_past_their_capacity_and_earlier_views():
    s = GrowingSeries(capacity=4)
    first = None
    for i in range(10):
        s.append(i, 10 * i)
        if i == 2:
            first = s.x
    s.append_many(np.arange(10, 20), np.arange(100, 200, 10))
    assert s.capacity == 32 and len(s) == 20
    np.testing.assert_array_equal(s.x, np.arange(20))
    np.testing.assert_array_equal(s.y, 10 * np.arange(20))
    np.testing.assert_array_equal(first, [0, 1, 2])  # a view handed out earlier is untouched
    assert s.x.base is not None  # a view, not a copy
    s.clear()
    assert len(s) == 0 and s.capacity == 4


def test_growing_columns_track_non_finite_and_non_positive_values():
    t = GrowingColumns(("step", "lr"), capacity=2)
    t.append(step=1, lr=0.1)
    assert t.all_finite("lr") and t.all_positive("lr")
    t.append(step=2)  # left out: NaN
    assert not t.all_finite("lr") and t.all_finite("step")
    t.truncate(1)
    assert t.all_finite("lr") and len(t) == 1
    t.append_many(step=[2, 3], lr=[0.0, 0.1])
    assert t.all_finite("lr") and not t.all_positive("lr")
    with pytest.raises(KeyError, match="unknown columns"):
        t.append(steps=1)


def test_nan_and_zero_values_are_drawn_with_gaps_on_log_axes(panel):
    panel.on_run_started(started())
    panel.on_metrics(logged(1, lr=0.0, grad_norm=math.nan))
    panel.on_metrics(logged(2, lr=0.1, grad_norm=2.0))
    panel.refresh()
    assert panel.plot_of("lr").item("lr").opts["connect"] == "finite"
    assert panel.plot_of("grad_norm").item("grad_norm").opts["connect"] == "finite"
    assert panel.plot_of("samples_per_s").item("samples_per_s").opts["connect"] == "all"


def test_crosshair_reads_out_each_curve_at_the_mouse(panel, qtbot):
    feed(panel, epochs=2)
    panel.refresh()
    plot = panel.plots["loss"]
    plot.show_crosshair(4.2)
    text = plot.readout_text()
    assert "step 4.2" in text and "train: 0.25" in text and "val: 2" in text

    vb = plot.getPlotItem().getViewBox()
    plot.hide_crosshair()
    qtbot.waitUntil(lambda: vb.viewRange()[0][1] > 6)  # zoomed out to the data
    move_mouse(plot, vb.mapViewToScene(QPointF(6, 0.5)))
    qtbot.waitUntil(lambda: "train: 0.1667" in plot.readout_text(), timeout=2000)
    move_mouse(plot, QPointF(5, 5))  # over the title, outside the plot area
    qtbot.waitUntil(lambda: plot.readout_text() == "", timeout=2000)


def move_mouse(plot, scene_pos):
    """A mouse move as the window system delivers it (QTest moves no mouse offscreen)."""
    pos = QPointF(plot.mapFromScene(scene_pos))
    event = QMouseEvent(QEvent.Type.MouseMove, pos, plot.viewport().mapToGlobal(pos),
                        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(plot.viewport(), event)


def test_themes_set_the_background_of_every_plot(panel):
    panel.apply_theme(dark=True)
    assert {p.backgroundBrush().color().lightness() < 60 for p in panel.plots.values()} == {True}
    panel.apply_theme(dark=False)
    assert {p.backgroundBrush().color().lightness() > 200 for p in panel.plots.values()} == {True}


def test_a_live_plot_of_its_own_series(qtbot):
    plot = LivePlot("Loss", y_label="loss", x_label="step")
    qtbot.addWidget(plot)
    plot.add_curve("loss", "train", "#2f7ed8")
    plot.append_many("loss", [1, 2, 3], [3.0, 2.0, 1.0])
    plot.append("loss", 4, 0.5)
    assert plot.is_dirty("loss") and len(plot.drawn_data("loss")[0]) == 0
    assert plot.refresh() == 1 and not plot.is_dirty("loss")
    np.testing.assert_array_equal(plot.drawn_data("loss")[1], [3.0, 2.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="already exists"):
        plot.add_curve("loss", "train", "#2f7ed8")


def test_a_batch_of_steps_draws_what_the_same_steps_one_by_one_draw(qtbot):
    one, many = TrainingPlots(dark=False), TrainingPlots(dark=False)
    for w in (one, many):
        qtbot.addWidget(w)
        w.on_run_started(started(epochs=3))
    events = [logged(step, loss=1.0 + math.sin(step)) for step in range(1, 3 * SPE + 1)]
    for e in events:
        one.on_metrics(e)
        if e.step == SPE:
            one.on_epoch(ended(1))
    many.on_metrics_batch(events[:SPE])
    many.on_epoch(ended(1))
    many.on_metrics_batch(events[SPE:])
    for name in ("train_loss", "train_loss_ema", "lr", "grad_norm", "samples_per_s"):
        for axis in ("step", "epoch", "wall"):
            one.set_x_axis(axis)
            many.set_x_axis(axis)
            np.testing.assert_allclose(many.curve_data(name), one.curve_data(name))


def test_a_legend_with_no_room_in_a_small_plot_is_left_out_not_cut_off(qtbot):
    plot = LivePlot("GPU memory", y_label="memory", x_label="time")
    qtbot.addWidget(plot)
    for name, label in (("used", "used by every process"), ("run", "this run"),
                        ("total", "total memory")):
        plot.add_curve(name, label, "#2f7ed8")
    vb = plot.getPlotItem().getViewBox()
    plot.resize(700, 400)
    plot.show()
    qtbot.waitExposed(plot)
    qtbot.waitUntil(lambda: plot.legend.isVisible())
    assert plot.legend.width() <= vb.width()  # beside the title, or inside with room

    plot.resize(200, 140)  # a dock squeezed small: the legend would cover the curves
    qtbot.waitUntil(lambda: not plot.legend.isVisible())
    plot.append_many("used", [0, 1, 2], [1.0, 2.0, 3.0])
    plot.refresh()
    plot.show_crosshair(1)  # the read-out names the curves instead
    assert "used by every process: 2" in plot.readout_text()
    plot.hide_crosshair()
    assert not plot.legend.isVisible()

    plot.resize(700, 400)  # and back when the plot grows again
    qtbot.waitUntil(lambda: plot.legend.isVisible())

"""Several runs overlaid on the training plots: a colour (then a dash style) per run, a
legend by run name, every x axis, the loss smoothing, and the live run back when cleared."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from app.panels.run_overlay import OverlayRun, load_overlay, run_style
from app.panels.training_plots import TrainingPlots, smooth
from app.widgets.live_plot import PALETTE
from engine.workspace import Workspace
from engine.workspace.records import Series
from tests.app.test_training_plots import ended, logged, started
from tests.conftest import tiny

SPE = 5  # steps per epoch of the made-up runs


def made_run(name: str, seed: int, epochs: int = 3, task: str = "classification") -> OverlayRun:
    rng = np.random.default_rng(seed)
    n = SPE * epochs
    step = np.arange(1, n + 1)
    steps = {"step": step, "epoch": (step - 1) // SPE + 1, "loss": 1.0 + rng.random(n),
             "lr": np.full(n, 0.01 * (seed + 1)), "grad_norm": rng.random(n) + 0.5,
             "samples_per_s": 100.0 + rng.random(n), "wall_s": 0.25 * step + seed}
    e = np.arange(1, epochs + 1)
    names = (("val_loss", "val_accuracy") if task == "classification"
             else ("val_loss", "val_mse", "val_mae", "val_r2"))
    epoch_metrics = {m: Series(e, e * SPE, rng.random(epochs)) for m in names}
    return OverlayRun(name, steps, epoch_metrics)


@pytest.fixture
def panel(qtbot):
    w = TrainingPlots(dark=False)
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def pen(panel, plot: str, name: str):
    return panel.plots[plot].item(name).opts["pen"]


def test_each_run_gets_its_own_colour_then_a_dash_style_and_a_legend_entry(panel):
    runs = [made_run(f"run-{i}", i) for i in range(9)]
    panel.overlay_runs(runs)
    panel.refresh()
    loss = panel.plots["loss"]
    colours = [pen(panel, "loss", f"overlay{i}:train").color().name() for i in range(9)]
    styles = [pen(panel, "loss", f"overlay{i}:train").style() for i in range(9)]
    assert colours[:7] == [QColor(c).name() for c in PALETTE] and len(set(colours[:7])) == 7
    assert colours[7:] == colours[:2] and styles[:7] == [Qt.PenStyle.SolidLine] * 7
    assert styles[7:] == [Qt.PenStyle.DashLine] * 2  # the 8th and 9th run: same colours, dashed
    assert run_style(14)[1] == Qt.PenStyle.DotLine
    assert [label.text for _, label in loss.legend.items] == [r.name for r in runs]
    assert loss.legend.isVisible() and loss.legend.columnCount > 1  # 9 names: columns
    # one legend for all plots (a run has one colour on each); the read-outs name the curves
    assert panel.plots["accuracy"].legend.items == []
    assert panel.plots["accuracy"].values_at(10)[0][0] == "run-0"
    assert [label for label, _, _ in loss.values_at(10)][:2] == ["run-0", "run-0 val"]


def test_epoch_markers_on_short_runs_only(panel):
    panel.overlay_runs([made_run("short", 0, epochs=3), made_run("long", 1, epochs=40)])
    loss = panel.plots["loss"]
    assert loss.item("overlay0:val_loss").opts["symbol"] == "o"
    assert loss.item("overlay1:val_loss").opts["symbol"] is None  # a smear, and slow to pan


def test_overlaid_curves_follow_every_x_axis(panel):
    runs = [made_run("a", 0), made_run("b", 1, epochs=2)]
    panel.overlay_runs(runs)
    plot = panel.plots["loss"]
    panel.set_x_axis("step")
    x, y = plot.curve_data("overlay1:train")
    np.testing.assert_array_equal(x, np.arange(1, 2 * SPE + 1))
    panel.set_x_axis("epoch")
    x, _ = plot.curve_data("overlay0:train")
    np.testing.assert_allclose(x[:SPE], np.arange(1, SPE + 1) / SPE)  # epoch 1 spans (0, 1]
    assert x[-1] == 3.0
    np.testing.assert_array_equal(plot.curve_data("overlay0:val_loss")[0], [1, 2, 3])
    panel.set_x_axis("wall")
    x, _ = plot.curve_data("overlay1:train")
    np.testing.assert_allclose(x, 0.25 * np.arange(1, 2 * SPE + 1) + 1)
    panel.refresh()
    assert len(plot.drawn_data("overlay1:train")[0]) == 2 * SPE


def test_the_smoothing_slider_smooths_the_overlaid_train_losses(panel):
    runs = [made_run("a", 0), made_run("b", 1)]
    panel.set_smoothing(0.0)
    panel.overlay_runs(runs)
    plot = panel.plots["loss"]
    np.testing.assert_array_equal(plot.curve_data("overlay1:train")[1], runs[1].steps["loss"])
    for value in range(50, 81, 10):  # a dragged slider
        panel.smooth_slider.setValue(value)
    panel.refresh()  # smoothed at the draw
    for i, run in enumerate(runs):
        np.testing.assert_allclose(plot.curve_data(f"overlay{i}:train")[1],
                                   smooth(run.steps["loss"], 0.8)[0])
    np.testing.assert_allclose(plot.drawn_data("overlay0:train")[1],
                               smooth(runs[0].steps["loss"], 0.8)[0])
    assert not plot.item("train_loss_ema").isVisible()  # the live run's curves stay hidden


def test_regression_runs_get_the_regression_plots(panel):
    panel.overlay_runs([made_run("r1", 0, task="regression"), made_run("r2", 1,
                                                                         task="regression")])
    assert panel.plots["r2"].isVisibleTo(panel) and not panel.plots["accuracy"].isVisibleTo(panel)
    assert "overlay1:val_r2" in panel.plots["r2"].curve_names()
    panel.clear_overlay()
    assert panel.plots["accuracy"].isVisibleTo(panel)  # back to the (classification) default


def test_a_live_run_shows_whole_again_when_the_overlay_is_cleared(panel):
    panel.on_run_started(started(epochs=3))
    for step in range(1, 5):
        panel.on_metrics(logged(step))
    panel.refresh()
    panel.overlay_runs([made_run("a", 0), made_run("b", 1)])
    for step in range(5, 9):  # the run goes on under the overlay
        panel.on_metrics(logged(step))
    panel.on_epoch(ended(1))
    panel.refresh()
    loss = panel.plots["loss"]
    assert not loss.item("train_loss").isVisible() and loss.item("overlay0:train").isVisible()
    assert len(loss.drawn_data("train_loss")[0]) == 4  # not redrawn while hidden
    assert panel.close_overlay.isVisibleTo(panel)
    panel.close_overlay.click()  # the user leaves the comparison
    panel.refresh()
    assert loss.item("train_loss").isVisible() and loss.item("train_loss_ema").isVisible()
    assert not [n for n in loss.curve_names() if n.startswith("overlay")]
    assert [label.text for _, label in loss.legend.items][:2] == ["train", "smoothed"]
    np.testing.assert_array_equal(loss.drawn_data("train_loss")[0], np.arange(1, 9))
    assert panel.caption_row.isHidden()


def test_a_new_run_replaces_the_overlay(panel):
    panel.overlay_runs([made_run("a", 0)], caption="<b>group</b>")
    assert panel.caption.isVisible() and "group" in panel.caption.text()
    panel.on_run_started(started())
    assert not panel.overlay.active and panel.caption_row.isHidden()
    assert panel.plots["loss"].item("train_loss").isVisible()


def test_load_overlay_reads_the_runs_from_the_workspace(tmp_path):
    with Workspace(tmp_path / "ws") as ws:
        ids = []
        for name, loss in (("first", 0.5), ("second", 0.25)):
            run = ws.create_run(tiny(), name)
            ws.add_step_metrics(run.id, [(s, 1, loss, 0.1, 1.0, 10.0, 0.1 * s)
                                         for s in (1, 2, 3)])
            ws.add_epoch_metrics(run.id, 1, 3, {"val_loss": loss, "val_accuracy": 0.9})
            ids.append(run.id)
        runs = load_overlay(ws, ids[::-1])
    assert [r.name for r in runs] == [f"{ids[1]} second", f"{ids[0]} first"]
    np.testing.assert_array_equal(runs[0].steps["loss"], [0.25] * 3)
    assert runs[1].epochs["val_accuracy"].value.tolist() == [0.9]

"""A cross-validation group in the window: opening a fold, or the end of a group trained
from the window, overlays the folds' curves with each metric's mean ± std above them."""

from __future__ import annotations

import numpy as np
import pytest

from app.panels.crossval_view import summary_html
from engine.cli import main
from engine.crossval import summarize
from engine.workspace import Workspace
from tests.conftest import tiny


@pytest.fixture(scope="module")
def cv_ws(tmp_path_factory):
    """A workspace with a 3-fold group (runs 1-3) and a plain run (4)."""
    folder = tmp_path_factory.mktemp("cv-app")
    config = folder / "cv.toml"
    tiny(**{"train.cv_folds": 3}).save(config)
    assert main(["run", str(config), "--workspace", str(folder / "ws")]) == 0
    tiny().save(folder / "one.toml")
    assert main(["run", str(folder / "one.toml"), "--workspace", str(folder / "ws")]) == 0
    return folder / "ws"


def legend(window, plot="loss") -> list[str]:
    return [label.text for _, label in window.plots.plots[plot].legend.items]


def test_opening_a_fold_overlays_every_fold_with_the_group_summary(make_window, cv_ws):
    window = make_window(tiny(), workspace=cv_ws)
    assert window.open_run(2)
    plots = window.plots
    assert plots.overlay.names == ["fold 1", "fold 2", "fold 3"]
    assert legend(window) == ["fold 1", "fold 2", "fold 3"]
    with Workspace(cv_ws) as ws:
        summary = summarize(ws, "cv-0001")
        steps = ws.step_metrics(3)
    assert summary["completed"] == 3 and "val_accuracy" in summary["metrics"]
    text = plots.caption.text()
    assert plots.caption.isVisible() and "3 of 3 folds completed" in text
    for name, m in summary["metrics"].items():  # the numbers `torchwork runs` prints
        assert f"{m['mean']:.4g} ± {m['std']:.2g}" in text, name
    for fold in summary["folds"]:
        assert f"{fold['metrics']['val_accuracy']:.4g}" in text
    plots.set_x_axis("step")
    np.testing.assert_array_equal(plots.plots["loss"].curve_data("overlay2:train")[0],
                                  steps["step"])  # "fold 3" holds run 3's curves
    assert len(plots.plots["accuracy"].curve_data("overlay0:val_accuracy")[0]) == 3


def test_opening_a_run_of_no_group_shows_that_run_alone(make_window, cv_ws):
    window = make_window(tiny(), workspace=cv_ws)
    assert window.open_run(2) and window.plots.overlay.active
    assert window.open_run(4)
    assert not window.plots.overlay.active and window.plots.caption_row.isHidden()
    assert window.plots.plots["loss"].item("train_loss").isVisible()
    assert len(window.plots.curve_data("train_loss")[0]) > 0


def test_the_summary_names_folds_that_did_not_complete():
    summary = {"group": "cv-0007", "k": 3, "completed": 2, "best": None,
               "metrics": {"val_accuracy": {"mean": 0.9, "std": 0.05, "folds": 2}},
               "folds": [{"fold": f, "status": s, "metrics": m, "run_id": f, "name": "x",
                          "best_val": None, "best_metric": None}
                         for f, s, m in ((1, "completed", {"val_accuracy": 0.85}),
                                         (2, "completed", {"val_accuracy": 0.95}),
                                         (3, "stopped", {}))]}
    text = summary_html(summary)
    assert "2 of 3 folds completed (fold 3 stopped)" in text
    assert "0.9 ± 0.05" in text and "0.85" in text and "–" in text


@pytest.mark.slow
def test_a_group_trained_from_the_window_ends_with_its_folds_overlaid(qtbot, make_window,
                                                                      tmp_path):
    window = make_window(tiny(**{"train.cv_folds": 3, "train.epochs": 2}))
    created = []
    window.bridge.runCreated.connect(created.append)
    window.act_start.trigger()
    qtbot.waitUntil(lambda: window.plots.overlay.active, timeout=120000)
    assert window.bridge.state == "idle"
    assert [info.name for info in created] == [f"moons-mlp-fold{i}of3" for i in (1, 2, 3)]
    with Workspace(tmp_path / "ws") as ws:
        runs = ws.list_runs()
        summary = summarize(ws, runs[0].run_group)
    assert len(runs) == 3 and {r.run_group for r in runs} == {"cv-0001"}
    assert [r.status for r in runs] == ["completed"] * 3
    assert [r.config.train.cv_fold for r in sorted(runs, key=lambda r: r.id)] == [1, 2, 3]
    assert window.plots.overlay.names == ["fold 1", "fold 2", "fold 3"]
    m = summary["metrics"]["val_accuracy"]
    assert f"{m['mean']:.4g} ± {m['std']:.2g}" in window.plots.caption.text()

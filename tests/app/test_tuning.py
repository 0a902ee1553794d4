"""The configuration form's tuning aids: memory forecast, Find LR…, Find batch size…."""

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from app.panels.config_panel import ConfigPanel
from app.panels.tune_dialog import TuneDialog
from tests.conftest import tiny

SWEEP = {"suggested_lr": 0.01234, "rule": "middle of the longest descent (valley)",
         "reason": "The longest descent runs from 1e-4 to 0.5", "min_loss_lr": 0.05,
         "stopped": "end", "lrs": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1], "losses": [2, 2, 1.5, 0.8, 3],
         "smoothed": [2, 1.9, 1.5, 0.9, 2]}


@pytest.fixture
def panel(qtbot):
    widget = ConfigPanel(tiny())
    qtbot.addWidget(widget)
    widget.resize(460, 800)
    widget.show()
    return widget


def forecast_text(panel) -> str:
    return panel.tuning.label.text()


@pytest.mark.slow
def test_forecast_shows_under_the_form_and_follows_edits(panel, qtbot):
    qtbot.waitUntil(lambda: "peak per step at batch 32" in forecast_text(panel), timeout=60000)
    assert "Largest batch" in forecast_text(panel)
    assert "Parameter" in panel.tuning.label.toolTip()
    panel.set_value("data.batch_size", 128)
    qtbot.waitUntil(lambda: "at batch 128" in forecast_text(panel), timeout=60000)


def test_no_forecast_while_the_form_has_problems(panel, qtbot):
    panel.set_value("optim.lr", -1.0)
    qtbot.waitUntil(lambda: "after the problems" in forecast_text(panel), timeout=5000)
    assert panel.tuning.forecaster.is_idle()  # no process was started for it


def test_closing_ends_a_forecast_under_way(panel, qtbot):
    """The window's close calls shutdown: no forecast process outlives the window."""
    from PySide6.QtCore import QProcess

    forecaster = panel.tuning.forecaster
    forecaster._timer.setInterval(0)
    panel.set_value("data.batch_size", 64)
    qtbot.waitUntil(lambda: forecaster.process.state() != QProcess.ProcessState.NotRunning,
                    timeout=5000)
    shown = forecast_text(panel)
    panel.tuning.shutdown()
    assert forecaster.process.state() == QProcess.ProcessState.NotRunning
    qtbot.wait(200)
    assert forecast_text(panel) == shown  # the killed forecast reports nothing


def test_finder_buttons_sit_beside_their_fields(panel):
    for key, text in (("optim.lr", "Find LR…"), ("data.batch_size", "Find batch size…")):
        buttons = panel.editor(key).findChildren(QPushButton)
        assert [b.text() for b in buttons] == [text]
    panel.set_read_only(True)
    assert not panel.editor("optim.lr").findChildren(QPushButton)[0].isEnabled()


def test_find_lr_shows_the_suggestion_and_apply_sets_the_field(panel, qtbot, monkeypatch):
    monkeypatch.setattr(TuneDialog, "start", lambda self: None)
    qtbot.mouseClick(panel.tuning.buttons["optim.lr"], Qt.MouseButton.LeftButton)
    dialog = panel.tuning.dialog
    assert dialog is not None and dialog.isVisible()
    assert not dialog.apply_button.isEnabled()  # nothing to apply before the result
    dialog.show_result(SWEEP)
    assert "0.0123" in dialog.status.text() and "longest descent" in dialog.reason.text()
    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    assert panel.config().optim.lr == pytest.approx(0.0123)
    assert panel.is_modified()


def test_a_form_with_problems_starts_no_finder(panel, qtbot):
    panel.set_value("optim.lr", -1.0)
    qtbot.mouseClick(panel.tuning.buttons["optim.lr"], Qt.MouseButton.LeftButton)
    assert panel.tuning.dialog is None


def test_batch_size_result_draws_throughput_and_applies_the_knee(qtbot):
    dialog = TuneDialog("batch-size", tiny())
    qtbot.addWidget(dialog)
    applied = []
    dialog.applied.connect(lambda key, value: applied.append((key, value)))
    dialog.show_result({"suggested": 64, "largest_fitting": 256, "stopped": "data",
                        "reason": "Batch 64 reaches 93% of the best",
                        "trials": [{"batch_size": b, "samples_per_s": s, "peak_bytes": None}
                                   for b, s in ((16, 100.0), (32, 180.0), (64, 380.0),
                                                (128, 400.0), (256, 410.0))]})
    assert dialog.status.text() == "Suggested batch size: 64"
    dialog.apply_button.click()
    assert applied == [("data.batch_size", 64)]


@pytest.mark.slow
def test_the_tuner_runs_in_its_own_process_and_errors_are_one_line(qtbot):
    dialog = TuneDialog("lr", tiny())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.start()
    qtbot.waitUntil(lambda: dialog.apply_button.isEnabled(), timeout=120000)
    assert dialog.result["suggested_lr"] > 0 and len(dialog.result["lrs"]) > 100
    broken = TuneDialog("lr", tiny(**{"optim.name": "lbfgs", "optim.weight_decay": 0.0}))
    qtbot.addWidget(broken)
    broken.show()
    broken.start()
    qtbot.waitUntil(lambda: "lbfgs" in broken.reason.text(), timeout=120000)
    assert "\n" not in broken.reason.text() and not broken.apply_button.isEnabled()
    broken.reject()

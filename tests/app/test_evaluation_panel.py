"""The Evaluation dock: a run's stored report (matrix, curves, per-class table, calibration,
regression plots), a confusion-matrix cell's samples on click, Evaluate on demand, themes."""

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QSettings, Qt

from app.main_window import MainWindow
from app.panels.evaluation_panel import EvaluationPanel
from engine.cli import main
from engine.evaluation import load_report
from engine.workspace import Workspace
from tests.conftest import tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs 1 (digits, a small CNN: images with ten classes) and 2 (diabetes regression)."""
    folder = tmp_path_factory.mktemp("evaluation-app") / "ws"
    digits = folder.parent / "digits.toml"
    tiny(**{"data.dataset": "digits", "model.arch": "cnn", "model.channels": [8],
            "model.hidden": [32], "train.epochs": 2}).save(digits)
    diabetes = folder.parent / "diabetes.toml"
    tiny(**{"data.dataset": "diabetes", "train.epochs": 2}).save(diabetes)
    for config in (digits, diabetes):
        assert main(["run", str(config), "--workspace", str(folder)]) == 0
    return folder


def run(folder, run_id):
    with Workspace(folder) as ws:
        return ws.get_run(run_id)


@pytest.fixture
def panel(qtbot, trained):
    widget = EvaluationPanel(trained)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.wait()


def test_shows_the_runs_stored_report(panel, trained):
    r = run(trained, 1)
    panel.set_run(r.id, r.dir, r.name)
    report = load_report(r.dir)
    matrix = np.array(report["metrics"]["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert (panel.matrix.matrix == matrix).all()
    # each cell reads its count and its share of the true class (the row)
    assert panel.matrix.cell_text(3, 3) == f"{matrix[3, 3]}\n{matrix[3, 3] / matrix[3].sum():.0%}"
    assert len(panel.matrix.texts) == 100
    assert f"accuracy {report['metrics']['accuracy']:.3f}" in panel.headline.text()
    assert "Run 1" in panel.title.text() and "360 samples" in panel.title.text()
    per_class = [panel.per_class.item(i, 0).text() for i in range(panel.per_class.rowCount())]
    assert per_class == [str(d) for d in range(10)] + ["macro avg", "weighted avg"]
    assert panel.per_class.item(10, 3).text() == f"{report['metrics']['macro_f1']:.3f}"
    assert len(panel.roc.getPlotItem().listDataItems()) == 1 + 10  # the diagonal + a class each
    assert len(panel.pr.getPlotItem().listDataItems()) == 10
    assert "ECE" in panel.calibration.getPlotItem().titleLabel.text
    visible = [panel.tabs.tabText(i) for i in range(panel.tabs.count())
               if panel.tabs.isTabVisible(i)]
    assert visible == ["Confusion matrix", "ROC / PR", "Per class", "Calibration"]


def test_clicking_a_cell_lists_its_samples_with_thumbnails(panel, trained, qtbot):
    r = run(trained, 1)
    panel.set_run(r.id, r.dir, r.name)
    s = load_report(r.dir)["samples"]
    true, pred = np.array(s["true"]), np.array(s["pred"])
    # the busiest mistaken cell, or a diagonal one when the model made no mistake
    off = [(int(t), int(p)) for t, p in zip(true, pred) if t != p]
    cell = max(set(off), key=off.count) if off else (2, 2)
    view = panel.matrix.getViewBox()
    scene = view.mapViewToScene(QPointF(cell[1] + 0.5, cell[0] + 0.5))
    qtbot.mouseClick(panel.matrix.viewport(), Qt.LeftButton,
                     pos=panel.matrix.mapFromScene(scene))
    expected = np.flatnonzero((true == cell[0]) & (pred == cell[1]))
    assert panel.cell == cell
    rows = panel.samples.rowCount()
    assert rows == len(expected) > 0
    listed = sorted(int(panel.samples.item(i, 0).text()) for i in range(rows))
    assert listed == sorted(np.array(s["index"])[expected].tolist())
    for i in range(rows):
        assert panel.samples.item(i, 1).text() == str(cell[0])
        assert panel.samples.item(i, 2).text() == str(cell[1])
        assert 0.0 <= float(panel.samples.item(i, 3).text()) <= 1.0
        assert not panel.samples.item(i, 0).icon().isNull()  # the digit's 8x8 image
    assert f"True {cell[0]}, predicted {cell[1]}: {rows}" in panel.cell_label.text()


def test_a_regression_run_shows_residuals_and_predicted_vs_true(panel, trained):
    r = run(trained, 2)
    panel.set_run(r.id, r.dir, r.name)
    report = load_report(r.dir)
    visible = [panel.tabs.tabText(i) for i in range(panel.tabs.count())
               if panel.tabs.isTabVisible(i)]
    assert visible == ["Residuals", "Predicted vs true"]
    points = panel.scatter.getPlotItem().listDataItems()[-1].getData()
    assert points[0] == pytest.approx(report["samples"]["true"])
    assert points[1] == pytest.approx(report["samples"]["pred"])
    assert "RMSE" in panel.headline.text()


@pytest.mark.slow  # Evaluate starts a process that loads torch: seconds
def test_no_report_and_no_test_split_are_said_plainly(panel, trained, qtbot):
    r = run(trained, 1)
    panel.set_run(r.id, r.dir, r.name)
    panel.set_split("test")
    assert "no test split report yet" in panel.title.text()
    assert panel.report is None and panel.matrix.texts == []
    panel.evaluate()
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)
    assert "this run has no test split" in panel.messages.message()
    assert panel.evaluate_button.isEnabled()


@pytest.mark.slow
def test_evaluate_makes_the_report_in_its_own_process(panel, trained, qtbot):
    r = run(trained, 2)
    (r.dir / "evaluation" / "val.json").unlink()
    panel.set_run(r.id, r.dir, r.name)
    assert panel.report is None and "press Evaluate" in panel.title.text()
    with qtbot.waitSignal(panel.reportShown, timeout=60_000):
        panel.evaluate_button.click()
        assert panel.evaluate_button.text() == "Evaluating…"
    assert panel.report["metrics"] == load_report(r.dir)["metrics"]
    assert "Run 2 evaluated on its validation split" in panel.messages.message()


def test_the_window_shows_a_runs_report_after_a_theme_switch(qtbot, trained, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(tiny(), workspace_dir=trained, settings=settings)
    qtbot.addWidget(window)
    window.show()
    assert window.open_run(1)
    panel = window.evaluation
    assert window.evaluation_dock.widget() is panel and panel.run_id == 1
    panel.select_cell(0, 0)
    listed = panel.samples.rowCount()
    window.set_theme("dark")
    assert panel.dark and panel.matrix.dark
    assert panel.cell == (0, 0) and panel.samples.rowCount() == listed
    assert panel.roc.backgroundBrush().color().name() == "#1e1f22"
    window.set_theme("light")
    assert panel.roc.backgroundBrush().color().name() == "#ffffff"


def test_a_damaged_report_is_a_message_not_a_crash(qtbot, tmp_path):
    widget = EvaluationPanel(tmp_path)
    qtbot.addWidget(widget)
    widget.show()
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "val.json").write_text("{half a report")
    widget.set_run(5, tmp_path, "broken")
    assert "evaluate the run again" in widget.messages.message()
    assert widget.report is None and "press Evaluate" in widget.title.text()

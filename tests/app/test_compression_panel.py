"""The Compression panel: a tiny compression in its worker fills the table and the sweep chart;
fine-tuning and distillation train as ordinary workspace runs (through the window's bridge,
drawn in the training plots); a picked candidate exports; bad input shows a message."""

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QMenu

from app.bridge import IDLE
from app.main_window import MainWindow
from app.panels.compression_panel import CompressionPanel
from engine.cli import main
from engine.workspace import Workspace


@pytest.fixture
def trained_workspace(tiny_config, tmp_path, capsys):
    path = tmp_path / "run.toml"
    tiny_config(**{"model.hidden": [32, 32]}).save(path)
    folder = tmp_path / "ws"
    assert main(["run", str(path), "--json", "--workspace", str(folder)]) == 0
    capsys.readouterr()
    return folder


def test_sweep_fills_table_and_chart_and_a_picked_point_exports(qtbot, trained_workspace,
                                                                tmp_path, monkeypatch):
    panel = CompressionPanel(trained_workspace)
    qtbot.addWidget(panel)
    assert panel.run_box.count() == 1 and panel.run_button.isEnabled()
    panel.method.setCurrentText("global")
    panel.sweep.setText("0.3, 0.6")
    panel.quantize.setCurrentText("none")
    panel.epochs.setValue(1)
    with qtbot.waitSignal(panel.selectionChanged, timeout=120000):
        panel.start()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=120000)
    names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    assert names == ["original", "global 30% + ft 1 ep", "global 60% + ft 1 ep"]
    nonzero = [int(panel.table.item(r, 3).text().replace(",", "")) for r in range(3)]
    assert nonzero[0] > nonzero[1] > nonzero[2]
    with Workspace(trained_workspace) as ws:  # one fine-tuning run per ratio, listed
        runs = {r.name: r for r in ws.list_runs()}
    for name in names[1:]:
        run = next(r for n, r in runs.items() if n.endswith(name))
        assert run.status == "completed" and run.config.model.init.endswith(".safetensors")
    xs, ys = panel.chart.points["size"].getData()
    assert len(xs) == 3 and len(ys) == 3
    front_x, _ = panel.chart.fronts["size"].getData()
    assert len(front_x) >= 1
    with qtbot.waitSignal(panel.selectionChanged, timeout=5000) as picked:
        panel.chart.pointClicked.emit(names[2])
    assert picked.args == [True] and panel.selected == names[2]
    assert panel.table.selectionModel().selectedRows()[0].row() == 2
    chosen = (str(tmp_path / "picked"), "safetensors (*.safetensors)")  # no suffix typed
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: chosen)
    with qtbot.waitSignal(panel.messages.log.posted, timeout=60000) as told:
        panel.export_dialog()
    assert told.args[0].level == "info", told.args[0].text
    assert (tmp_path / "picked.safetensors").is_file()


def test_bad_sweep_text_shows_a_message(qtbot, trained_workspace):
    panel = CompressionPanel(trained_workspace)
    qtbot.addWidget(panel)
    panel.sweep.setText("0.5, half")
    with qtbot.waitSignal(panel.message, timeout=2000) as told:
        panel.start()
    assert told.args[1] == "error" and "sweep ratios must be numbers" in told.args[0]
    assert panel._job is None


def test_window_has_the_dock_and_the_export_action(qtbot, trained_workspace, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=trained_workspace, settings=settings)
    qtbot.addWidget(window)
    menus = {m.title(): m for m in window.menuBar().findChildren(QMenu)}
    assert window.compression_dock.toggleViewAction() in menus["&View"].actions()
    assert window.act_export_compressed in menus["&File"].actions()
    assert not window.act_export_compressed.isEnabled()
    window.compression.selectionChanged.emit(True)
    assert window.act_export_compressed.isEnabled()
    with qtbot.waitSignal(window.compression.message, timeout=2000):
        window.compression.export_dialog()  # nothing picked yet: says what to do
    assert "pick a candidate" in window.compression.messages.text.text()  # in its own dock


def test_fine_tuning_in_the_window_is_a_run_of_the_bridge(qtbot, trained_workspace, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=trained_workspace, settings=settings)
    qtbot.addWidget(window)
    panel = window.compression
    panel.method.setCurrentText("structured")
    panel.quantize.setCurrentText("none")
    panel.epochs.setValue(2)
    created = []
    window.bridge.runCreated.connect(created.append)
    panel.start()
    qtbot.waitUntil(panel.run_button.isEnabled, timeout=120000)  # done or failed
    assert panel.result is not None, window.compression.messages.text.text()
    assert [c.name for c in panel.result.candidates] == ["original",
                                                         "structured 50% + ft 2 ep"]
    assert [info.run_id for info in created] == [2]  # trained by the run process
    assert len(window.plots.curve_data("val_accuracy")[1]) == 2  # its curves were drawn
    assert "run 2" in window.windowTitle()
    with Workspace(trained_workspace) as ws:
        run = ws.get_run(2)
    assert run.status == "completed" and run.epochs_completed == 2
    assert panel.result.get("structured 50% + ft 2 ep").params < \
        panel.result.get("original").params


def test_distil_into_the_configured_model_starts_a_student_run(qtbot, trained_workspace,
                                                               tmp_path, tiny_config):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=trained_workspace, settings=settings)
    qtbot.addWidget(window)
    window.config_panel.set_config(tiny_config(**{"model.hidden": [4]}))
    panel = window.compression
    assert not panel.student_button.isEnabled()  # no teacher picked
    panel.teacher_box.setCurrentIndex(panel.teacher_box.findData(1))
    panel.alpha.setValue(0.5)
    assert panel.student_button.isEnabled()
    with qtbot.waitSignal(window.bridge.runEnded, timeout=60000) as ended:
        panel.student_button.click()
    assert ended.args[0].status == "completed"
    qtbot.waitUntil(lambda: window.bridge.state == IDLE, timeout=10000)
    with Workspace(trained_workspace) as ws:
        student = ws.get_run(2).config
    assert (student.distill.teacher, student.distill.alpha) == ("1", 0.5)
    assert student.model.hidden == [4]
    assert window.config_panel.config().distill.teacher == "1"  # the form shows what ran


@pytest.mark.slow
def test_a_fine_tuning_run_stopped_in_the_window_ends_the_compression_stopped(
        qtbot, trained_workspace, tmp_path):
    """The dock and the status bar keep the outcome: stopped, where, and how to go on."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=trained_workspace, settings=settings)
    qtbot.addWidget(window)
    panel = window.compression
    panel.quantize.setCurrentText("none")
    panel.epochs.setValue(1000)
    with qtbot.waitSignal(window.bridge.metricsLogged, timeout=60000):
        panel.start()
    with qtbot.waitSignal(window.bridge.runEnded, timeout=30000) as ended:
        window.act_stop.trigger()
    qtbot.waitUntil(panel.run_button.isEnabled, timeout=30000)
    steps = ended.args[0].steps
    assert panel.status.text().startswith(f"Compression of run 1 stopped: fine-tuning run 2 "
                                          f"was stopped at step {steps} before its last epoch")
    assert "torchwork resume 2" in panel.status.text()
    assert window.status.state.text().startswith(f"Stopped at step {steps} ")
    assert "stopped at step" in window.messages.text.text()


def test_closing_the_window_during_a_fine_tuning_run_stops_it(qtbot, trained_workspace,
                                                              tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    window = MainWindow(workspace_dir=trained_workspace, settings=settings)
    qtbot.addWidget(window)
    panel = window.compression
    panel.quantize.setCurrentText("none")
    panel.epochs.setValue(1000)
    with qtbot.waitSignal(window.bridge.metricsLogged, timeout=60000):
        panel.start()
    window.confirm = lambda title, text: True
    window.close()
    assert not window.bridge.busy and panel._job.isFinished()  # nothing outlives the window
    with Workspace(trained_workspace) as ws:
        run = ws.get_run(2)
    assert run.status == "stopped" and run.checkpoint  # resumable like any run


def crowded_sweep() -> list:
    """Eight pruning ratios, each with its int8 ONNX copy: a front of nine close points."""
    from engine.compression.measure import Candidate

    rows = [Candidate("original", "torch", 1, 1, 40000, 1, 0.5, 5.0, "val_accuracy", 0.97),
            Candidate("original int8 (onnx)", "onnxruntime", 1, 1, 12000, 1, 0.3, 3.0,
                      "val_accuracy", 0.968)]
    for r in (0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.75):
        rows += [Candidate(f"structured {r:.0%}", "torch", 1, 1, 40000 * (1 - r), 1, 0.4,
                           5 * (1 - 0.8 * r), "val_accuracy", 0.97 - 0.08 * r, r),
                 Candidate(f"structured {r:.0%} int8 linear (onnx)", "onnxruntime", 1, 1,
                           12000 * (1 - r), 1, 0.4, 3 * (1 - 0.8 * r), "val_accuracy",
                           0.969 - 0.08 * r, r)]
    return rows


@pytest.mark.parametrize(("size", "named"), [((1000, 420), 4), ((640, 300), 2)])
def test_sweep_chart_labels_do_not_overlap_each_other_or_the_points(qtbot, size, named):
    from PySide6.QtCore import QPointF

    from app.panels.compression_panel import SweepChart

    chart = SweepChart()
    qtbot.addWidget(chart)
    chart.resize(1000, 420)
    chart.show()
    qtbot.waitExposed(chart)
    chart.set_candidates(crowded_sweep())
    chart.resize(*size)  # the labels are laid out again for the new scale
    qtbot.wait(50)
    for key, plot in chart.plots.items():
        view = plot.getViewBox()
        shown = [label.sceneBoundingRect() for label in chart.labels[key] if label.isVisible()]
        assert len(shown) >= named, key  # the front's points are named where room allows
        for i, a in enumerate(shown):
            assert view.sceneBoundingRect().contains(a), key
            for b in shown[i + 1:]:
                assert not a.intersects(b), (key, a, b)
        xs, ys = chart.points[key].getData()
        for x, y in zip(xs, ys, strict=True):
            centre = view.mapViewToScene(QPointF(x, y))
            assert not any(r.contains(centre) for r in shown), (key, x, y)


def test_hovering_any_sweep_point_names_its_candidate(qtbot):
    """Labels name only the front, where room allows: the tooltip names every point."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from app.panels.compression_panel import SweepChart

    chart = SweepChart()
    qtbot.addWidget(chart)
    chart.resize(640, 300)
    chart.show()
    qtbot.waitExposed(chart)
    rows = crowded_sweep()
    chart.set_candidates(rows)
    plot = chart.plots["size"]
    view, scatter = plot.getViewBox(), chart.points["size"].scatter
    qtbot.waitUntil(lambda: view.viewRect().contains(QPointF(*scatter.points()[0].pos())))

    def hover(spot) -> bool:
        """A mouse move onto ``spot`` as the window system delivers it; True once the
        scene took it (pyqtgraph drops moves that come faster than its rate limit).
        Mapped afresh each time: the view's range may still settle on a busy machine."""
        centre = view.mapViewToScene(QPointF(spot.pos().x(), spot.pos().y()))
        pos = plot.mapFromScene(centre)
        QApplication.sendEvent(plot.viewport(), QMouseEvent(
            QEvent.MouseMove, QPointF(pos), QPointF(plot.viewport().mapToGlobal(pos)),
            Qt.NoButton, Qt.NoButton, Qt.NoModifier))
        return spot.data() in view.toolTip()

    assert len(scatter.points()) == len(rows)
    for spot in scatter.points():  # labelled or not: the label is a short form
        qtbot.waitUntil(lambda spot=spot: hover(spot), timeout=10000)
        assert "KiB" in view.toolTip() and "ms at batch 64" in view.toolTip()

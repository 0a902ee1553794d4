"""The Compression panel: a tiny compression in its worker fills the table and the sweep chart;
a picked candidate exports; bad input shows a message; the window offers the dock and action."""

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QMenu

from app.main_window import MainWindow
from app.panels.compression_panel import CompressionPanel
from engine.cli import main
from engine.training import events as ev


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
    events = []
    panel.trainingEvent.connect(events.append)
    with qtbot.waitSignal(panel.selectionChanged, timeout=120000):
        panel.start()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=120000)
    names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    assert names == ["original", "global 30% + ft 1 ep", "global 60% + ft 1 ep"]
    nonzero = [int(panel.table.item(r, 3).text().replace(",", "")) for r in range(3)]
    assert nonzero[0] > nonzero[1] > nonzero[2]
    kinds = [type(e) for e in events]
    assert kinds.count(ev.RunStarted) == 2 and kinds.count(ev.RunEnded) == 2  # one per ratio
    assert ev.EpochEnded in kinds and ev.MetricsLogged in kinds
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
    with qtbot.waitSignal(panel.message, timeout=60000) as told:
        panel.export_dialog()
    assert told.args[1] == "info", told.args[0]
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
    window.compression.trainingEvent.emit(ev.RunStarted(None, 100, "cpu", "classification", 1, 5,
                                                        5, 0, 1, ("val_loss", "val_accuracy")))
    window.compression.trainingEvent.emit(ev.EpochEnded(1, 5, 0.5, 0.01, 1.0,
                                                        {"val_loss": 0.4, "val_accuracy": 0.9}))
    assert list(window.plots.curve_data("val_accuracy")[1]) == [90.0]  # fine-tuning is drawn
    with qtbot.waitSignal(window.compression.message, timeout=2000):
        window.compression.export_dialog()  # nothing picked yet: says what to do
    assert "pick a candidate" in window.messages.text.text()

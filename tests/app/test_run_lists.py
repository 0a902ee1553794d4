"""Profile captures are kept in the workspace but not offered as trained runs: Open run and
Resume list them only on request, Export and Compression not at all."""

import pytest
from PySide6.QtCore import QSettings

from app.dialogs import RunPicker
from app.main_window import MainWindow
from app.panels.export_dialog import exportable_runs
from engine.workspace import Workspace


@pytest.fixture
def workspace(tmp_path, tiny_config):
    """A trained run and a profile capture, each with a checkpoint and status completed."""
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        for name, kind in (("moons-mlp", "train"), ("profile-moons-mlp", "profile")):
            run = ws.create_run(tiny_config(), name, kind=kind)
            (run.dir / "checkpoints" / "last.pt").write_bytes(b"checkpoint")
            ws.finish_run(run.id, "completed")
    return folder


def names(picker: RunPicker) -> list[str]:
    return [picker.table.item(r, 1).text() for r in range(picker.table.rowCount())]


def test_open_run_lists_profile_captures_only_when_asked_and_marks_them(qtbot, workspace):
    with Workspace(workspace) as ws:
        picker = RunPicker(ws.list_runs(), "Open run", "Open")
    qtbot.addWidget(picker)
    assert names(picker) == ["moons-mlp"]
    assert picker.show_captures.text() == "Show profile captures (1)"
    picker.show_captures.setChecked(True)
    assert names(picker) == ["profile-moons-mlp", "moons-mlp"]
    assert picker.table.item(0, 2).text() == "profile capture"
    assert picker.table.item(1, 2).text() == "training"
    picker.table.selectRow(0)
    picker.accept()
    assert picker.chosen == 2


def test_export_and_compression_offer_trained_runs_only(qtbot, workspace, tmp_path):
    assert [r.name for r in exportable_runs(workspace)] == ["moons-mlp"]
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    window = MainWindow(None, workspace_dir=workspace, settings=settings)
    qtbot.addWidget(window)
    boxes = (window.compression.run_box, window.compression.teacher_box)
    assert [boxes[0].itemData(i) for i in range(boxes[0].count())] == [1]
    assert [boxes[1].itemData(i) for i in range(boxes[1].count())] == [None, 1]

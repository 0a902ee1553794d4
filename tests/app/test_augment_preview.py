"""Run ▸ Preview augmentation…: the grid of augmented training samples in a dialog."""

import pytest
from PySide6.QtCore import QSettings

from app.main_window import MainWindow
from engine.config import RunConfig
from tests.engine.image_folders import make_folder


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHWORK_CACHE", str(tmp_path / "cache"))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(RunConfig(), workspace_dir=tmp_path / "ws", settings=settings)
    qtbot.addWidget(win)
    win.show()
    return win


def image_config(tmp_path, **augment) -> RunConfig:
    root = make_folder(tmp_path / "pets", per_class=12)
    cfg = RunConfig()
    for key, value in {"data.dataset": f"images:{root}", "data.image_size": 12,
                       "model.arch": "cnn", **augment}.items():
        cfg.set(key, value)
    return cfg


def test_preview_shows_a_grid_of_sixteen_samples(qtbot, window, tmp_path):
    window.config_panel.set_config(image_config(tmp_path, **{"augment.enabled": True}))
    assert window.act_preview_augment in window.menuBar().actions()[1].menu().actions()
    window.act_preview_augment.trigger()
    qtbot.waitUntil(lambda: window.augment_preview.dialog is not None, timeout=30000)
    dialog = window.augment_preview.dialog
    assert dialog.isVisible() and dialog.grid.shape == (4 * 14 + 2, 4 * 14 + 2, 3)
    pixmap = dialog.image.pixmap()
    assert pixmap.width() >= 4 * 14 + 2 and pixmap.width() % (4 * 14 + 2) == 0
    first = dialog.grid.copy()
    window.act_preview_augment.trigger()  # a new draw
    qtbot.waitUntil(lambda: window.augment_preview.dialog is not dialog, timeout=30000)
    assert (window.augment_preview.dialog.grid != first).any()


def test_preview_of_table_data_says_why_not(qtbot, window):
    cfg = RunConfig()
    cfg.set("data.dataset", "wine")
    window.config_panel.set_config(cfg)
    window.act_preview_augment.trigger()
    assert window.augment_preview.dialog is None
    assert "is not image data" in window.log.messages[-1].text


def test_a_broken_folder_is_a_message_not_a_crash(qtbot, window, tmp_path):
    cfg = RunConfig()
    cfg.set("data.dataset", f"images:{tmp_path / 'gone'}")
    window.config_panel.set_config(cfg)
    window.act_preview_augment.trigger()
    qtbot.waitUntil(lambda: "not found" in window.log.messages[-1].text, timeout=30000)
    assert window.log.messages[-1].level == "error" and window.augment_preview.dialog is None


def test_opening_a_config_finds_its_image_folder_beside_it(qtbot, window, tmp_path,
                                                           monkeypatch):
    root = make_folder(tmp_path / "project" / "pets", per_class=4)
    path = tmp_path / "project" / "run.toml"
    path.write_text('[data]\ndataset = "images:pets"\n[model]\narch = "cnn"\n')
    monkeypatch.chdir(tmp_path)  # started from another folder
    assert window.open_config(str(path))
    assert window.config_panel.config().data.dataset == f"images:{root.resolve()}"

"""The table options in the form: shown only for table: datasets, column lists as names."""

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.panels.config_panel import ConfigPanel

TABLE_KEYS = ("data.target", "data.features", "data.task", "data.test_path",
              "preprocess.scaling", "preprocess.numeric_impute", "preprocess.drop_columns")


@pytest.fixture
def panel(qtbot):
    widget = ConfigPanel()
    qtbot.addWidget(widget)
    widget.resize(420, 800)
    widget.show()
    return widget


def test_table_options_appear_only_for_a_table(panel, qtbot):
    assert [panel.is_shown(k) for k in TABLE_KEYS] == [False] * len(TABLE_KEYS)
    assert panel.is_shown("data.standardize") and panel.is_shown("data.test_fraction")
    combo = panel.editor("data.dataset").combo
    combo.setEditText("table:penguins.csv")
    assert [panel.is_shown(k) for k in TABLE_KEYS] == [True] * len(TABLE_KEYS)
    assert not panel.is_shown("data.standardize")  # preprocess.scaling says it for tables
    assert not panel.is_shown("preprocess.numeric_fill")
    panel.editor("preprocess.numeric_impute").combo.setCurrentText("constant")
    assert panel.is_shown("preprocess.numeric_fill")


def test_empty_column_lists_suggest_column_names_not_layer_numbers(panel):
    panel.editor("data.dataset").combo.setEditText("table:t.csv")
    for key in ("data.features", "preprocess.drop_columns"):
        example = panel.editor(key).edit.placeholderText()
        assert example.startswith("e.g. ") and not any(ch.isdigit() for ch in example), key
    assert panel.editor("model.freeze").edit.placeholderText() == "e.g. 0, 2"  # layer names


def test_column_lists_take_names_with_spaces(panel, qtbot):
    panel.editor("data.dataset").combo.setEditText("table:t.csv")
    edit = panel.editor("data.features").edit
    edit.selectAll()
    qtbot.keyClick(edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(edit, "bill length, island")
    assert panel.editor("data.features").value() == ["bill length", "island"]


def test_a_table_file_can_be_picked(panel, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    picked = str(Path(tmp_path) / "t.csv")
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (picked, "")))
    panel.editor("data.dataset").browse.click()
    assert panel.editor("data.dataset").value() == f"table:{picked}"


def test_a_config_opened_in_the_window_finds_its_table_beside_it(qtbot, tmp_path,
                                                                  monkeypatch):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "t.csv").write_text("x,label\n1,a\n")
    (folder / "run.toml").write_text('[data]\ndataset = "table:t.csv"\ntarget = "label"\n')
    monkeypatch.chdir(tmp_path)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(None, workspace_dir=tmp_path / "ws", settings=settings)
    qtbot.addWidget(win)
    try:
        assert win.open_config(str(folder / "run.toml"))
        assert win.config_panel.config().data.dataset == f"table:{folder / 't.csv'}"
    finally:
        win.bridge.stop()
        win.bridge.wait()

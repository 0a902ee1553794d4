"""The form shows what applies, marks what the engine refuses, and keeps edits from being lost."""

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QFileDialog, QLineEdit

from app.main_window import MainWindow
from app.panels.config_panel import ConfigPanel
from engine.config import RunConfig
from engine.workspace import Workspace

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def panel(qtbot):
    widget = ConfigPanel()
    qtbot.addWidget(widget)
    widget.resize(420, 800)
    widget.show()
    return widget


def choose(panel, key: str, text: str) -> None:
    combo = panel.editor(key).combo
    combo.setCurrentIndex(combo.findText(text))


def retype(qtbot, line_edit: QLineEdit, text: str) -> None:
    line_edit.selectAll()
    qtbot.keyClick(line_edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(line_edit, text)


def shown(panel, *keys) -> list[bool]:
    return [panel.is_shown(k) for k in keys]


def test_rows_show_only_the_options_that_apply(panel, qtbot):
    # defaults: Adam on digits with an MLP, no teacher, constant rate
    assert shown(panel, "optim.betas", "model.hidden", "optim.lr") == [True, True, True]
    assert shown(panel, "optim.momentum", "optim.nesterov", "data.noise", "data.n_samples",
                 "model.channels", "schedule.gamma", "distill.alpha") == [False] * 7
    assert not panel.editor("optim.momentum").isVisible()
    label = panel._rows["optim.momentum"].labelForField(panel.editor("optim.momentum"))
    assert not label.isVisible()  # the whole row, label included

    choose(panel, "optim.name", "sgd")
    assert shown(panel, "optim.momentum", "optim.nesterov", "optim.betas") == [True, True, False]
    assert panel.editor("optim.momentum").isVisible()
    choose(panel, "data.dataset", "moons")
    assert shown(panel, "data.noise", "data.n_samples", "data.n_features") == [True, True, False]
    choose(panel, "model.arch", "cnn")
    assert shown(panel, "model.channels", "model.hidden") == [True, True]
    choose(panel, "schedule.name", "plateau")
    assert shown(panel, "schedule.gamma", "schedule.patience", "schedule.step_size") == \
        [True, True, False]
    retype(qtbot, panel.editor("distill.teacher").edit, "3")
    assert shown(panel, "distill.alpha", "distill.temperature") == [True, True]


def test_a_value_that_does_not_apply_does_not_block_the_run(panel):
    cfg = RunConfig()
    cfg.data.noise = 50.0  # digits never reads it
    panel.set_config(cfg)
    assert panel.errors() == [] and not panel.is_shown("data.noise")
    choose(panel, "data.dataset", "moons")
    assert panel.is_shown("data.noise")
    assert panel.editor("data.noise").error() == "data.noise must be <= 10.0 (got 50.0)"


def test_a_rule_naming_a_hidden_row_shows_it(panel):
    cfg = RunConfig()
    cfg.data.dataset, cfg.data.n_classes, cfg.data.n_features = "synthetic", 9, 4
    panel.set_config(cfg)
    assert shown(panel, "data.n_classes", "data.n_features") == [True, True]
    assert panel.editor("data.n_classes").has_error()


def test_a_typed_out_of_range_integer_is_marked_not_clamped(panel, qtbot):
    spin = panel.editor("data.batch_size").spin
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "0")
    assert spin.text() == "0" and panel.config().data.batch_size == 0
    message = "data.batch_size must be >= 1 (got 0)"
    assert panel.editor("data.batch_size").error() == message == panel.errors()[0]
    assert panel.editor("data.batch_size")._frame.isVisible()  # a border that keeps the arrows
    qtbot.keyClick(spin, Qt.Key.Key_Up)  # the arrows step back into the range
    assert spin.value() == 1 and panel.errors() == []
    spin.lineEdit().selectAll()
    qtbot.keyClick(spin, Qt.Key.Key_Delete)
    assert panel.errors() == ["data.batch_size must be an integer (got '')"]


def test_missing_files_are_marked_before_start(panel, qtbot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    retype(qtbot, panel.editor("model.arch").combo.lineEdit(), "custom:net.py")
    retype(qtbot, panel.editor("model.init").edit, "w.safetensors")
    retype(qtbot, panel.editor("distill.teacher").edit, "teacher.safetensors")
    for key, name in (("model.arch", "net.py"), ("model.init", "w.safetensors"),
                      ("distill.teacher", "teacher.safetensors")):
        assert f"{tmp_path / name} not found" in panel.editor(key).error(), key
    for name in ("net.py", "w.safetensors", "teacher.safetensors"):
        (tmp_path / name).write_text("")
    assert panel.check() == []
    assert not panel.editor("model.init").has_error()


def test_the_form_knows_when_it_was_edited(panel, qtbot):
    panel.set_config(RunConfig.load(EXAMPLES / "digits-cnn.toml"))
    assert not panel.is_modified()
    loaded = panel.editor("optim.lr").edit.text()
    retype(qtbot, panel.editor("optim.lr").edit, "0.5")
    assert panel.is_modified()
    retype(qtbot, panel.editor("optim.lr").edit, loaded)
    assert not panel.is_modified()  # back as loaded
    retype(qtbot, panel.editor("optim.lr").edit, "0.2")
    panel.mark_clean()
    assert not panel.is_modified()


# --- the window: save, open run, start ---------------------------------------------

@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(None, workspace_dir=tmp_path / "ws", settings=settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.bridge.stop()
    win.bridge.wait()


def test_save_writes_the_choices_confirms_and_remembers_the_folder(window, tmp_path, qtbot,
                                                                   monkeypatch, tiny_config):
    window.open_config(str(EXAMPLES / "digits-cnn.toml"))
    asked = []

    def save_dialog(parent, title, start, filters):
        asked.append(start)
        return str(tmp_path / "mine" / "run"), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    cfg = tiny_config(**{"optim.name": "sgd", "optim.momentum": 0.8})
    cfg.optim.betas = [0.5, 0.6]  # adam's, not read by sgd
    window.config_panel.set_config(cfg)
    (tmp_path / "mine").mkdir()
    assert window.save_config_dialog()
    # the first save starts at home, not in the examples folder the config came from
    assert asked == [str(Path.home() / "moons-mlp.toml")]
    saved = tmp_path / "mine" / "run.toml"
    assert window.messages.message() == f"Saved the configuration to {saved}"
    text = saved.read_text()
    assert "hidden = [16]" in text  # a list on one line, as a person writes it
    assert "betas" not in text and "noise" not in text  # noise: moons' default
    assert "[data]" in text and 'dataset = "moons"' in text and "momentum = 0.8" in text
    again = RunConfig.load(saved)
    cfg.optim.betas = RunConfig().optim.betas
    assert again == cfg
    window.save_config_dialog()
    assert asked[-1] == str(tmp_path / "mine" / "moons-mlp.toml")  # where the user saved last


def make_run(tmp_path, cfg) -> int:
    with Workspace(tmp_path / "ws") as ws:
        return ws.create_run(cfg, "stored").id


def test_open_run_asks_before_replacing_unsaved_edits(window, qtbot, tmp_path, tiny_config,
                                                      monkeypatch):
    run_id = make_run(tmp_path, tiny_config(**{"optim.lr": 0.05}))
    answers, asked = [], []

    def ask():
        asked.append(True)
        return answers.pop(0)

    window.ask_unsaved = ask
    window.open_run(run_id)  # nothing edited yet: no question
    assert asked == [] and window.config_panel.config().optim.lr == 0.05

    retype(qtbot, window.config_panel.editor("optim.lr").edit, "0.3")
    answers.append("cancel")
    assert not window.open_run(run_id)
    assert window.config_panel.config().optim.lr == 0.3  # the edit is kept

    saved = tmp_path / "kept.toml"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a: (str(saved), "")))
    answers.append("save")
    assert window.open_run(run_id)
    assert RunConfig.load(saved).optim.lr == 0.3
    assert window.config_panel.config().optim.lr == 0.05 and not window.config_panel.is_modified()

    retype(qtbot, window.config_panel.editor("optim.lr").edit, "0.4")
    answers.append("discard")
    assert window.open_run(run_id)
    assert window.config_panel.config().optim.lr == 0.05 and len(asked) == 3


def test_start_refuses_a_file_that_went_missing(window, qtbot, tmp_path, tiny_config):
    weights = tmp_path / "w.safetensors"
    weights.write_text("")
    window.config_panel.set_config(tiny_config(**{"model.init": str(weights)}))
    assert window.act_start.isEnabled()
    weights.unlink()  # gone since the last edit
    window.start_run()
    assert not window.bridge.busy
    message = window.messages.message()
    assert message.startswith("Cannot start: model.init=") and f"{weights} not found" in message
    assert window.config_panel.editor("model.init").has_error()
    assert not window.act_start.isEnabled()


def test_fine_tuning_options_read_names_and_show_with_a_start(panel, qtbot):
    assert shown(panel, "model.freeze", "optim.backbone_lr_scale") == [True, False]
    retype(qtbot, panel.editor("model.init").edit, "0003-digits-mlp")  # a run of the workspace
    assert panel.is_shown("optim.backbone_lr_scale")
    retype(qtbot, panel.editor("model.freeze").edit, "0, features.3")
    assert panel.editor("model.freeze").value() == ["0", "features.3"]
    assert not panel.editor("model.freeze").has_error()
    assert "e.g. 0, 2" in panel.editor("model.freeze").edit.placeholderText()

"""The run-configuration panel: what a person types is what the run gets, and problems show."""

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QLineEdit, QSpinBox

from app.panels.config_panel import ConfigPanel, keys_named
from app.widgets.config_form import format_float
from engine.config import RunConfig, all_keys, form_groups

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# A valid value other than the default for every option of every section.
NON_DEFAULTS = {
    "data.dataset": "synthetic", "data.batch_size": 48, "data.val_fraction": 0.15,
    "data.n_samples": 3000, "data.n_features": 12, "data.n_classes": 3, "data.noise": 0.35,
    "data.standardize": False, "data.num_workers": 2, "data.pin_memory": True,
    "data.target": "species", "data.features": ["bill length", "island"],
    "data.task": "classification", "data.test_fraction": 0.1, "data.test_path": "test.csv",
    "data.oversample": True, "train.class_weights": "balanced", "data.group_column": "site",
    "preprocess.numeric_impute": "constant", "preprocess.numeric_fill": 1.5,
    "preprocess.outliers": "clip_quantile", "preprocess.iqr_factor": 3.0,
    "preprocess.quantile_low": 0.05, "preprocess.quantile_high": 0.95,
    "preprocess.scaling": "robust", "preprocess.categorical_impute": "constant",
    "preprocess.categorical_fill": "unknown", "preprocess.min_frequency": 5,
    "preprocess.drop_columns": ["id"], "preprocess.duplicates": "drop",
    "model.arch": "custom:models/my_net.py", "model.hidden": [256, 128, 32],
    "model.channels": [16], "model.activation": "gelu", "model.dropout": 0.25,
    "model.batch_norm": True, "model.init": "weights/pruned.safetensors",
    "model.freeze": ["0", "features.3"], "optim.backbone_lr_scale": 0.1,
    "distill.teacher": "3", "distill.alpha": 0.5, "distill.temperature": 2.5,
    "optim.name": "sgd", "optim.lr": 3e-4, "optim.weight_decay": 1.234567890123e-7,
    "optim.momentum": 0.95, "optim.nesterov": True, "optim.betas": [0.85, 0.9995],
    "optim.lbfgs_history": 20, "optim.implementation": "foreach",
    "schedule.name": "multistep", "schedule.warmup_steps": 100, "schedule.step_size": 7,
    "schedule.milestones": [5, 15, 40], "schedule.gamma": 0.5, "schedule.min_lr": 1e-6,
    "schedule.patience": 3,
    "regularization.l1": 1e-5, "regularization.l2": 0.001,
    "regularization.label_smoothing": 0.1, "regularization.early_stopping_patience": 4,
    "regularization.early_stopping_min_delta": 0.0005,
    "regularization.early_stopping_metric": "val_accuracy",
    "precision.amp": "bf16", "precision.channels_last": True, "precision.compile": True,
    "precision.tf32": "on", "train.threads": 6,
    "train.epochs": 33, "train.max_steps": 5_000_000_000, "train.grad_accum_steps": 4,
    "train.grad_clip_norm": 1.5, "train.grad_clip_value": 0.25, "train.loss": "hinge",
    "train.seed": 4_000_000_000, "train.device": "cuda:1", "train.checkpoint_every": 5,
    "train.log_every": 25, "monitor.interval": 2.5, "train.cv_folds": 5, "train.cv_fold": 2,
    "train.strategy": "ddp", "train.backend": "nccl", "train.sync_batchnorm": "off",
    "data.image_size": 48, "data.channels": 1, "data.on_bad_file": "fail",
    "data.image_loading": "stream",
    "augment.enabled": True, "augment.crop_scale": 0.6, "augment.hflip": 0.25,
    "augment.vflip": 0.1, "augment.rotation": 15.0, "augment.brightness": 0.3,
    "augment.contrast": 0.1, "augment.erasing": 0.2, "augment.mixup": 0.4, "augment.cutmix": 0.8,
}


def non_default_config() -> RunConfig:
    cfg = RunConfig()
    for key, value in NON_DEFAULTS.items():
        cfg.set(key, value)
    return cfg


@pytest.fixture
def panel(qtbot):
    widget = ConfigPanel()
    qtbot.addWidget(widget)
    widget.resize(420, 800)
    widget.show()
    return widget


def record(signal) -> list:
    """Every emission of a signal, in order (typing emits once per key)."""
    seen = []
    signal.connect(lambda *args: seen.append(list(args)))
    return seen


def retype(qtbot, line_edit: QLineEdit, text: str) -> None:
    line_edit.selectAll()
    qtbot.keyClick(line_edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(line_edit, text)


def test_non_default_fixture_is_valid_and_touches_every_option():
    cfg = non_default_config()
    assert cfg.errors() == []
    assert all(cfg.get(k) != RunConfig().get(k) for k in all_keys())
    assert set(NON_DEFAULTS) == set(all_keys())


def test_every_option_has_one_editor_in_its_form_group(panel):
    shown = [key for keys in form_groups().values() for key in keys]
    assert sorted(shown) == sorted(all_keys())
    assert all(panel.editor(key).key == key for key in shown)


def test_editors_follow_the_field_metadata(panel):
    assert isinstance(panel.editor("data.dataset").control, QComboBox)
    assert panel.editor("data.dataset").combo.isEditable()  # images:folder, table:file.csv
    assert panel.editor("model.arch").combo.isEditable()  # pattern: custom:path.py
    assert panel.editor("train.device").combo.isEditable()  # pattern: cuda:N
    assert isinstance(panel.editor("model.batch_norm").control, QCheckBox)
    spin = panel.editor("data.batch_size").control
    assert isinstance(spin, QSpinBox) and spin.field_range == (1, 1_000_000)
    assert panel.editor("schedule.gamma").control.__class__ is QLineEdit
    tip = panel.editor("optim.lr").toolTip()
    assert "Step size" in tip and "0.0 < value ≤ 10.0" in tip and "optim.lr" in tip
    assert "warmup_cosine" in panel.editor("schedule.name").toolTip()
    assert "each 1 ≤ value ≤ 1,000,000,000; at most 1000 values" in \
        panel.editor("model.hidden").toolTip()  # list items and length have bounds too
    assert "each 0.0 ≤ value < 1.0; exactly 2 values" in panel.editor("optim.betas").toolTip()


def test_typing_into_the_widgets_changes_the_config(panel, qtbot):
    combo = panel.editor("data.dataset").combo
    with qtbot.waitSignal(panel.configChanged) as changed:
        combo.setCurrentIndex(combo.findText("moons"))
    assert changed.args[0].data.dataset == "moons"

    retype(qtbot, panel.editor("optim.lr").edit, "3e-4")
    retype(qtbot, panel.editor("model.hidden").edit, "[256, 32]")
    retype(qtbot, panel.editor("model.channels").edit, "8, 16 32")
    retype(qtbot, panel.editor("optim.betas").edit, "0.8, 0.99")
    spin = panel.editor("data.batch_size").spin
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "128")
    qtbot.mouseClick(panel.editor("model.batch_norm").check, Qt.MouseButton.LeftButton)

    cfg = panel.config()
    assert cfg.data.dataset == "moons"
    assert cfg.optim.lr == 3e-4
    assert cfg.model.hidden == [256, 32]
    assert cfg.model.channels == [8, 16, 32]
    assert cfg.optim.betas == [0.8, 0.99]
    assert cfg.data.batch_size == 128
    assert cfg.model.batch_norm is True
    assert panel.errors() == []


@pytest.mark.parametrize("make", [lambda: RunConfig.load(EXAMPLES / "digits-cnn.toml"),
                                  non_default_config], ids=["digits-cnn", "non-defaults"])
def test_config_to_form_to_toml_round_trip(qtbot, make, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the non-default model file and weights are
    for name in ("models/my_net.py", "weights/pruned.safetensors"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    cfg = make()
    panel = ConfigPanel(cfg)
    qtbot.addWidget(panel)
    # Read back through each widget, not the config the panel was given.
    assert {k: panel.editor(k).value() for k in all_keys()} == {k: cfg.get(k) for k in all_keys()}
    assert panel.errors() == []
    assert RunConfig.from_toml(panel.config().to_toml()) == cfg


def test_floats_show_without_losing_precision(panel):
    cfg = non_default_config()
    panel.set_config(cfg)
    assert panel.editor("optim.lr").edit.text() == "0.0003"
    text = panel.editor("optim.weight_decay").edit.text()
    assert text == "1.234567890123e-7" and float(text) == cfg.optim.weight_decay
    assert format_float(1e20) == "1e20" and format_float(0.1) == "0.1"


def test_set_config_fills_silently(panel, qtbot):
    with qtbot.assertNotEmitted(panel.configChanged):
        panel.set_config(RunConfig.load(EXAMPLES / "digits-cnn.toml"))
    assert panel.editor("model.arch").value() == "cnn"


def test_bad_value_marks_its_editor_until_fixed(panel, qtbot):
    editor = panel.editor("optim.lr")
    validity = record(panel.validityChanged)
    retype(qtbot, editor.edit, "-1")
    valid, reason = validity[-1]
    assert not valid and reason.startswith("optim.lr")
    expected = panel.config().errors()
    assert reason == expected[0] == "optim.lr must be > 0.0 (got -1.0)"
    assert editor.has_error() and editor.error() == reason
    assert editor._message.isVisible() and editor._message.text() == reason
    assert reason in editor.toolTip()
    assert not panel.editor("optim.momentum").has_error()

    retype(qtbot, editor.edit, "0.01")
    assert validity[-1] == [True, ""]
    assert not editor.has_error() and not editor._message.isVisible()
    assert panel.config().optim.lr == 0.01


def test_unparsable_text_is_reported_in_the_engines_words(panel, qtbot):
    editor = panel.editor("optim.lr")
    validity = record(panel.validityChanged)
    retype(qtbot, editor.edit, "abc")
    assert validity[-1] == [False, "optim.lr must be a number (got 'abc')"]
    assert editor.has_error()
    assert panel.errors() == ["optim.lr must be a number (got 'abc')"]
    assert panel.config().optim.lr == RunConfig().optim.lr  # config() still answers

    retype(qtbot, panel.editor("model.hidden").edit, "64, wide")
    assert panel.editor("model.hidden").has_error()
    assert "model.hidden" in panel.editor("model.hidden").error()


def test_cross_field_rule_marks_every_key_it_names(panel, qtbot):
    combo = panel.editor("optim.name").combo
    combo.setCurrentIndex(combo.findText("sgd"))
    retype(qtbot, panel.editor("optim.momentum").edit, "0")
    with qtbot.waitSignal(panel.validityChanged) as invalid:
        qtbot.mouseClick(panel.editor("optim.nesterov").check, Qt.MouseButton.LeftButton)
    assert invalid.args == [False, "optim.nesterov=true needs optim.momentum > 0 (got 0.0)"]
    for key in ("optim.nesterov", "optim.momentum"):
        assert panel.editor(key).has_error(), key
        assert panel.editor(key).error() == invalid.args[1]
    # Spelled out once, under the key the rule is about.
    assert panel.editor("optim.nesterov")._message.isVisible()
    assert not panel.editor("optim.momentum")._message.isVisible()

    validity = record(panel.validityChanged)
    retype(qtbot, panel.editor("optim.momentum").edit, "0.5")
    assert validity[-1] == [True, ""]
    assert not any(panel.editor(k).has_error() for k in all_keys())


def test_keys_named_finds_whole_keys_only():
    message = ("optim.nesterov=true needs optim.name='sgd' with optim.momentum > 0 "
               "(got name='adam', momentum=0.9)")
    assert keys_named(message) == ["optim.nesterov", "optim.name", "optim.momentum"]
    assert keys_named("/runs/a.toml: regularization.l1 must be >= 0.0") == ["regularization.l1"]
    assert keys_named("model.archive is not an option") == []


def test_read_only_disables_every_editor(panel):
    panel.set_read_only(True)
    assert panel.is_read_only()
    assert not any(panel.editor(k).control.isEnabled() for k in all_keys())
    assert not panel.editor("model.arch").browse.isEnabled()
    panel.set_read_only(False)
    assert all(panel.editor(k).control.isEnabled() for k in all_keys())
    assert panel.editor("model.arch").browse.isEnabled()


def test_custom_arch_and_cuda_device_can_be_typed(panel, qtbot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "my_net.py").write_text("")
    arch = panel.editor("model.arch")
    retype(qtbot, arch.combo.lineEdit(), "custom:models/my_net.py")
    retype(qtbot, panel.editor("train.device").combo.lineEdit(), "cuda:1")
    cfg = panel.config()
    assert cfg.model.arch == "custom:models/my_net.py"
    assert cfg.train.device == "cuda:1"
    assert not arch.has_error() and panel.errors() == []

    retype(qtbot, arch.combo.lineEdit(), "custom:net.txt")
    assert arch.has_error() and "model.arch must be one of" in arch.error()


def test_browse_button_sets_a_custom_arch(panel, qtbot, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: ("/models/net.py", "Python files (*.py)")))
    with qtbot.waitSignal(panel.configChanged) as changed:
        qtbot.mouseClick(panel.editor("model.arch").browse, Qt.MouseButton.LeftButton)
    assert changed.args[0].model.arch == "custom:/models/net.py"


def test_a_loaded_value_outside_the_choices_is_shown_and_named(panel):
    cfg = RunConfig()
    cfg.optim.name = "adamax"  # as from_dict(validate=False) can hand over
    panel.set_config(cfg)
    assert panel.config().optim.name == "adamax"
    assert panel.editor("optim.name").has_error()
    assert "did you mean 'adam'?" in panel.editor("optim.name").error()
    panel.set_config(RunConfig())
    assert panel.editor("optim.name").combo.findText("adamax") == -1
    assert panel.errors() == []


def test_a_loaded_integer_outside_the_range_is_kept_and_named(panel):
    cfg = RunConfig()
    cfg.train.epochs = 0
    panel.set_config(cfg)
    assert panel.config().train.epochs == 0
    assert panel.editor("train.epochs").error() == "train.epochs must be >= 1 (got 0)"
    panel.set_config(RunConfig())
    assert panel.editor("train.epochs").spin.value() == 10 and panel.errors() == []

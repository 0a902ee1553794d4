"""RunConfig: TOML round trip, overrides, and errors that name the key, the value and the fix."""

import pytest

from engine.config import ConfigError, RunConfig, all_keys, field_meta, field_type


def test_every_field_has_form_metadata():
    for key in all_keys():
        meta = field_meta(key)
        assert meta["label"] and meta["help"], key


def test_toml_round_trip_is_exact(tiny_config):
    cfg = tiny_config(**{"optim.lr": 3e-4, "model.hidden": [256, 128, 64],
                         "precision.amp": "bf16", "schedule.milestones": [3, 7]})
    text = cfg.to_toml()
    again = RunConfig.from_toml(text)
    assert again == cfg
    assert again.to_toml() == text


def test_save_and_load_file(tmp_path, tiny_config):
    cfg = tiny_config()
    cfg.save(tmp_path / "run.toml")
    assert RunConfig.load(tmp_path / "run.toml") == cfg


def test_partial_file_takes_defaults_for_the_rest():
    cfg = RunConfig.from_toml('[optim]\nlr = 0.05\n')
    assert cfg.optim.lr == 0.05
    assert cfg.train == RunConfig().train


@pytest.mark.parametrize("key", all_keys())
def test_every_field_can_be_overridden(key):
    default = RunConfig().get(key)
    tp = field_type(key)
    if tp is bool:
        text, expected = str(not default).lower(), not default
    elif isinstance(default, list):
        text, expected = "[" + ", ".join(str(v) for v in default[:1]) + "]", default[:1]
    else:
        text, expected = str(default), default
    cfg = RunConfig()
    cfg.set(key, text)
    assert cfg.get(key) == expected


def test_overrides_parse_numbers_lists_and_strings():
    cfg = RunConfig().with_overrides(["optim.lr=3e-4", "model.hidden=[256, 128]",
                                      "train.device=cuda:1", "precision.compile=yes",
                                      "model.channels=8,16"])
    assert cfg.optim.lr == 3e-4
    assert cfg.model.hidden == [256, 128]
    assert cfg.train.device == "cuda:1"
    assert cfg.precision.compile is True
    assert cfg.model.channels == [8, 16]


@pytest.mark.parametrize("override, expected", [
    ("optim.lr=-0.1", "optim.lr must be > 0.0 (got -0.1)"),
    ("data.val_fraction=0.95", "data.val_fraction must be <= 0.9 (got 0.95)"),
    ("train.epochs=1.5", "train.epochs must be an integer (got 1.5)"),
    ("optim.nesterov=maybe", "optim.nesterov must be true or false (got 'maybe')"),
    ("optim.name=adamm", "optim.name must be one of 'sgd', 'adam'"),
    ("train.device=gpu", "train.device must be one of 'auto', 'cpu', 'cuda', 'mps' or cuda:N"),
    ("model.arch=transformer", "or custom:path/to/file.py (got 'transformer')"),
    ("model.hidden=[64, 0]", "model.hidden must be a non-empty list of values >= 1"),
    ("optim.lrr=0.1", "unknown key 'optim.lrr': did you mean 'optim.lr'?"),
    ("lr=0.1", "unknown key 'lr': did you mean 'optim.lr'?"),
    ("optim.lr", "must look like key=value"),
    ("data.val_fraction=nan", "data.val_fraction must be a finite number (got nan)"),
])
def test_bad_values_name_key_value_and_what_is_allowed(override, expected):
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides([override])
    assert expected in str(info.value)


def test_choice_error_suggests_the_close_match():
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        RunConfig().with_overrides(["optim.name=adamm"])


@pytest.mark.parametrize("overrides, expected", [
    (["optim.nesterov=true", "optim.name=sgd", "optim.momentum=0"],
     "optim.nesterov=true needs optim.momentum > 0"),
    (["model.arch=cnn", "data.dataset=iris"], "model.arch='cnn' needs image data"),
    (["train.loss=mse", "data.dataset=iris"], "train.loss='mse' does not fit the classification"),
    (["regularization.early_stopping_metric=val_r2"], "is not measured for classification"),
    (["optim.name=lbfgs", "train.grad_accum_steps=2"], "train.grad_accum_steps must be 1"),
    (["schedule.name=multistep", "schedule.milestones=[5, 3]"],
     "schedule.milestones must be strictly increasing"),
    (["schedule.name=plateau", "schedule.warmup_steps=10"], "schedule.warmup_steps must be 0"),
])
def test_rules_between_options(overrides, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        RunConfig().with_overrides(overrides)


def test_file_errors_name_the_file_and_every_problem(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[optim]\nlr = "fast"\n[foo]\na = 1\n[train]\nepoch = 3\n')
    with pytest.raises(ConfigError) as info:
        RunConfig.load(path)
    messages = info.value.messages
    assert all(str(path) in m for m in messages)
    text = str(info.value)
    assert "optim.lr must be a number (got 'fast')" in text
    assert "unknown key 'foo'" in text
    assert "unknown key 'train.epoch': did you mean 'train.epochs'?" in text


def test_toml_syntax_error_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[optim\nlr = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RunConfig.load(path)
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.load(tmp_path / "missing.toml")


def test_examples_are_valid():
    from pathlib import Path

    examples = sorted(Path(__file__).parents[2].joinpath("examples").glob("*.toml"))
    assert len(examples) >= 4
    for path in examples:
        RunConfig.load(path)


def test_options_reference_is_up_to_date():
    from pathlib import Path

    from engine.options_doc import markdown

    page = Path(__file__).parents[2] / "docs" / "config.md"
    assert page.read_text() == markdown() + "\n", "regenerate: torchwork options --markdown"
    for key in all_keys():
        assert f"`{key}`" in page.read_text()


def test_form_groups_cover_every_key_once():
    from engine.config import form_groups

    listed = [k for keys in form_groups().values() for k in keys]
    assert sorted(listed) == sorted(all_keys())
    assert len(listed) == len(set(listed))


def test_weights_file_and_distillation_options_are_checked():
    cfg = RunConfig()
    assert cfg.model.init == "" and cfg.distill.teacher == ""
    with pytest.raises(ConfigError, match=r"model.init must be empty or a run id or name, or "
                                          r"path/to/model.safetensors \(got 'w.pt'\)"):
        cfg.with_overrides(["model.init=w.pt"])
    assert cfg.with_overrides(["model.init=0003-digits-mlp"]).model.init == "0003-digits-mlp"
    assert cfg.with_overrides(["model.init=out/w.safetensors"]).model.init == "out/w.safetensors"
    with pytest.raises(ConfigError, match="distill.teacher needs a classification dataset"):
        cfg.with_overrides(["distill.teacher=3", "data.dataset=diabetes"])
    with pytest.raises(ConfigError, match="distill.temperature must be > 0"):
        cfg.with_overrides(["distill.teacher=3", "distill.temperature=0"])
    again = RunConfig.from_toml(cfg.with_overrides(["distill.teacher=3"]).to_toml())
    assert again.distill.teacher == "3"

"""When an option applies (relevant_when), what saving writes, and the files a run reads."""

from pathlib import Path

import pytest

from engine.config import ConfigError, RunConfig, all_keys, field_meta
from engine.options_doc import markdown, plain
from engine.relevance import applies, check_rule

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def config(**values) -> RunConfig:
    cfg = RunConfig()
    for key, value in values.items():
        cfg.set(key.replace("__", "."), value)
    return cfg


def test_every_rule_names_real_options_and_values_they_can_take():
    problems = [p for key in all_keys() for p in check_rule(key, field_meta(key)["relevant_when"])]
    assert problems == []
    ruled = [key for key in all_keys() if field_meta(key)["relevant_when"] is not None]
    assert len(ruled) >= 20  # data, model, optimizer, schedule, distillation all use it


def test_a_broken_rule_is_named():
    assert check_rule("x.y", {"optim.nmae": ["sgd"]}) == [
        "x.y: relevant_when names 'optim.nmae', which is no option"]
    assert "which takes" in check_rule("x.y", {"optim.name": ["sgdd"]})[0]
    assert "use a list of values" in check_rule("x.y", {"optim.lr": {"<": 1}})[0]


@pytest.mark.parametrize("key, applies_under, not_under", [
    ("optim.momentum", [{"optim__name": "sgd"}, {"optim__name": "rmsprop"}],
     [{"optim__name": "adam"}, {"optim__name": "lbfgs"}]),
    ("optim.nesterov", [{"optim__name": "sgd"}], [{"optim__name": "rmsprop"}]),
    ("optim.betas", [{"optim__name": "adamw"}], [{"optim__name": "sgd"}]),
    ("data.noise", [{"data__dataset": "moons"}], [{"data__dataset": "synthetic"}, {}]),
    ("data.n_features", [{"data__dataset": "synthetic"}], [{"data__dataset": "moons"}]),
    ("schedule.milestones", [{"schedule__name": "multistep"}], [{"schedule__name": "step"}]),
    ("schedule.patience", [{"schedule__name": "plateau"}], [{}]),
    ("model.channels", [{"model__arch": "cnn"}, {"model__arch": "resnet"}],
     [{"model__arch": "mlp"}, {"model__arch": "resnet", "data__dataset": "iris"},
      {"model__arch": "custom:net.py"}]),
    ("model.hidden", [{"model__arch": "mlp"}, {"model__arch": "resnet", "data__dataset": "iris"}],
     [{"model__arch": "resnet"}, {"model__arch": "custom:net.py"}]),
    ("regularization.early_stopping_min_delta",
     [{"regularization__early_stopping_patience": 3}], [{}]),
    ("distill.alpha", [{"distill__teacher": "3"}], [{}]),
])
def test_an_option_applies_only_where_the_run_uses_it(key, applies_under, not_under):
    for values in applies_under:
        assert config(**values).applies(key), values
    for values in not_under:
        assert not config(**values).applies(key), values


def test_rules_are_plain_data_any_mapping_can_answer():
    rule = field_meta("model.channels")["relevant_when"]
    assert applies(rule, {"model.arch": "cnn", "data.dataset": "iris"}.get)
    assert not applies(rule, {"model.arch": "resnet", "data.dataset": "iris"}.get)
    assert applies(None, {}.get)


def test_validation_ignores_an_option_that_does_not_apply():
    cfg = RunConfig().with_overrides(["data.noise=50", "optim.momentum=3", "data.n_classes=1"])
    assert cfg.data.noise == 50  # digits: the noise is never read
    with pytest.raises(ConfigError, match=r"data.noise must be <= 10.0 \(got 50.0\)"):
        cfg.with_overrides(["data.dataset=moons"])
    with pytest.raises(ConfigError, match="optim.momentum must be < 1.0"):
        cfg.with_overrides(["optim.name=sgd"])
    # what no file may hold is refused wherever it is
    with pytest.raises(ConfigError, match="data.noise must be finite"):
        RunConfig().with_overrides(["data.noise=nan"])
    with pytest.raises(ConfigError, match="model.channels must list at most 1000 values"):
        RunConfig().with_overrides(["model.channels=[" + ", ".join(["1"] * 1001) + "]"])


def test_saving_writes_only_the_choices_made():
    cfg = config(data__dataset="moons", data__noise=0.3, optim__name="sgd", optim__momentum=0.8,
                 optim__betas=[0.5, 0.6], data__n_features=7, schedule__name="step",
                 schedule__step_size=3)
    text = cfg.to_toml(changes_only=True)
    assert text.startswith("# Torchwork run configuration")
    assert "[data]" in text and "[optim]" in text  # sections, as a person writes them
    assert cfg.changes() == {
        "data": {"dataset": "moons", "noise": 0.3},
        "model": {"arch": "mlp"},  # always named, default or not
        "optim": {"name": "sgd", "momentum": 0.8},  # not the betas sgd never reads
        "schedule": {"name": "step", "step_size": 3},
    }
    again = RunConfig.from_toml(text)
    assert [again.get(k) for k in all_keys() if cfg.applies(k)] == \
        [cfg.get(k) for k in all_keys() if cfg.applies(k)]
    assert again.optim.betas == RunConfig().optim.betas


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_a_saved_example_loads_back_to_the_same_run(path, tmp_path):
    cfg = RunConfig.load(path)
    cfg.save(tmp_path / "saved.toml", changes_only=True)
    again = RunConfig.load(tmp_path / "saved.toml")
    assert again.changes() == cfg.changes()
    assert all(again.get(k) == cfg.get(k) for k in all_keys() if cfg.applies(k))


def test_options_say_when_an_option_applies():
    text = plain()
    assert "Applies when optim.name is sgd or rmsprop." in text
    assert "Applies when distill.teacher is set." in text
    assert ("Applies when model.arch is cnn; or when model.arch is resnet and data.dataset is "
            "digits; or when model.arch is resnet and data.dataset starts with images:." in text)
    assert ("model.arch is resnet and data.dataset is not digits and data.dataset does not "
            "start with images:" in text)
    assert "*Applies when data.dataset is moons.*" in markdown()


def test_hidden_widths_apply_to_resnet_on_tables_not_on_image_folders():
    on_folder = config(model__arch="resnet", data__dataset="images:pets")
    assert on_folder.applies("model.channels") and not on_folder.applies("model.hidden")
    on_table = config(model__arch="resnet", data__dataset="wine")
    assert on_table.applies("model.hidden") and not on_table.applies("model.channels")


def test_files_a_run_reads_are_checked_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text("def build_model(input_shape, num_outputs): ...\n")
    (tmp_path / "w.safetensors").write_bytes(b"")
    present = config(model__arch="custom:net.py", model__init="w.safetensors",
                     distill__teacher="3")  # a run id names no file
    assert present.file_errors() == []
    assert config(model__init="0003-digits-mlp").file_errors() == []  # a run names no file
    missing = config(model__arch="custom:gone.py", model__init="gone.safetensors",
                     distill__teacher="t/gone.safetensors")
    assert missing.file_errors() == [
        f"model.arch='custom:gone.py': {tmp_path / 'gone.py'} not found: give the path of a .py "
        f"file exposing build_model(input_shape, num_outputs)",
        f"model.init='gone.safetensors': {tmp_path / 'gone.safetensors'} not found: give a "
        f"run id, or a .safetensors file written by `torchwork export --format safetensors` or "
        f"by `torchwork compress`",
        f"distill.teacher='t/gone.safetensors': {tmp_path / 't/gone.safetensors'} not found: "
        f"give a run id or a .safetensors file from `torchwork export`"]
    (tmp_path / "folder.py").mkdir()
    assert "folder.py is not a file" in config(model__arch="custom:folder.py").file_errors()[0]


def test_a_prefix_rule_holds_for_strings_that_start_with_it():
    rule = {"data.dataset": {"prefix": ["table:", "images:"]}}
    assert applies(rule, {"data.dataset": "table:penguins.csv"}.get)
    assert applies(rule, {"data.dataset": "images:shapes"}.get)
    assert not applies(rule, {"data.dataset": "digits"}.get)
    assert not applies(rule, {"data.dataset": 3}.get)
    assert check_rule("x.y", rule) == []

"""[search] and [search.space]: read, checked by each option's own rules, saved back unchanged."""

import pytest

from engine.config import ConfigError, RunConfig
from engine.experiments.space import params, trial_config

BASE = '[data]\ndataset = "iris"\n[model]\narch = "mlp"\n'
SPACE = '''
[search]
objective = "val_loss"
direction = "minimize"
sampler = "random"
n_trials = 7

[search.space]
"optim.lr" = { low = 1e-5, high = 1e-1, log = true }
"data.batch_size" = { choices = [32, 64, 128] }
"model.hidden" = { choices = [[64], [128, 64]] }
"train.epochs" = { low = 2, high = 8, step = 2 }
'''


def load(text: str) -> RunConfig:
    return RunConfig.from_toml(BASE + text)


def test_a_space_reads_as_ranges_and_choices_of_run_options():
    cfg = load(SPACE)
    assert (cfg.search.objective, cfg.search.direction, cfg.search.sampler,
            cfg.search.n_trials) == ("val_loss", "minimize", "random", 7)
    lr, batch, hidden, epochs = params(cfg.search)
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-5, 0.1, True)
    assert batch.choices == (32, 64, 128)
    assert hidden.choices == ([64], [128, 64]) and hidden.labels == ("[64]", "[128, 64]")
    assert (epochs.kind, epochs.grid()) == ("int", [2, 4, 6, 8])


def test_saving_keeps_the_search_section_and_its_space():
    cfg = load(SPACE)
    saved = cfg.to_toml(changes_only=True)
    assert '"model.hidden" = { choices = [[64], [128, 64]] }' in saved
    assert RunConfig.from_toml(saved) == cfg
    assert RunConfig.from_toml(cfg.to_toml()) == cfg
    assert cfg.copy().search == cfg.search


def test_a_config_without_search_saves_none():
    cfg = load("")
    assert cfg.search is None
    assert "[search" not in cfg.to_toml() and "[search" not in cfg.to_toml(changes_only=True)


@pytest.mark.parametrize("space, expected", [
    ('"optim.lrr" = { low = 0.1, high = 1.0 }', 'unknown run option \'optim.lrr\': did you '
                                                 'mean \'optim.lr\'?'),
    ('"optim.lr" = { low = 0.1, high = 0.01 }', 'search.space."optim.lr": low (0.1) must be '
                                                '< high (0.01)'),
    ('"optim.lr" = { low = 0.1, high = 0.1 }', 'search.space."optim.lr": low (0.1) must be < '
                                               'high'),
    ('"regularization.l2" = { low = 0.0, high = 0.1, log = true }',
     'search.space."regularization.l2": log = true needs low > 0'),
    ('"data.batch_size" = { choices = [] }', 'search.space."data.batch_size": choices must be '
                                             'a non-empty list'),
    ('"optim.name" = { choices = ["adamw", "adamx"] }',
     'search.space."optim.name": choice \'adamx\': optim.name must be one of'),
    ('"data.batch_size" = { choices = [32, 0] }',
     'search.space."data.batch_size": choice 0: data.batch_size must be >= 1'),
    ('"optim.lr" = { low = 0.0, high = 0.1 }', 'search.space."optim.lr": low: optim.lr must '
                                               'be > 0'),
    ('"optim.name" = { low = 1, high = 2 }', 'search.space."optim.name": optim.name is str, '
                                             'not a number'),
    ('"optim.lr" = { low = 1e-4, high = 0.1, step = 0.01, log = true }',
     'search.space."optim.lr": step and log = true cannot go together'),
    ('"optim.lr" = { low = 1e-4 }', 'search.space."optim.lr": a range needs both low and high'),
    ('"optim.lr" = 0.1', 'search.space."optim.lr" must be a table'),
    ('"optim.lr" = { low = 1e-4, high = 0.1, choices = [0.1] }',
     'search.space."optim.lr" must be { low'),
])
def test_a_bad_space_is_one_message_naming_its_key(space, expected):
    with pytest.raises(ConfigError) as err:
        load(f"[search.space]\n{space}\n")
    assert len(err.value.messages) == 1, err.value.messages
    assert expected in err.value.messages[0]


@pytest.mark.parametrize("text, expected", [
    ('[search]\nsampler = "annealing"\n[search.space]\n"optim.lr" = { choices = [0.1] }',
     "search.sampler must be one of 'tpe'"),
    ('[search]\nn_trials = 0\n[search.space]\n"optim.lr" = { choices = [0.1] }',
     "search.n_trials must be >= 1 (got 0)"),
    ('[search]\nworkerz = 2\n[search.space]\n"optim.lr" = { choices = [0.1] }',
     "unknown key 'search.workerz': did you mean 'search.workers'?"),
    ('[search]\nobjective = "val_r2"\n[search.space]\n"optim.lr" = { choices = [0.1] }',
     "search.objective='val_r2' is not measured for classification"),
    ('[search]\nsampler = "grid"\n[search.space]\n"optim.lr" = { low = 1e-4, high = 0.1 }',
     "search.sampler='grid' needs values it can list: search.space.\"optim.lr\""),
    ('[search]\nn_trials = 3\n', "search.space names no option to search"),
])
def test_bad_search_options_name_their_key(text, expected):
    with pytest.raises(ConfigError) as err:
        load(text)
    assert any(expected in m for m in err.value.messages), err.value.messages


def test_a_trial_config_has_the_sampled_values_and_no_search():
    cfg = load(SPACE)
    trial = trial_config(cfg, {"optim.lr": 0.003, "model.hidden": [128, 64]})
    assert trial.optim.lr == 0.003 and trial.model.hidden == [128, 64]
    assert trial.search is None and cfg.search is not None
    with pytest.raises(ConfigError, match="schedule.warmup_steps must be 0"):
        trial_config(cfg.with_overrides(["schedule.warmup_steps=10"]),
                     {"schedule.name": "plateau"})


def test_a_run_trains_the_configs_own_values_and_stores_no_search(tmp_path):
    from engine.cli import main
    from engine.workspace import Workspace

    path = tmp_path / "search.toml"
    path.write_text(BASE + '[train]\nepochs = 1\n[optim]\nlr = 0.02\n' + SPACE)
    assert main(["run", str(path), "--workspace", str(tmp_path / "ws")]) == 0
    with Workspace(tmp_path / "ws") as ws:
        run = ws.get_run(1)
    assert run.config.search is None and run.config.optim.lr == 0.02
    assert run.config.train.epochs == 1 and run.status == "completed"


def test_a_run_of_a_search_config_may_cross_validate(tmp_path, capsys):
    from engine.cli import main
    from engine.workspace import Workspace

    path = tmp_path / "cv.toml"
    path.write_text(BASE + '[train]\nepochs = 1\ncv_folds = 2\n' + SPACE)
    assert main(["run", str(path), "--workspace", str(tmp_path / "ws")]) == 0
    with Workspace(tmp_path / "ws") as ws:
        folds = ws.list_runs()
    assert len(folds) == 2 and all(r.config.search is None for r in folds)
    assert main(["search", str(path), "--workspace", str(tmp_path / "ws")]) == 2
    assert "train.cv_folds must be 0" in capsys.readouterr().err

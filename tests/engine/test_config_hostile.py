"""Hostile values, files and command lines: exit 2, one line naming the key, no traceback."""

import itertools
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.config import OPTIMIZERS, SCHEDULES, ConfigError, RunConfig, all_keys
from engine.models import build_model
from engine.training import footprint
from engine.training.setup import build_optimizer, build_scheduler
from engine.workspace import Workspace

HUGE = "9" * 5000  # past Python's 4,300-digit int-str limit


@pytest.fixture
def config_file(tmp_path, tiny_config, workspace_dir):
    path = tmp_path / "run.toml"
    tiny_config().save(path)
    return path


def refused(capsys, argv) -> str:
    """Run the command; assert exit 2 and one stderr line without a traceback; return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("overrides, expected", [
    (["optim.lr=" + "9" * 400], "optim.lr is too large (got a 400-digit number): must be <= 10.0"),
    (["train.seed=" + HUGE], "train.seed is too large (got a 5000-digit number)"),
    (["model.hidden=[" + HUGE + "]"], "model.hidden is too large (got a 5000-digit number)"),
    (["model.hidden=" + "[" * 5000 + "]" * 5000], "model.hidden nests arrays too deeply"),
    (["model.hidden=" + "[" * 300 + "1" + "]" * 300], "model.hidden must be a list of integers"),
    (["model.hidden=[2000000000]"], "model.hidden must be a non-empty list of values >= 1 and "
                                    "<= 1000000000 (got [2000000000])"),
    (["model.channels=[" + ", ".join(["1"] * 1001) + "]"],
     "model.channels must list at most 1000 values (got 1001)"),
    (["schedule.name=multistep", "schedule.milestones=[5, 2000000]"],
     "schedule.milestones must be a non-empty list"),
    (["optim.betas=[0.9, 1.0]"], "optim.betas must be a non-empty list of values >= 0.0 and < "
                                 "1.0"),
    (["optim.betas=[0.9]"], "optim.betas must list 2 values (got 1)"),
    (["schedule.name=plateau", "schedule.gamma=1.0"], "schedule.gamma must be < 1 with "
                                                      "schedule.name='plateau'"),
    (["schedule.name=cosine", "schedule.min_lr=0.5"], "schedule.min_lr (0.5) must not exceed "
                                                      "optim.lr (0.01)"),
])
def test_hostile_overrides_get_one_line_naming_the_key(config_file, capsys, overrides, expected):
    argv = ["run", str(config_file)]
    for item in overrides:
        argv += ["--set", item]
    line = refused(capsys, argv)
    assert line.startswith("torchwork run: ")
    assert expected in line
    assert len(line) < 400


@pytest.mark.parametrize("text, expected", [
    (f"[train]\nepochs = 2\nseed = {HUGE}\n",
     "line 3: train.seed is too large (got a 5000-digit number): must be <= 4294967295"),
    ("[optim]\nbetas = [0.9,\n  " + HUGE + "]\n", "line 3: optim.betas is too large"),
    ("[model]\nhidden = " + "[" * 5000 + "]" * 5000 + "\n",
     "line 2: model.hidden nests arrays too deeply to read: give a list of integers"),
    ('[model]\narch = "custom:a\\u0000b.py"\n', "model.arch must not contain a NUL character"),
])
def test_hostile_toml_files_name_the_file_line_and_key(tmp_path, workspace_dir, capsys, text,
                                                       expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = refused(capsys, ["run", str(path)])
    assert line.startswith(f"torchwork run: {path}: ")
    assert expected in line


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_every_optimizer_and_schedule_builds_at_the_edges_of_warmup():
    """onecycle with a one-step warmup divided by zero inside torch's OneCycleLR."""
    model = torch.nn.Linear(2, 2)
    for opt, sched, warmup, total in itertools.product(OPTIMIZERS, SCHEDULES, (0, 1, 2, 3),
                                                       (1, 2, 3, 4, 100)):
        cfg = RunConfig()
        cfg.optim.name, cfg.schedule.name = opt, sched
        cfg.schedule.warmup_steps = 0 if sched == "plateau" else warmup
        optimizer = build_optimizer(cfg, model)
        scheduler = build_scheduler(cfg, optimizer, 1, total)
        if scheduler is not None and sched != "plateau":
            for _ in range(total):
                scheduler.step()


def test_a_value_torch_refuses_becomes_one_line_naming_the_schedule(config_file, capsys,
                                                                    monkeypatch):
    """The safety net for a rule torch adds that the config does not know yet."""
    def refuse(*args, **kwargs):
        raise ValueError("Factor should be < 1.0.")

    monkeypatch.setattr(torch.optim.lr_scheduler, "ReduceLROnPlateau", refuse)
    line = refused(capsys, ["run", str(config_file), "--set", "schedule.name=plateau"])
    assert "schedule.name='plateau' refuses these settings (Factor should be < 1.0.)" in line
    assert "schedule.gamma" in line


@pytest.fixture
def one_gib_free(monkeypatch):
    monkeypatch.setattr(footprint, "available_bytes", lambda: 2**30)


@pytest.mark.parametrize("overrides, expected", [
    (["model.hidden=[1000000000]"],
     "model.hidden=[1000000000] needs about 18.6 GiB for the parameters alone (only 1.0 GiB of "
     "memory is free): use smaller layers"),
    (["model.hidden=[10000000]"], "model.hidden=[10000000] needs about 3.1 GiB to train on the "
                                  "CPU (parameters, gradients, adam's state and the activations "
                                  "of a batch of 32"),
    (["data.n_samples=100000000"], "data.n_samples=100000000 needs about 8.2 GiB to generate and "
                                   "split (only 1.0 GiB of memory is free): lower data.n_samples"),
    (["data.dataset=synthetic", "data.n_samples=1000000", "data.n_features=100000"],
     "data.n_samples=1000000 x data.n_features=100000 needs about 2607.7 GiB"),
    (["data.dataset=digits", "model.arch=cnn", "model.channels=[1000000]"],
     "model.channels=[1000000] and model.hidden=[16] need about"),
])
def test_a_run_too_big_for_memory_is_refused_before_allocation(config_file, capsys, one_gib_free,
                                                               workspace_dir, overrides, expected):
    argv = ["run", str(config_file)]
    for item in overrides:
        argv += ["--set", item]
    assert expected in refused(capsys, argv)
    with Workspace(workspace_dir) as ws:
        assert ws.list_runs() == []


def test_a_run_that_fits_still_trains(config_file, capsys, one_gib_free):
    assert main(["run", str(config_file), "--max-steps", "2"]) == 0


@pytest.mark.parametrize("overrides, shape", [
    ([], (4,)), (["model.batch_norm=true"], (4,)), (["model.arch=cnn"], (1, 8, 8)),
    (["model.arch=resnet"], (1, 8, 8)), (["model.arch=resnet", "model.hidden=[8, 16]"], (4,)),
])
def test_the_size_estimate_counts_what_the_builders_build(overrides, shape):
    cfg = RunConfig().with_overrides(overrides)
    model = build_model(cfg, shape, 3)
    values, _ = footprint.model_size(cfg, shape, 3)
    assert values == sum(t.numel() for t in (*model.parameters(), *model.buffers()))


@pytest.mark.parametrize("argv, expected", [
    (["run"], "torchwork run: the following arguments are required: config "
              "(see torchwork run --help)"),
    (["bogus"], "torchwork: argument COMMAND: invalid choice: 'bogus'"),
    (["run", "x.toml", "--max-steps", "abc"],
     "torchwork run: argument --max-steps: invalid int value: 'abc' (see torchwork run --help)"),
    (["monitor", "--count", "x"], "torchwork monitor: argument --count: invalid int value: 'x'"),
])
def test_argument_errors_are_one_line_without_the_usage_block(capsys, argv, expected):
    line = refused(capsys, argv)
    assert line.startswith(expected)
    assert "usage:" not in line


def test_output_into_a_closed_pipe_ends_quietly():
    """`torchwork options | head` when head has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "engine.cli", "options"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert done.stderr == ""


values = st.one_of(
    st.text(max_size=30), st.integers(), st.floats(),
    st.integers(min_value=10**300, max_value=10**400).map(str),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(all_keys()), value=values)
def test_any_override_is_accepted_or_refused_in_one_line(key, value):
    try:
        RunConfig().with_overrides([f"{key}={value}"])
    except ConfigError as exc:
        assert all("\n" not in m and len(m) < 400 for m in exc.messages), exc.messages


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.text(max_size=200))
def test_any_toml_text_is_read_or_refused_as_a_config_error(text):
    try:
        RunConfig.from_toml(text)
    except ConfigError:
        pass

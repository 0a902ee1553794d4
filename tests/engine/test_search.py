"""torchwork search: Optuna trials as workspace runs, pruned and failed trials, workers, --join."""

import json
import threading
import time

import optuna
import pytest
import torch

from engine.cli import main
from engine.config import RunConfig
from engine.experiments import search as search_mod
from engine.experiments.search import Plan, Worker, start_study
from engine.workspace import Workspace

from .storage_child import open_storage_in_a_process

TINY = '''
[data]
dataset = "iris"
batch_size = 16
[model]
arch = "mlp"
hidden = [16]
[train]
epochs = 3
device = "cpu"
'''


def config(search: str) -> RunConfig:
    return RunConfig.from_toml(TINY + search)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run_worker(tmp_path, cfg: RunConfig, n_trials: int) -> tuple[list[dict], optuna.Study]:
    """One worker in this process, as a spawned worker runs it."""
    storage = f"sqlite:///{tmp_path / 'search.sqlite'}"
    start_study(cfg, storage, "s", str(tmp_path / "ws"))
    events: list[dict] = []
    plan = Plan(cfg.to_toml(), storage, "s", str(tmp_path / "ws"), n_trials, 0.0, 0)
    Worker(plan, events.append, threading.Event()).run()
    return events, optuna.load_study(study_name="s", storage=storage)


@pytest.mark.slow
def test_a_pruned_trial_ends_its_run_as_pruned(tmp_path, monkeypatch, one_thread):
    # Optuna's own pruner that prunes every trial after its first reported epoch.
    monkeypatch.setattr(search_mod, "make_pruner",
                        lambda search: optuna.pruners.ThresholdPruner(lower=2.0))
    cfg = config('[search]\n[search.space]\n"optim.lr" = { low = 1e-3, high = 1e-1, log = true }')
    events, study = run_worker(tmp_path, cfg, 2)
    assert [e["state"] for e in events] == ["PRUNED", "PRUNED"]
    with Workspace(tmp_path / "ws") as ws:
        runs = sorted(ws.list_runs(), key=lambda r: r.id)
    assert [r.status for r in runs] == ["pruned", "pruned"]
    assert [r.epochs_completed for r in runs] == [1, 1]  # of train.epochs = 3
    assert [(r.study, r.trial) for r in runs] == [("s", 0), ("s", 1)]
    assert [t.intermediate_values.keys() for t in study.trials] == [{1}, {1}]


BOOM = """import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
    def forward(self, x):
        if self.training:
            raise RuntimeError("boom in forward")
        return self.fc(x)
def build_model(input_shape, num_outputs):
    return Net()
"""


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path, one_thread):
    # plateau breaks a rule with the base's warmup; the custom model fails in training.
    (tmp_path / "boom.py").write_text(BOOM)
    boom = f"custom:{tmp_path / 'boom.py'}"
    cfg = config('[schedule]\nwarmup_steps = 5\n'
                 '[search]\nsampler = "grid"\n[search.space]\n'
                 '"schedule.name" = { choices = ["constant", "plateau"] }\n'
                 f'"model.arch" = {{ choices = ["mlp", "{boom}"] }}\n')
    events, study = run_worker(tmp_path, cfg, 10)
    assert len(study.trials) == 4  # the grid, not n_trials
    by_params = {(t.params["schedule.name"], t.params["model.arch"]): t for t in study.trials}
    good = by_params[("constant", "mlp")]
    assert good.state.name == "COMPLETE" and 0 <= good.value <= 1
    for arch in ("mlp", boom):
        bad = by_params[("plateau", arch)]
        assert bad.state.name == "FAIL" and "warmup_steps must be 0" in bad.user_attrs["error"]
        assert "run_id" not in bad.user_attrs  # refused before a run was made
    failed = by_params[("constant", boom)]
    assert failed.state.name == "FAIL" and "boom in forward" in failed.user_attrs["error"]
    with Workspace(tmp_path / "ws") as ws:
        run = ws.get_run(failed.user_attrs["run_id"])
    assert run.status == "failed" and run.error == failed.user_attrs["error"]
    assert sorted(e["state"] for e in events) == ["COMPLETE", "FAIL", "FAIL", "FAIL"]


@pytest.mark.parametrize("sampler, pruner", [
    ("tpe", "hyperband"), ("random", "successive_halving"), ("grid", "median"),
    ("cmaes", "none"), ("gp", "median"), ("qmc", "none")])
def test_every_sampler_and_pruner_runs_trials(tmp_path, one_thread, sampler, pruner):
    step = ", step = 0.01" if sampler == "grid" else ""
    cfg = config(f'[search]\nsampler = "{sampler}"\npruner = "{pruner}"\n[search.space]\n'
                 f'"optim.lr" = {{ low = 0.01, high = 0.05{step} }}\n'
                 '"train.epochs" = { low = 1, high = 2 }\n')
    events, study = run_worker(tmp_path, cfg, 3)
    states = [t.state.name for t in study.trials]
    assert len(states) == 3 and states[0] == "COMPLETE" and set(states) <= {"COMPLETE", "PRUNED"}
    assert all(0.01 <= t.params["optim.lr"] <= 0.05 for t in study.trials)


@pytest.mark.slow
def test_workers_that_ask_at_the_same_instant_never_overshoot_n_trials(tmp_path, one_thread,
                                                                       monkeypatch):
    """Two workers of one study (threads here, as spawned workers run them), each pausing
    between counting the trials and starting one, so both would count the same number:
    the study still ends with exactly n_trials."""
    count = Worker._trials_so_far

    def slow_count(worker):
        seen = count(worker)
        time.sleep(0.3)  # what a busy machine does between the count and the trial
        return seen

    monkeypatch.setattr(Worker, "_trials_so_far", slow_count)
    cfg = config('[search]\nsampler = "random"\n[search.space]\n'
                 '"optim.lr" = { low = 1e-3, high = 1e-1, log = true }\n')
    storage = f"sqlite:///{tmp_path / 'search.sqlite'}"
    start_study(cfg, storage, "s", str(tmp_path / "ws"))
    events: list[dict] = []
    n_trials = 3  # the two workers' second trials start together, with 2 trials made
    plan = Plan(cfg.to_toml(), storage, "s", str(tmp_path / "ws"), n_trials, 0.0, 0)
    workers = [Worker(plan, events.append, threading.Event()) for _ in range(2)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == n_trials, [t.number for t in study.trials]
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    assert len(events) == n_trials
    with Workspace(tmp_path / "ws") as ws:
        assert sorted(r.trial for r in ws.list_runs()) == list(range(n_trials))


@pytest.mark.slow
def test_search_command_runs_trials_as_workspace_runs(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY + '[search]\nn_trials = 4\nsampler = "random"\npruner = "none"\n'
                    '[search.space]\n"optim.lr" = { low = 1e-3, high = 1e-1, log = true }\n'
                    '"model.hidden" = { choices = [[8], [32, 16]] }\n')
    code = main(["search", str(path), "--workers", "2", "--json",
                 "--workspace", str(tmp_path / "ws")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    trials, (finished,) = lines[:-1], lines[-1:]
    assert sorted(t["number"] for t in trials) == [0, 1, 2, 3]
    assert {t["state"] for t in trials} == {"COMPLETE"}
    assert len({t["run_id"] for t in trials}) == 4
    storage = f"sqlite:///{tmp_path / 'ws' / 'search.sqlite'}"  # the default, in the workspace
    study = optuna.load_study(study_name="tiny", storage=storage)  # named after the file
    assert finished["event"] == "search_finished"
    assert finished["best_trial"] == study.best_trial.number
    assert finished["best_run_id"] == study.best_trial.user_attrs["run_id"]
    with Workspace(tmp_path / "ws") as ws:
        for trial in study.trials:
            run = ws.get_run(trial.user_attrs["run_id"])
            assert (run.study, run.trial, run.status) == ("tiny", trial.number, "completed")
            assert run.config.optim.lr == trial.params["optim.lr"]
            assert str(run.config.model.hidden).replace(" ", "") == \
                trial.params["model.hidden"].replace(" ", "")
            assert run.config.search is None


def test_join_needs_a_study_that_exists(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'other.sqlite'}"
    optuna.create_study(study_name="theirs", storage=storage)
    code = main(["search", "--join", "mine", "--storage", storage,
                 "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "no study 'mine'" in err and "studies there: theirs" in err
    code = main(["search", "--join", "theirs", "--storage", storage,
                 "--workspace", str(tmp_path / "ws")])
    assert code == 1 and "was not started by `torchwork search`" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    ([], "give a CONFIG.toml to start a search, or --join STUDY"),
    (["--join", "s"], "--join needs --storage URL"),
    (["x.toml", "--workers", "0"], "--workers must be at least 1"),
])
def test_search_command_line_errors_are_one_line(tmp_path, capsys, argv, expected):
    assert main(["search", *argv, "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err


def test_a_config_without_search_is_refused(tmp_path, capsys):
    path = tmp_path / "plain.toml"
    path.write_text(TINY)
    assert main(["search", str(path), "--workspace", str(tmp_path / "ws")]) == 2
    assert "has no [search] section" in capsys.readouterr().err


def test_an_unreachable_storage_is_one_line(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY + '[search.space]\n"optim.lr" = { choices = [0.1] }\n')
    code = main(["search", str(path), "--storage", "postgresql://u:secret@127.0.0.1:1/x",
                 "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "cannot open search storage postgresql://u:***@127.0.0.1:1/x" in err
    assert "secret" not in err


@pytest.mark.slow
def test_ctrl_c_stops_the_running_trial_as_a_resumable_run(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sqlalchemy.exc import IntegrityError, OperationalError

    path = tmp_path / "long.toml"
    path.write_text(TINY.replace("epochs = 3", "epochs = 500") + '[search]\nn_trials = 5\n'
                    '[search.space]\n"optim.lr" = { low = 1e-3, high = 1e-1, log = true }\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "app", "search", str(path), "--json",
                             "--workspace", str(tmp_path / "ws")], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = tmp_path / "ws" / "search.sqlite"
    storage = f"sqlite:///{db}"
    deadline, running = time.monotonic() + 120, []
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if not db.exists():
                continue
            try:
                running = [t for t in optuna.load_study(study_name="long", storage=storage).trials
                           if t.state.name == "RUNNING" and "run_id" in t.user_attrs]
            # The command is still making the study (this poll may even race it to create
            # Optuna's tables: the loser's row of alembic_version is refused).
            except (KeyError, OperationalError, IntegrityError):
                running = []
            if running:
                break
        assert running, "no trial started"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopping: the running trials end at their next step" in err
    (trial,) = optuna.load_study(study_name="long", storage=storage).trials
    assert trial.state.name == "FAIL" and "torchwork resume" in trial.user_attrs["error"]
    with Workspace(tmp_path / "ws") as ws:
        run = ws.get_run(trial.user_attrs["run_id"])
    assert run.status == "stopped" and run.checkpoint  # resumable
    assert json.loads(out.splitlines()[-1])["event"] == "search_finished"


@pytest.mark.slow  # a dozen processes, each importing Optuna: seconds each
def test_searches_started_together_on_a_new_storage_all_open_it(tmp_path):
    """Two `torchwork search` commands started at once on a new workspace both create
    Optuna's tables: the loser was refused ('table studies already exists', or a UNIQUE
    alembic_version row) and its search ended before its first trial."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for round_ in range(4):
        url = f"sqlite:///{tmp_path / f'new{round_}.sqlite'}"
        results = ctx.Queue()
        procs = [ctx.Process(target=open_storage_in_a_process, args=(url, results))
                 for _ in range(3)]
        for p in procs:
            p.start()
        got = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert got == ["ok"] * 3

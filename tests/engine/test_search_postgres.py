"""Two workers joined to one study through a real PostgreSQL server, one killed mid-trial."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest

from engine.workspace import Workspace

from .pg_server import postgres_server  # noqa: F401 (the postgres_url fixture)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = '''
[data]
dataset = "digits"
batch_size = 32
[model]
arch = "mlp"
hidden = [64]
[train]
epochs = 30
device = "cpu"
[search]
n_trials = 8
sampler = "random"
pruner = "none"
heartbeat = 1
[search.space]
"optim.lr" = { low = 1e-3, high = 3e-2, log = true }
'''


def torchwork(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "app", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


_storages: dict[str, optuna.storages.RDBStorage] = {}


def trials(url: str) -> list:
    storage = _storages.setdefault(url, optuna.storages.RDBStorage(url))
    try:
        return optuna.load_study(study_name="pg", storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


@pytest.mark.slow
def test_two_workers_share_a_postgres_study_and_survive_a_killed_one(tmp_path, postgres_url):
    path = tmp_path / "pg.toml"
    path.write_text(CONFIG)
    ws = str(tmp_path / "ws")
    first = torchwork("search", str(path), "--storage", postgres_url, "--workspace", ws,
                      "--workers", "1", "--json", start_new_session=True)
    second = None
    try:
        wait_for(lambda: trials(postgres_url), 120, "the first worker's first trial")
        second = torchwork("search", "--join", "pg", "--storage", postgres_url,
                           "--workspace", ws, "--json")

        def first_worker_trial():
            """A trial the first command's worker is training while the joined one trains too."""
            pids = {p.pid for p in psutil.Process(first.pid).children(recursive=True)}
            running = [t for t in trials(postgres_url) if t.state.name == "RUNNING"]
            ours = [t.number for t in running
                    if int(t.user_attrs.get("worker", ":0").split(":")[-1]) in pids]
            return len(running) == 2 and ours and (ours[0],)

        (killed,) = wait_for(first_worker_trial, 120, "both workers training")
        os.killpg(first.pid, signal.SIGKILL)  # the command and its worker, mid-trial
        out, err = second.communicate(timeout=240)
        assert second.returncode == 0, err
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    events = [json.loads(line) for line in out.splitlines()]
    done = [e for e in events if e["event"] == "trial_finished"]
    assert done and all(e["state"] == "COMPLETE" for e in done)  # the joined worker went on
    study = trials(postgres_url)
    assert len(study) == 8  # n_trials, the killed one included
    assert sorted(t.number for t in study) == list(range(8))
    states = {t.number: t.state.name for t in study}
    assert states[killed] == "FAIL"  # marked by the surviving worker after the heartbeat
    assert [n for n, s in states.items() if s != "COMPLETE"] == [killed]
    run_ids = [t.user_attrs["run_id"] for t in study]
    assert len(set(run_ids)) == 8  # no trial trained twice
    with Workspace(ws) as w:
        runs = [r for r in w.list_runs() if r.study == "pg"]
    assert sorted(r.trial for r in runs) == list(range(8))
    assert events[-1]["event"] == "search_finished" and events[-1]["trials"] == 8

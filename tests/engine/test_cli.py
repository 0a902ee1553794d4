"""The headless command: exit codes, JSON events, run listing, resume, and a SIGKILLed run."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.workspace import Workspace

ROOT = Path(__file__).parents[2]


def write_config(tmp_path, cfg, name="run.toml"):
    path = tmp_path / name
    cfg.save(path)
    return path


def events_of(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_run_json_prints_one_event_per_line(tiny_config, tmp_path, workspace_dir, capsys):
    path = write_config(tmp_path, tiny_config())
    assert main(["run", str(path), "--json", "--set", "train.epochs=2"]) == 0
    out = events_of(capsys.readouterr().out)
    kinds = [e["event"] for e in out]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert {"step", "epoch"} <= set(kinds)
    started, finished = out[0], out[-1]
    assert {"run_id", "num_params", "device"} <= set(started)
    step = next(e for e in out if e["event"] == "step")
    assert {"step", "epoch", "loss", "lr", "samples_per_s"} <= set(step)
    epoch = next(e for e in out if e["event"] == "epoch")
    assert {"epoch", "train_loss", "val_loss", "val_accuracy"} <= set(epoch)
    assert 0.0 <= epoch["val_accuracy"] <= 1.0
    assert finished["status"] == "completed" and finished["error"] is None
    assert {"best_val", "best_metric", "steps", "wall_s", "steps_per_s"} <= set(finished)
    with Workspace(workspace_dir) as ws:
        run = ws.get_run(started["run_id"])
        assert run.status == "completed" and run.steps == finished["steps"]
        assert (run.dir / "config.toml").exists() and (run.dir / "checkpoints/last.pt").exists()
        assert list((run.dir / "tb").glob("events.out.tfevents.*"))


def test_progress_bar_mode_reports_epochs_and_result(tiny_config, tmp_path, workspace_dir,
                                                     capsys):
    path = write_config(tmp_path, tiny_config())
    assert main(["run", str(path), "--max-steps", "4"]) == 0
    err = capsys.readouterr().err
    assert "parameters on cpu" in err and "completed:" in err and "4 steps" in err


def test_bad_config_exits_2_with_one_clear_line(tiny_config, tmp_path, workspace_dir, capsys):
    path = write_config(tmp_path, tiny_config())
    assert main(["run", str(path), "--set", "optim.lr=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "torchwork run: optim.lr must be > 0.0 (got -1.0)"
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (workspace_dir / "runs").exists() or not list((workspace_dir / "runs").iterdir())


def test_missing_files_are_named_together_before_a_workspace_is_touched(
        tiny_config, tmp_path, workspace_dir, capsys):
    path = write_config(tmp_path, tiny_config(**{"model.arch": "custom:gone.py",
                                                  "model.init": "gone.safetensors"}))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("torchwork run: model.arch=")
    # both, found where a relative path is looked for: beside the config, else here
    assert f"{Path.cwd() / 'gone.py'} not found" in err
    assert f"{Path.cwd() / 'gone.safetensors'} not found" in err
    assert not workspace_dir.exists()


def test_custom_model_errors_are_config_errors(tiny_config, tmp_path, workspace_dir, capsys):
    (tmp_path / "net.py").write_text("def build_model(input_shape, num_outputs):\n"
                                     "    raise RuntimeError('no layers yet')\n")
    path = write_config(tmp_path, tiny_config(**{"model.arch": "custom:net.py"}))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no layers yet" in err and len(err.strip().splitlines()) == 1


def test_failed_run_exits_1(tiny_config, tmp_path, workspace_dir, capsys, faulty_model):
    arch = faulty_model("if self.training: out = out * float('nan')")
    path = write_config(tmp_path, tiny_config(**{"model.arch": arch}))
    assert main(["run", str(path), "--json"]) == 1
    captured = capsys.readouterr()
    finished = events_of(captured.out)[-1]
    assert finished["status"] == "failed" and "loss became nan at step 1" in finished["error"]
    assert finished["failed_at"] == 1  # the step the error names, for scripts
    assert "failed" in captured.err
    with Workspace(workspace_dir) as ws:
        assert ws.list_runs()[0].status == "failed"


def test_runs_lists_and_resume_continues(tiny_config, tmp_path, workspace_dir, capsys):
    path = write_config(tmp_path, tiny_config(**{"train.epochs": 4}))
    assert main(["run", str(path), "--max-steps", "6", "--json"]) == 0
    run_id = events_of(capsys.readouterr().out)[0]["run_id"]
    assert main(["runs"]) == 0
    table = capsys.readouterr().out
    assert "STATUS" in table and "completed" in table and "moons-mlp" in table
    assert main(["resume", run_id, "--json", "--max-steps", "0"]) == 0
    out = events_of(capsys.readouterr().out)
    assert out[0]["start_step"] == 6
    assert out[-1]["status"] == "completed" and out[-1]["epochs_completed"] == 4
    steps = [e["step"] for e in out if e["event"] == "step"]
    assert steps[0] > 6
    with Workspace(workspace_dir) as ws:
        rows = ws.step_metrics(int(run_id))["step"]
        assert list(rows) == sorted(set(rows))  # no duplicated steps after resume
    assert main(["resume", run_id]) == 1
    assert "already finished" in capsys.readouterr().err
    assert main(["resume", run_id, "--set", "optim.lr=0.5"]) == 2
    assert main(["resume", "999"]) == 2
    assert "no run 999" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_run_leaves_a_readable_workspace(tiny_config, tmp_path, workspace_dir):
    cfg = tiny_config(**{"data.dataset": "synthetic", "data.n_samples": 20000,
                         "train.epochs": 1000, "train.log_every": 5})
    path = write_config(tmp_path, cfg)
    env = {**os.environ, "TORCHWORK_WORKSPACE": str(workspace_dir),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(path), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        epochs = 0
        deadline = time.time() + 120
        for line in proc.stdout:
            epochs += json.loads(line)["event"] == "epoch"
            if epochs >= 2 or time.time() > deadline:
                break
        assert epochs >= 2
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    db = sqlite3.connect(workspace_dir / "workspace.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Workspace(workspace_dir) as ws:
        run = ws.list_runs()[0]
        assert run.status == "interrupted"
        assert len(ws.epoch_metrics(run.id)["val_loss"].value) >= 2
        assert (run.dir / "checkpoints" / "last.pt").exists()
    assert main(["runs"]) == 0

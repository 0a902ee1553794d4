"""A run killed at the worst moments loses nothing: resume finishes it as if never killed.

Each test SIGKILLs a `torchwork run` child at one chosen moment (tests/engine/
kill_child.py), opens the workspace as the next command would, resumes, and
compares what is stored with an uninterrupted run of the same configuration.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.workspace import Workspace

CHILD = Path(__file__).with_name("kill_child.py")
CURVES = ("step", "epoch", "loss", "lr", "grad_norm")


def run_killed(point: str, n: int, config: Path, workspace: Path) -> None:
    proc = subprocess.run([sys.executable, str(CHILD), point, str(n), "--", "run", str(config),
                           "--json", "--workspace", str(workspace)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == -9, f"the child was not killed at {point}: {proc.stderr}"


def stored(workspace: Path, run_id: int) -> tuple[dict, dict]:
    with Workspace(workspace) as ws:
        steps = ws.step_metrics(run_id)
        epochs = {name: (s.epoch.tolist(), s.step.tolist(), s.value.tolist())
                  for name, s in ws.epoch_metrics(run_id).items()}
    return {k: steps[k] for k in CURVES}, epochs


def assert_same_curves(workspace: Path, run_id: int, reference: tuple[dict, dict]) -> None:
    steps, epochs = stored(workspace, run_id)
    ref_steps, ref_epochs = reference
    for name in CURVES:
        np.testing.assert_array_equal(steps[name], ref_steps[name], err_msg=name)
    assert epochs == ref_epochs


@pytest.fixture
def setup(tiny_config, tmp_path, capsys):
    """A config file and the curves of its uninterrupted run (in its own workspace)."""
    config = tmp_path / "run.toml"
    tiny_config(**{"train.epochs": 4}).save(config)
    reference_ws = tmp_path / "reference"
    assert main(["run", str(config), "--workspace", str(reference_ws)]) == 0
    capsys.readouterr()
    return config, tmp_path / "ws", stored(reference_ws, 1)


def resume(workspace: Path, capsys, *extra) -> tuple[int, list[dict], str]:
    code = main(["resume", "1", "--json", "--workspace", str(workspace), *extra])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_a_run_killed_before_it_started_is_interrupted_and_resume_starts_it(setup, capsys):
    config, ws, reference = setup
    run_killed("created", 1, config, ws)
    with Workspace(ws) as w:
        run = w.get_run(1)
        assert run.status == "interrupted"
        assert "before its first step" in run.error and "torchwork resume 1" in run.error
    code, events, err = resume(ws, capsys)
    assert code == 0, err
    assert events[0]["event"] == "run_started" and events[0]["start_step"] == 0
    assert events[-1]["status"] == "completed"
    assert_same_curves(ws, 1, reference)


def test_a_run_killed_after_its_last_checkpoint_is_finished_by_resume(setup, capsys):
    config, ws, reference = setup
    run_killed("finishing", 1, config, ws)
    with Workspace(ws) as w:
        assert w.get_run(1).status == "interrupted"
    code, events, err = resume(ws, capsys)
    assert code == 0, err
    assert not [e for e in events if e["event"] in ("step", "epoch")]  # nothing trained again
    finished = events[-1]
    assert finished["event"] == "run_finished" and finished["status"] == "completed"
    assert finished["epochs_completed"] == 4 and finished["best_val"] is not None
    with Workspace(ws) as w:
        run = w.get_run(1)
        assert run.status == "completed" and run.epochs_completed == 4
        assert run.steps == reference[0]["step"][-1] and run.best_val == finished["best_val"]
        assert run.error is None
        assert "run completed after 4 epochs" in (run.dir / "log.txt").read_text()
    assert_same_curves(ws, 1, reference)
    # A completed run is not trained again without new epochs.
    code, _, err = resume(ws, capsys)
    assert code == 1 and "already finished its 4 epochs" in err


def test_an_early_stopped_run_killed_before_its_end_is_not_trained_further(tiny_config,
                                                                          tmp_path, capsys):
    config, ws = tmp_path / "run.toml", tmp_path / "ws"
    # no improvement counts (min_delta 10): early stopping ends it after 2 of 20 epochs
    tiny_config(**{"train.epochs": 20, "regularization.early_stopping_patience": 1,
                   "regularization.early_stopping_min_delta": 10.0}).save(config)
    run_killed("finishing", 1, config, ws)
    # a setting that does not extend the run leaves it finished
    code, events, err = resume(ws, capsys, "--set", "train.log_every=3")
    assert code == 0, err
    assert not [e for e in events if e["event"] in ("step", "epoch")]
    assert events[-1]["status"] == "completed" and events[-1]["epochs_completed"] == 2


@pytest.mark.parametrize("checkpoint", [1, 3])
def test_a_kill_right_after_a_checkpoint_loses_no_metrics(setup, capsys, checkpoint):
    config, ws, reference = setup
    run_killed("ckpt-renamed", checkpoint, config, ws)
    with Workspace(ws) as w:
        run = w.get_run(1)
        assert run.status == "interrupted"
        assert w.epoch_metrics(1)["val_loss"].epoch.tolist() == list(range(1, checkpoint + 1))
    code, events, err = resume(ws, capsys)
    assert code == 0, err
    assert events[0]["start_step"] > 0
    assert_same_curves(ws, 1, reference)


def test_a_kill_while_writing_a_checkpoint_leaves_no_temporary_file(setup, capsys):
    config, ws, reference = setup
    run_killed("ckpt-write", 2, config, ws)
    checkpoints = ws / "runs"
    assert list(checkpoints.glob("*/checkpoints/*.tmp"))  # what the kill left
    with Workspace(ws) as w:
        assert w.get_run(1).status == "interrupted"
    assert not list(checkpoints.glob("*/checkpoints/*.tmp"))
    code, events, err = resume(ws, capsys)
    assert code == 0, err
    assert_same_curves(ws, 1, reference)

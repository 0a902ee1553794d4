"""A disk that fills during a run: one line, the last good checkpoint kept, resume once freed.

The workspace lives on a small tmpfs; after the second epoch's checkpoint a
file takes the rest of its space, so the third epoch's writes find none.
Mounting needs root and a kernel that allows it; the tests skip otherwise.
"""

import json
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

import engine.workspace.writer as writer_module
from engine.cli import main
from engine.training.checkpoint import load_checkpoint
from engine.workspace import Workspace

CURVES = ("step", "epoch", "loss", "lr", "grad_norm")


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs, unmounted afterwards."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill ({done.stderr.strip()})")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system holding ``folder``.

    Unbuffered: a buffered file kept the tail of its last short write and raised
    ENOSPC again when closed, out of this function (the run then stopped on the
    test's own error, and the test lost track of its filler)."""
    filler = folder / f"filler-{uuid.uuid4().hex}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * (1 << 16))
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def fill_after_checkpoint(monkeypatch):
    """Fill the disk right after the checkpoint of epoch ``n`` is stored."""
    fillers: list[Path] = []

    def arm(n: int):
        real = writer_module.WorkspaceWriter._on_checkpoint

        def on_checkpoint(self, e):
            real(self, e)
            if e.epoch == n and not fillers:
                fillers.append(fill(self.workspace.root))

        monkeypatch.setattr(writer_module.WorkspaceWriter, "_on_checkpoint", on_checkpoint)
        return fillers

    return arm


def test_a_disk_filling_during_a_run_stops_it_and_resume_finishes_it(
        small_disk, tiny_config, tmp_path, capsys, fill_after_checkpoint):
    config = tmp_path / "run.toml"
    tiny_config(**{"train.epochs": 4, "model.hidden": [256, 256]}).save(config)
    assert main(["run", str(config), "--workspace", str(tmp_path / "reference")]) == 0
    capsys.readouterr()
    with Workspace(tmp_path / "reference") as ws:
        reference = ws.step_metrics(1)

    ws_dir = small_disk / "ws"
    fillers = fill_after_checkpoint(2)
    code = main(["run", str(config), "--workspace", str(ws_dir)])
    err = capsys.readouterr().err
    assert code == 130, err  # stopped, resumable
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk full (" in errors[0] and f"free at {ws_dir}" in errors[0]
    assert "torchwork resume 1" in err
    checkpoints = ws_dir / "runs" / "0001-moons-mlp" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["last.pt"]  # no half-written file
    kept = load_checkpoint(checkpoints / "last.pt")
    assert kept["progress"]["epoch"] == 3  # the second epoch's checkpoint, the last good one

    fillers[0].unlink()
    assert main(["resume", "1", "--workspace", str(ws_dir), "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[-1]["status"] == "completed" and out[-1]["epochs_completed"] == 4
    with Workspace(ws_dir) as ws:
        assert ws.get_run(1).status == "completed"
        resumed = ws.step_metrics(1)
    for name in CURVES:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)

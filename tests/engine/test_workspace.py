"""The workspace: runs and folders, the writer fed by Trainer events, readers
following a live run, and surviving a writer killed mid-run."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.config import RunConfig
from engine.training.events import (
    CheckpointSaved,
    EpochEnded,
    ExceptionRaised,
    MetricsLogged,
    RunEnded,
    RunStarted,
)
from engine.workspace import Workspace, WorkspaceError, WorkspaceWriter, default_workspace_dir
from engine.workspace.owner import current_owner, owner_gone

REPO = Path(engine.__file__).resolve().parent.parent


class FakeTrainer:
    """Just the subscription surface of the Trainer: ``on`` and a dispatching ``emit``."""

    def __init__(self):
        self.handlers = defaultdict(list)

    def on(self, event_cls, fn):
        self.handlers[event_cls].append(fn)

    def emit(self, event):
        for fn in self.handlers[type(event)]:
            fn(event)


def started(start_step=0, start_epoch=0):
    return RunStarted(run_id=None, num_params=1234, device="cpu", task="classification",
                      epochs=2, steps_per_epoch=3, total_steps=6, start_step=start_step,
                      start_epoch=start_epoch, metric_names=("val_loss", "val_accuracy"))


def logged(step, epoch):
    return MetricsLogged(step=step, epoch=epoch, loss=1.0 / step, lr=0.01 * step,
                         grad_norm=0.5 + step, samples_per_s=100.0 * step, wall_s=0.1 * step)


def epoch_end(epoch, step):
    return EpochEnded(epoch=epoch, step=step, train_loss=0.5 / epoch, lr=0.01, wall_s=1.0 * epoch,
                      metrics={"val_loss": 0.6 / epoch, "val_accuracy": 0.5 + 0.1 * epoch})


def ended(status="completed", steps=6, epochs=2, error=None, checkpoint=None):
    return RunEnded(status=status, steps=steps, epochs_completed=epochs, wall_s=2.0,
                    steps_per_s=3.0, best_val=0.3, best_metric="val_loss", error=error,
                    checkpoint=checkpoint)


def run_two_epochs(trainer, *, finish=True):
    trainer.emit(started())
    for step in range(1, 7):
        trainer.emit(logged(step, epoch=(step - 1) // 3 + 1))
        if step % 3 == 0:
            trainer.emit(epoch_end(step // 3, step))
    if finish:
        trainer.emit(ended())


@pytest.fixture
def ws(tmp_path):
    with Workspace(tmp_path / "ws") as workspace:
        yield workspace


def recording(ws, **writer_kw):
    run = ws.create_run(RunConfig())
    trainer = FakeTrainer()
    WorkspaceWriter(ws, run, **writer_kw).attach(trainer)
    return run, trainer


def test_runs_are_created_listed_and_found_with_their_folders(ws):
    config = RunConfig()
    config.optim.lr = 0.05
    first = ws.create_run(config)
    custom = RunConfig()
    custom.model.arch = "custom:models/My Net.py"
    second = ws.create_run(custom, name="My Run #2")

    assert (first.name, first.status) == ("digits-mlp", "created")
    assert first.dir == ws.root / "runs" / "0001-digits-mlp"
    assert second.dir.name == "0002-my-run-2"
    assert ws.create_run(custom).name == "digits-my-net"
    assert RunConfig.load(first.dir / "config.toml") == config
    assert (first.dir / "checkpoints").is_dir()
    assert ws.get_run(1).config == config
    assert [r.id for r in ws.list_runs()] == [3, 2, 1]
    assert ws.get_run("2").name == "My Run #2"
    assert ws.get_run("0002-my-run-2").id == 2
    assert ws.get_run(str(second.dir)).id == 2


def test_an_unknown_run_says_how_to_list_the_runs(ws):
    ws.create_run(RunConfig())
    for ref in (12, "12", "0012-nothing"):
        root = re.escape(str(ws.root))
        with pytest.raises(WorkspaceError, match=rf"no run {ref} in workspace {root}: "
                                                 rf"`torchwork runs --workspace {root}`"):
            ws.get_run(ref)


def test_default_workspace_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHWORK_WORKSPACE", str(tmp_path / "mine"))
    assert default_workspace_dir() == tmp_path / "mine"
    monkeypatch.delenv("TORCHWORK_WORKSPACE")
    assert default_workspace_dir().name == "workspace"


def test_writer_stores_metrics_status_tensorboard_and_log(ws):
    run, trainer = recording(ws)
    trainer.emit(started())
    for step in (1, 2, 3):
        trainer.emit(logged(step, 1))
    trainer.emit(epoch_end(1, 3))
    trainer.emit(CheckpointSaved(path=str(run.dir / "checkpoints" / "e1.pt"), epoch=1, step=3,
                                 reason="interval"))
    trainer.emit(ended(steps=3, epochs=1, checkpoint=str(run.dir / "checkpoints" / "last.pt")))

    steps = ws.step_metrics(run.id)
    assert steps["step"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(steps["loss"], [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(steps["samples_per_s"], [100.0, 200.0, 300.0])
    epochs = ws.epoch_metrics(run.id)
    assert set(epochs) == {"train_loss", "lr", "val_loss", "val_accuracy"}
    assert epochs["val_accuracy"].epoch.tolist() == [1]
    np.testing.assert_allclose(epochs["val_loss"].value, [0.6])

    record = ws.get_run(run.id)
    assert record.status == "completed"
    assert (record.steps, record.epochs_completed, record.wall_s) == (3, 1, 2.0)
    assert (record.num_params, record.device) == (1234, "cpu")
    assert (record.best_val, record.best_metric) == (0.3, "val_loss")
    assert record.checkpoint.endswith("last.pt")
    assert record.started_at and record.ended_at and record.error is None

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run.dir / "tb"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3]
    np.testing.assert_allclose([e.value for e in loss], [1.0, 0.5, 1 / 3], rtol=1e-6)
    assert acc.Scalars("val/accuracy")[0].value == pytest.approx(0.6)
    assert acc.Scalars("epoch/train_loss")[0].step == 3

    log = (run.dir / "log.txt").read_text()
    assert "started on cpu: 1,234 parameters" in log
    assert "epoch 1  step 3  train_loss 0.5  val_loss 0.6  val_accuracy 0.6" in log
    assert "checkpoint (interval) at epoch 1, step 3" in log
    assert "run completed after 1 epochs, 3 steps" in log


def test_an_exception_is_logged_with_its_traceback_and_the_run_fails(ws):
    run, trainer = recording(ws)
    trainer.emit(started())
    trainer.emit(ExceptionRaised(step=2, epoch=1, kind="nan", message="loss became NaN: lower lr",
                                 traceback="Traceback (most recent call last):\n  boom"))
    trainer.emit(ended(status="failed", steps=2, epochs=0, error="loss became NaN: lower lr"))

    record = ws.get_run(run.id)
    assert (record.status, record.error) == ("failed", "loss became NaN: lower lr")
    log = (run.dir / "log.txt").read_text()
    assert "nan error at epoch 1, step 2: loss became NaN: lower lr" in log
    assert "    Traceback (most recent call last):" in log
    assert "run failed after 0 epochs" in log


def test_wal_reader_follows_a_running_run(ws):
    assert ws._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run, trainer = recording(ws, flush_interval_s=0.0)
    trainer.emit(started())
    trainer.emit(logged(1, 1))
    trainer.emit(logged(2, 1))

    with Workspace(ws.root) as reader:
        assert reader.get_run(run.id).status == "running"  # its process (this one) is alive
        assert reader.step_metrics(run.id)["step"].tolist() == [1, 2]
        trainer.emit(logged(3, 1))
        assert reader.step_metrics(run.id, after_step=2)["step"].tolist() == [3]


def test_step_rows_wait_for_the_flush_interval_or_the_epoch_end(ws):
    run, trainer = recording(ws, flush_interval_s=3600.0)
    trainer.emit(started())
    for step in (1, 2, 3):
        trainer.emit(logged(step, 1))
    with Workspace(ws.root) as reader:
        assert reader.step_metrics(run.id)["step"].size == 0
        trainer.emit(epoch_end(1, 3))
        assert reader.step_metrics(run.id)["step"].tolist() == [1, 2, 3]
        assert reader.get_run(run.id).epochs_completed == 1


def test_truncate_after_drops_later_rows(ws):
    run, trainer = recording(ws)
    run_two_epochs(trainer)
    ws.truncate_after(run.id, 3)
    assert ws.step_metrics(run.id)["step"].tolist() == [1, 2, 3]
    assert ws.epoch_metrics(run.id)["train_loss"].epoch.tolist() == [1]


def test_a_resumed_run_drops_what_came_after_its_checkpoint(ws):
    run, trainer = recording(ws)
    run_two_epochs(trainer, finish=False)  # killed in epoch 2, resumed from step 3
    resumed = FakeTrainer()
    WorkspaceWriter(ws, run).attach(resumed)
    resumed.emit(started(start_step=3, start_epoch=1))
    for step in (4, 5):
        resumed.emit(logged(step, 2))
    resumed.emit(ended(status="stopped", steps=5, epochs=1))  # stopped before the old end
    assert ws.step_metrics(run.id)["step"].tolist() == [1, 2, 3, 4, 5]
    assert ws.epoch_metrics(run.id)["val_loss"].epoch.tolist() == [1]
    assert "resumed at step 3 (epoch 1)" in (run.dir / "log.txt").read_text()


def test_a_failed_write_raises_rolls_back_and_keeps_rows_for_a_retry(ws):
    run, trainer = recording(ws, flush_interval_s=3600.0)
    trainer.emit(started())
    for step in range(1, 2001):
        trainer.emit(logged(step, 1))
    pages = ws._conn.execute("PRAGMA page_count").fetchone()[0]
    ws._conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full

    with pytest.raises(WorkspaceError, match=r"disk full \(\d+ MB free at .*\): free some"):
        trainer.emit(epoch_end(1, 2000))
    other = sqlite3.connect(ws.db_path, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # the lock was released
    other.rollback()
    other.close()
    assert ws.step_metrics(run.id)["step"].size == 0  # nothing half-written

    ws._conn.execute("PRAGMA max_page_count = 1073741823")
    trainer.emit(ended(steps=2000, epochs=0))
    assert ws.step_metrics(run.id)["step"].size == 2000
    assert ws.get_run(run.id).status == "completed"


def test_delete_run_removes_it_but_not_while_it_trains(ws):
    run = ws.create_run(RunConfig())
    ws.mark_running(run.id)
    with pytest.raises(WorkspaceError, match="still running .* stop it before deleting"):
        ws.delete_run(run.id)
    ws.finish_run(run.id, "stopped")
    ws.delete_run(run.dir.name)
    assert not run.dir.exists() and ws.list_runs() == []
    assert ws.create_run(RunConfig()).id == 2  # ids are never reused


def test_a_newer_or_foreign_database_is_refused_with_advice(tmp_path):
    Workspace(tmp_path / "new").close()
    with closing(sqlite3.connect(tmp_path / "new" / "workspace.sqlite")) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(WorkspaceError, match="newer Torchwork .* upgrade Torchwork"):
        Workspace(tmp_path / "new")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "workspace.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(WorkspaceError, match="move the file away"):
        Workspace(tmp_path / "junk")


def test_owner_liveness_checks_pid_host_and_create_time():
    me = current_owner()
    assert not owner_gone(me.pid, me.hostname, me.created)
    assert owner_gone(me.pid, me.hostname, me.created - 100)  # the pid was reused
    assert not owner_gone(me.pid, "another-host", me.created - 100)  # cannot tell from here
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    assert owner_gone(int(done.stdout), me.hostname, me.created)


CHILD = r"""
import sys
from engine.config import RunConfig
from engine.workspace import Workspace

ws = Workspace(sys.argv[1])
run = ws.create_run(RunConfig(), name="doomed")
ws.mark_running(run.id, num_params=10, device="cpu")
step = 0
while True:
    step += 1
    ws.add_step_metrics(run.id, [(step, 1, 1.0 / step, 0.001, 0.5, 100.0, 0.01 * step)])
    if step == 50:
        print(run.id, flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_writer_killed_with_sigkill_leaves_a_readable_interrupted_run(tmp_path):
    root = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (
        str(REPO), os.environ.get("PYTHONPATH"))))}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip(), f"child failed: {child.stderr.read()}"
        run_id = int(line)
        with Workspace(root) as reader:  # alive: left alone
            assert reader.get_run(run_id).status == "running"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()

    with closing(sqlite3.connect(root / "workspace.sqlite")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Workspace(root) as ws:
        record = ws.get_run(run_id)
        steps = ws.step_metrics(run_id)["step"]
    assert record.status == "interrupted"
    assert f"pid {child.pid}" in record.error and "resume" in record.error
    assert steps.size >= 50 and steps.tolist() == list(range(1, steps.size + 1))
    assert record.steps == steps.size

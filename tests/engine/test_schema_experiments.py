"""Schema 5: a workspace records pruned search trials, their study and trial number, notes,
tags and a trash; a workspace of schema 4 migrates in place without losing a metric."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from engine.workspace import Workspace
from engine.workspace.schema import SCHEMA_VERSION

from .old_schema import old_workspace


def test_a_schema_4_workspace_migrates_and_keeps_its_runs_and_metrics(tmp_path, tiny_config):
    folder = tmp_path / "ws"
    old_workspace(folder, 4, tiny_config().to_toml(), statements=[
        "INSERT INTO epoch_metrics VALUES (1, 0, 10, 'val_accuracy', 0.9)",
        "INSERT INTO step_metrics (run_id, step, epoch, loss) VALUES (1, 10, 0, 0.3)"])
    with Workspace(folder) as ws:
        (run,) = ws.list_runs()
        assert (run.name, run.status, run.study, run.trial, run.notes) == (
            "old", "completed", None, None, None)
        assert ws.epoch_metrics(run.id)["val_accuracy"].value.tolist() == [0.9]
        assert ws.step_metrics(run.id)["loss"].tolist() == [0.3]
        ws.finish_run(run.id, "pruned", study="digits-tpe", trial=4, notes="stopped by median")
        again = ws.get_run(run.id)
        assert (again.status, again.study, again.trial, again.notes) == (
            "pruned", "digits-tpe", 4, "stopped by median")
        # the widened check still refuses a status that is not one
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
            ws._update(run.id, "status = ?", ("bogus",))
    with closing(sqlite3.connect(folder / "workspace.sqlite")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert "run_tags" in {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_workspace_takes_a_pruned_trial(tmp_path, tiny_config):
    with Workspace(tmp_path / "ws") as ws:
        run = ws.create_run(tiny_config(), "trial-0")
        ws.finish_run(run.id, "pruned", study="s", trial=0)
        assert ws.get_run(run.id).status == "pruned"
        assert ws.recover_interrupted() == []  # a pruned run is final, not a dead one

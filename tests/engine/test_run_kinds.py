"""A workspace knows each run's kind: profile captures are kept but not listed as trained runs."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from engine.cli import main
from engine.workspace import Workspace
from engine.workspace.schema import SCHEMA_VERSION

from .old_schema import old_workspace


def test_profile_runs_are_kept_marked_and_left_out_of_the_trained_runs(tmp_path, tiny_config):
    with Workspace(tmp_path / "ws") as ws:
        trained = ws.create_run(tiny_config(), "digits")
        capture = ws.create_run(tiny_config(), "capture", kind="profile")
        assert ws.get_run(capture.id).kind == "profile" and ws.get_run(trained.id).kind == "train"
        assert [r.id for r in ws.list_runs()] == [capture.id, trained.id]
        assert [r.id for r in ws.list_runs(kind="train")] == [trained.id]
        assert [r.id for r in ws.list_runs(kind="profile")] == [capture.id]
        with pytest.raises(ValueError, match="run kind must be one of train, profile"):
            ws.create_run(tiny_config(), "odd", kind="sweep")


def test_an_old_workspace_is_migrated_and_its_profile_runs_marked(tmp_path, tiny_config):
    """A workspace written before run kinds (schema 2): `torchwork profile` named its runs
    profile-<dataset>-<arch>; they become profile runs, every other run a trained one."""
    folder = tmp_path / "old"
    old_workspace(folder, 2, tiny_config().to_toml(),
                  names=("moons-mlp", "profile-moons-mlp", "profiled-by-hand"))
    with Workspace(folder) as ws:
        kinds = {r.name: r.kind for r in ws.list_runs()}
    assert kinds == {"moons-mlp": "train", "profile-moons-mlp": "profile",
                     "profiled-by-hand": "train"}
    with closing(sqlite3.connect(folder / "workspace.sqlite")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_torchwork_runs_shows_and_filters_the_kind(tmp_path, tiny_config, capsys):
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        ws.create_run(tiny_config(), "trained")
        ws.create_run(tiny_config(), "captured", kind="profile")
    assert main(["runs", "--workspace", str(folder)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "KIND", "STATUS"]
    assert [row.split()[:3] for row in rows] == [["2", "captured", "profile"],
                                                 ["1", "trained", "train"]]
    assert main(["runs", "--kind", "train", "--json", "--workspace", str(folder)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["kind"]) for r in listed] == [("trained", "train")]

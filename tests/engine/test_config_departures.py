"""Schema 7: each run's flat config departures are stored when the run is created, equal to
what parsing its TOML gives, so a table of runs reads them with its rows; runs of an older
workspace (none stored) keep the parse path; departures from another version's defaults
are rebased onto this one's."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from engine.config import RunConfig
from engine.experiments.space import trial_config
from engine.workspace import Workspace
from engine.workspace import config_columns as cc
from engine.workspace.config_columns import ConfigColumns
from engine.workspace.schema import SCHEMA_VERSION

from .old_schema import old_workspace

EPOCH_ROW = "INSERT INTO epoch_metrics VALUES (1, 0, 10, 'val_accuracy', 0.9)"

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _configs(tiny_config) -> dict[str, RunConfig]:
    out = {p.stem: RunConfig.load(p, validate=False) for p in sorted(EXAMPLES.glob("*.toml"))}
    search = out["digits-cnn-search"]
    for n, values in enumerate([{"optim.lr": 0.0123, "data.batch_size": 128},
                                {"model.hidden": [128, 64], "model.dropout": 0.3},
                                {"optim.name": "sgd", "optim.lr": 0.1, "model.channels": [16]}]):
        out[f"trial-{n}"] = trial_config(search, values)
    out["augment"] = tiny_config(**{"augment.enabled": True, "augment.rotation": 25.0,
                                    "augment.hflip": 0.0})
    out["custom"] = tiny_config(**{"model.arch": "custom:" + str(EXAMPLES /
                                                               "advisor_item_model.py")})
    return out


def _stored(ws) -> dict[int, str | None]:
    return dict(ws._query("SELECT id, config_departures FROM runs"))


def test_the_departures_stored_at_creation_equal_what_parsing_the_config_gives(
        tmp_path, tiny_config):
    configs = _configs(tiny_config)
    assert {"images-folder", "advisor-item-sync", "trial-0", "augment", "custom"} <= set(configs)
    with Workspace(tmp_path / "ws") as ws:
        runs = {ws.create_run(cfg, name).id: name for name, cfg in configs.items()}
        stored = _stored(ws)
        tomls = ws.config_tomls(list(runs))
        parsed = ConfigColumns(tmp_path / "elsewhere")  # no cache: every TOML parsed
        parsed.add(tomls.items())
        read = ConfigColumns(tmp_path / "elsewhere")
        assert read.add_stored(stored.items(), ws.config_defaults) == []  # none parsed
    for run_id, name in runs.items():
        assert read._sparse[run_id] == parsed._sparse[run_id], name
        assert stored[run_id] is not None, name
    # what a table shows: the same differing columns and the same cells
    keys = parsed.differing()
    assert {"optim.lr", "augment.enabled", "model.arch", "model.hidden"} <= set(keys)
    assert read.differing() == keys
    assert [read.row(i, keys) for i in runs] == [parsed.row(i, keys) for i in runs]
    custom = next(i for i, n in runs.items() if n == "custom")
    assert read.value(custom, "model.arch").endswith("advisor_item_model.py")


def test_a_resumed_run_whose_config_changes_stores_its_new_departures(tmp_path, tiny_config):
    with Workspace(tmp_path / "ws") as ws:
        run = ws.create_run(tiny_config(**{"optim.lr": 0.01}))
        ws.update_run(run.id, config_toml=tiny_config(**{"optim.lr": 0.02}).to_toml())
        data = orjson.loads(_stored(ws)[run.id])
    assert data["departures"]["optim.lr"] == 0.02


def test_create_run_stays_cheap(tmp_path, tiny_config):
    """Storing a run's departures costs well under parsing its whole config once (only the
    entries that differ from the defaults are parsed), itself a fraction of create_run."""
    import time

    import tomllib

    toml = tiny_config(**{"optim.lr": 0.02, "model.hidden": [64, 32]}).to_toml()

    def fastest(work) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(50):
                work(toml)
            best = min(best, time.perf_counter() - start)
        return best

    fastest(cc.stored_departures)
    assert fastest(cc.stored_departures) < 0.7 * fastest(tomllib.loads)


def test_departures_from_another_versions_defaults_are_rebased_onto_this_ones(
        tmp_path, tiny_config):
    """A workspace written by a Torchwork with other defaults (an option it lacked, another
    default lr): its stored departures read as parsing the TOML with today's defaults."""
    defaults, _ = cc._defaults()
    old_defaults = {k: v for k, v in defaults.items() if k != "train.epochs"}
    old_defaults["optim.lr"] = 0.5
    old_defaults["gone.option"] = 3
    old_fp = 12345
    tomls = {1: tiny_config(**{"optim.lr": 0.5}).to_toml(),  # the old default: no departure
             2: tiny_config(**{"optim.lr": 0.01, "model.hidden": [8]}).to_toml(),
             3: tiny_config().to_toml().replace("epochs = ", "# epochs = "),  # lacks a key
             4: tiny_config().to_toml() + "\n[gone]\noption = 4\n"}
    stored = {i: orjson.dumps({"defaults": old_fp, "departures": ConfigColumns.departures_from(
        old_defaults, toml)}).decode() for i, toml in tomls.items()}
    assert "optim.lr" not in orjson.loads(stored[1])["departures"]
    read = ConfigColumns(tmp_path)
    assert read.add_stored(stored.items(),
                           lambda: {old_fp: orjson.dumps(old_defaults).decode()}) == []
    parsed = ConfigColumns(tmp_path / "other")
    parsed.add(tomls.items())
    for i in tomls:
        assert read._sparse[i] == parsed._sparse[i], i
    assert read.value(1, "optim.lr") == 0.5 and read.value(3, "train.epochs") is cc.MISSING
    # defaults the workspace does not hold, or a damaged value: those runs are parsed
    assert ConfigColumns(tmp_path).add_stored([(1, stored[1]), (2, "{bad"), (3, None)],
                                              dict) == [1, 2, 3]


def test_a_schema_6_workspace_migrates_and_its_old_runs_still_show_their_columns(
        tmp_path, tiny_config):
    folder = tmp_path / "ws"
    old_workspace(folder, 6, tiny_config(**{"optim.lr": 0.007}).to_toml(), statements=[EPOCH_ROW])
    with Workspace(folder) as ws:
        (old,) = ws.list_runs()
        assert ws.epoch_metrics(old.id)["val_accuracy"].value.tolist() == [0.9]
        assert _stored(ws) == {old.id: None}  # created before: parsed when listed
        new = ws.create_run(tiny_config(**{"optim.lr": 0.2}), "new")
        assert _stored(ws)[new.id] is not None
        cc._memory.clear()
        columns = ConfigColumns.of_runs(ws, ws.list_runs())
    with closing(sqlite3.connect(folder / "workspace.sqlite")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert columns.differing() == ["optim.lr"]
    assert (columns.value(old.id, "optim.lr"), columns.value(new.id, "optim.lr")) == (0.007, 0.2)
    assert columns.cached(old.id) and not columns.cached(new.id)  # parsed + cached: the old


@pytest.mark.parametrize("command", ["runs", "compare"])
def test_the_command_line_reads_the_stored_departures_and_parses_only_older_runs(
        tmp_path, tiny_config, capsys, command, monkeypatch):
    from engine.cli import main

    folder = tmp_path / "ws"
    old_workspace(folder, 6, tiny_config(**{"optim.lr": 0.007}).to_toml(), statements=[EPOCH_ROW])
    monkeypatch.setenv("TORCHWORK_WORKSPACE", str(folder))
    with Workspace(folder) as ws:
        a = ws.create_run(tiny_config(**{"optim.lr": 0.01}), "a").id
        b = ws.create_run(tiny_config(**{"optim.lr": 0.03}), "b").id
    parsed = []
    departures = ConfigColumns._departures

    def counted(self, toml):
        parsed.append(toml)
        return departures(self, toml)

    monkeypatch.setattr(ConfigColumns, "_departures", counted)
    argv = ["runs", "--columns", "name,optim.lr", "--json"] if command == "runs" else [
        "compare", "1", str(a), str(b)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0.03" in out and "0.01" in out and "0.007" in out
    assert len(parsed) == 1  # the run created before schema 7 alone

"""The runs catalogue: tags, notes, a trash every list respects, SQL filters, flat config
columns (cached), and `torchwork runs --filter/--sort/--columns/--json`, `compare`, `trash`."""

from __future__ import annotations

import json
import os

import pytest

from engine.cli import main
from engine.workspace import Workspace, WorkspaceError
from engine.workspace import config_columns as cc
from engine.workspace.config_columns import ConfigColumns


def _runs(ws, tiny, specs):
    """Runs made from (name, status, overrides, {metric: [values per epoch]})."""
    ids = []
    for name, status, overrides, metrics in specs:
        run = ws.create_run(tiny(**overrides), name)
        for metric, values in metrics.items():
            for epoch, v in enumerate(values):
                ws.add_epoch_metrics(run.id, epoch, epoch * 10, {metric: v})
        if status != "created":
            ws.mark_running(run.id)
            if status != "running":
                ws.finish_run(run.id, status, wall_s=10.0, steps=50)
        ids.append(run.id)
    return ids


@pytest.fixture
def three(workspace_dir, tiny_config):
    with Workspace(workspace_dir) as ws:
        ids = _runs(ws, tiny_config, [
            ("alpha", "completed", {"optim.lr": 0.001}, {"val_accuracy": [0.8, 0.95, 0.93]}),
            ("beta", "failed", {"optim.lr": 0.05}, {"val_accuracy": [0.5, 0.6]}),
            ("gamma-mnist", "completed", {"optim.lr": 0.001, "model.hidden": [32, 16]},
             {"val_accuracy": [0.7, 0.85], "val_loss": [0.9, 0.4], "lr": [0.001, 0.0005]}),
        ])
        ws.set_tags(ids[0], ["baseline", " best "])
        ws.set_notes(ids[2], "Tried a wider MLP")
    return ids


def test_tags_notes_and_sql_filters(workspace_dir, three):
    a, b, c = three
    with Workspace(workspace_dir) as ws:
        assert ws.tags_of(a) == ["baseline", "best"]
        assert ws.all_tags() == {a: ["baseline", "best"]}
        assert [r.id for r in ws.list_runs(status="completed")] == [c, a]
        assert [r.id for r in ws.list_runs(status=["failed", "completed"])] == [c, b, a]
        assert [r.id for r in ws.list_runs(tag="baseline")] == [a]
        assert [r.id for r in ws.list_runs(text="WIDER")] == [c]  # notes, any case
        assert [r.id for r in ws.list_runs(text="mnist")] == [c]  # name
        assert ws.list_runs(text="100%") == []  # a wildcard character is literal
        ws.update_run(b, study="s1", trial=0)
        assert [r.id for r in ws.list_runs(study="s1")] == [b]
        ws.set_tags(a, [])
        assert ws.tags_of(a) == [] and ws.list_runs(tag="baseline") == []
        with pytest.raises(WorkspaceError, match="without a comma"):
            ws.set_tags(a, ["a,b"])
        ws.rename_run(a, "renamed")
        assert ws.get_run(a).name == "renamed"


def test_trash_hides_restores_refuses_a_live_run_and_empties(workspace_dir, three, tiny_config):
    a, b, c = three
    with Workspace(workspace_dir) as ws:
        folder = ws.get_run(b).dir
        ws.trash_run(b)
        assert [r.id for r in ws.list_runs()] == [c, a]  # hidden from every list
        assert [r.id for r in ws.list_runs(include_trashed="only")] == [b]
        assert len(ws.list_runs(include_trashed=True)) == 3
        assert ws.get_run(b).trashed_at  # still opens by id
        ws.restore_run(b)
        assert [r.id for r in ws.list_runs()] == [c, b, a]
        live = ws.create_run(tiny_config(), "live")
        ws.mark_running(live.id)  # this process: alive
        with pytest.raises(WorkspaceError, match="still running"):
            ws.trash_run(live.id)
        ws.trash_run(b)
        assert ws.empty_trash() == [b]
        assert not folder.exists()
        with pytest.raises(WorkspaceError, match=f"no run {b}"):
            ws.get_run(b)
        assert ws.empty_trash() == []


def test_config_columns_show_what_differs_and_survive_a_new_process(workspace_dir, three,
                                                                     monkeypatch):
    a, b, c = three
    with Workspace(workspace_dir) as ws:
        runs = ws.list_runs()
        cols = ConfigColumns(ws.root, runs)
        assert cols.differing() == ["model.hidden", "optim.lr"]
        assert cols.differing([a, c]) == ["model.hidden"]
        assert cols.value(c, "model.hidden") == (32, 16) and cols.value(a, "optim.lr") == 0.001
        assert cc.show_value(cols.value(c, "model.hidden")) == "[32, 16]"
        assert (workspace_dir / cc.CACHE_FILE).exists()
        cc._memory.clear()  # as a fresh process: the file answers, nothing is parsed again

        def no_parse(_text):
            raise AssertionError("parsed a cached run's TOML")

        monkeypatch.setattr(cc.tomllib, "loads", no_parse)
        assert ConfigColumns(ws.root, runs).differing() == ["model.hidden", "optim.lr"]
        # a run whose stored config changed is parsed again (its checksum differs)
        monkeypatch.undo()
        ws.update_run(a, config_toml=runs[-1].config_toml.replace("0.001", "0.002"))
        fresh = ConfigColumns(ws.root, ws.list_runs())
        assert fresh.value(a, "optim.lr") == 0.002


def test_a_damaged_cache_file_is_rebuilt(workspace_dir, three):
    with Workspace(workspace_dir) as ws:
        (workspace_dir / "cache").mkdir(exist_ok=True)
        (workspace_dir / cc.CACHE_FILE).write_text("{not json")
        cc._memory.clear()
        assert ConfigColumns(ws.root, ws.list_runs()).differing() == ["model.hidden", "optim.lr"]
        assert json.loads((workspace_dir / cc.CACHE_FILE).read_text())["runs"]


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_filter_sort_columns_json(workspace_dir, three, capsys):
    a, b, c = three
    rows = _json(capsys, ["runs", "--json", "--filter", "status=completed"])
    assert [r["id"] for r in rows] == [c, a] and rows[1]["tags"] == "baseline,best"
    # the config keys that differ between the listed runs come as columns by default
    assert rows[0]["model.hidden"] == [32, 16] and "optim.lr" not in rows[0]
    assert main(["runs"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:6] == ["ID", "NAME", "KIND", "STATUS", "model.hidden", "optim.lr"]
    assert lines[0].split()[4:7] == ["[32,", "16]", "0.001"]
    rows = _json(capsys, ["runs", "--json", "--filter", "val_accuracy>0.9"])
    assert [r["id"] for r in rows] == [a]  # the last value: 0.93
    rows = _json(capsys, ["runs", "--json", "--filter", "optim.lr<0.01",
                          "--filter", "tag=baseline"])
    assert [r["id"] for r in rows] == [a]
    rows = _json(capsys, ["runs", "--json", "--sort", "val_accuracy:desc",
                          "--columns", "name,val_accuracy,optim.lr,model.hidden"])
    assert rows == [{"name": "alpha", "val_accuracy": 0.93, "optim.lr": 0.001,
                     "model.hidden": [16]},
                    {"name": "gamma-mnist", "val_accuracy": 0.85, "optim.lr": 0.001,
                     "model.hidden": [32, 16]},
                    {"name": "beta", "val_accuracy": 0.6, "optim.lr": 0.05,
                     "model.hidden": [16]}]
    rows = _json(capsys, ["runs", "--json", "--sort", "val_loss", "--columns", "id"])
    assert [r["id"] for r in rows] == [c, b, a]  # runs without a value come last
    assert main(["runs", "--filter", "text~mnist", "--columns", "id,name,steps_per_s"]) == 0
    table = capsys.readouterr().out
    assert "gamma-mnist" in table and "alpha" not in table and "STEPS_PER_S" in table


@pytest.mark.parametrize("argv, says", [
    (["--filter", "val_accuracy"], "bad filter 'val_accuracy': use KEY=VALUE"),
    (["--filter", "nosuch>1"], "in filter 'nosuch>1', key 'nosuch' is not a run field"),
    (["--sort", "name:up"], "bad sort 'name:up'"),
    (["--columns", "id,optim.nope"], "column 'optim.nope' is not a run field"),
])
def test_a_bad_filter_is_one_line_naming_it(workspace_dir, three, capsys, argv, says):
    assert main(["runs", *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_compare_prints_differing_keys_and_metrics(workspace_dir, three, capsys):
    a, b, c = three
    result = _json(capsys, ["compare", str(a), str(c), "--json"])
    assert result["config"] == {"model.hidden": [[16], [32, 16]]}
    assert result["metrics"]["val_accuracy"] == {"last": [0.93, 0.85], "best": [0.95, 0.85]}
    assert result["metrics"]["val_loss"] == {"last": [None, 0.4], "best": [None, 0.4]}
    assert result["metrics"]["lr"] == {"last": [None, 0.0005]}  # a setting has no best
    assert main(["compare", str(a), str(c)]) == 0
    out = capsys.readouterr().out
    assert "lr last" in out and "lr best" not in out and "val_loss best" in out
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "optim.lr" in out and "0.05" in out and "model.hidden" not in out
    assert main(["compare", str(a), "999"]) == 2
    assert "no run 999" in capsys.readouterr().err


def test_trash_command(workspace_dir, three, capsys):
    a, b, c = three
    assert main(["trash", str(b)]) == 0
    assert "moved to the trash: " in capsys.readouterr().out
    assert [r["id"] for r in _json(capsys, ["runs", "--json"])] == [c, a]
    assert [r["id"] for r in _json(capsys, ["runs", "--json", "--trash"])] == [b]
    assert main(["trash", str(b), "--restore"]) == 0
    assert main(["trash", str(b)]) == 0
    capsys.readouterr()
    assert main(["trash", "--empty"]) == 0
    assert f"deleted 1 trashed run(s): {b}" in capsys.readouterr().out
    assert main(["trash"]) == 2
    assert not any(p.name.startswith(f"{b:04d}-") for p in os.scandir(workspace_dir / "runs"))


def _whole(cols, toml):
    return cols._departures_whole(toml)


@pytest.mark.parametrize("seed", range(4))
def test_reading_only_the_entries_that_differ_equals_parsing_the_whole_config(
        seed, tmp_path, tiny_config):
    import random

    rng = random.Random(seed)
    cols = ConfigColumns(tmp_path)
    for _ in range(40):
        cfg = tiny_config(**{
            "optim.lr": 10 ** rng.uniform(-5, -1),
            "model.hidden": rng.choice([[16], [128, 64], [256, 128, 64]]),
            "data.batch_size": rng.choice([8, 32, 256]),
            "augment.enabled": rng.random() < 0.5,
            "model.freeze": rng.choice([[], [0, 2]]),
        })
        toml = cfg.to_toml()
        if rng.random() < 0.3:  # an older version's config: a section it did not have
            toml = toml.replace("[distill]", "[old_section]\nkept = 1\n[distill]")
            toml = toml.replace('teacher = ""\n', "")
        assert cols._departures(toml) == _whole(cols, toml)
    # text with brackets and quotes inside strings, an array of tables: still the same
    odd = tiny_config().to_toml().replace('target = ""', 'target = "a]b[\\" = c"')
    assert cols._departures(odd) == _whole(cols, odd)
    assert cols._departures(odd)["data.target"] == 'a]b[" = c'
    tables = tiny_config().to_toml() + "\n[[extra]]\nx = 1\n"
    assert cols._departures(tables) == _whole(cols, tables)

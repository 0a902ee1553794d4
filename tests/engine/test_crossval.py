"""Cross-validation: disjoint stratified folds, each an ordinary run of one group, and the
group's mean and standard deviation per metric."""

import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest

from engine.cli import main
from engine.config import ConfigError, RunConfig
from engine.data import load_dataset
from engine.data.folds import fold_indices
from engine.run_builder import build_trainer
from engine.workspace import Workspace

from .old_schema import old_workspace


def test_stratified_folds_are_disjoint_cover_every_row_and_keep_class_shares():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    vals = [fold_indices(y, None, 5, fold, seed=3)[1] for fold in range(5)]
    assert sorted(np.concatenate(vals).tolist()) == list(range(100))  # each row once
    for fold, val in enumerate(vals):
        train, again = fold_indices(y, None, 5, fold, seed=3)
        assert np.array_equal(again, val) and not set(train) & set(val)
        assert len(train) + len(val) == 100
        assert np.bincount(y[val]).tolist() == [10, 6, 4]  # a fifth of each class
    assert not np.array_equal(fold_indices(y, None, 5, 0, seed=4)[1], vals[0])


def test_group_folds_keep_each_group_on_one_side():
    y = np.arange(40) % 2
    groups = np.arange(40) // 4  # ten groups of four rows
    for fold in range(5):
        train, val = fold_indices(y, groups, 5, fold, seed=0)
        assert not set(groups[train]) & set(groups[val]) and len(set(groups[val])) == 2


def test_folds_the_data_cannot_make_are_refused():
    with pytest.raises(ConfigError, match=r"train.cv_folds=5 needs at least 5 samples of every "
                                          r"class \(one per fold\), but class 1 has 3"):
        fold_indices(np.array([0] * 10 + [1] * 3), None, 5, 0, seed=0)
    with pytest.raises(ConfigError, match="needs at least 4 groups of data.group_column"):
        fold_indices(np.zeros(9), np.arange(9) // 3, 4, 0, seed=0)


def moons(**overrides) -> RunConfig:
    cfg = RunConfig()
    for key, value in {"data.dataset": "moons", "data.n_samples": 120, "data.standardize": False,
                       "model.hidden": [8], "train.epochs": 2, "train.device": "cpu",
                       "train.cv_folds": 3, **overrides}.items():
        cfg.set(key, value)
    cfg.validate()
    return cfg


def rows(x) -> set:
    return {tuple(r) for r in x.numpy().round(6).tolist()}


def test_each_fold_run_validates_on_its_own_third_of_the_data():
    bundles = [load_dataset(moons(**{"train.cv_fold": fold})) for fold in (1, 2, 3)]
    vals = [rows(b.x_val) for b in bundles]
    assert [len(v) for v in vals] == [40, 40, 40]
    assert not (vals[0] & vals[1]) and not (vals[1] & vals[2]) and not (vals[0] & vals[2])
    assert rows(bundles[0].x_train) == vals[1] | vals[2]
    assert [int(b.y_val.sum()) for b in bundles] == [20, 20, 20]  # stratified: half each


def test_the_options_are_checked_and_a_group_is_not_trained_as_one_run():
    with pytest.raises(ConfigError, match="train.cv_folds must be 0 .* or at least 2"):
        moons(**{"train.cv_folds": 1})
    with pytest.raises(ConfigError, match="train.cv_fold must be 0 .* or 1 to train.cv_folds=3 "
                                          r"\(got 4\)"):
        moons(**{"train.cv_fold": 4})
    with pytest.raises(ConfigError, match="train.cv_folds=3 trains a group of runs"):
        build_trainer(moons())


def test_torchwork_run_trains_the_folds_as_a_group_and_reports_mean_and_std(
        tmp_path, workspace_dir, capsys):
    path = tmp_path / "cv.toml"
    moons().save(path)
    assert main(["run", str(path), "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = out[-1]
    assert summary["event"] == "cv_summary" and summary["completed"] == summary["k"] == 3
    assert [e["event"] for e in out].count("run_finished") == 3
    with Workspace(workspace_dir) as ws:
        runs = sorted(ws.list_runs(), key=lambda r: r.id)
        assert {r.run_group for r in runs} == {summary["group"]} == {f"cv-{runs[0].id:04d}"}
        assert [r.config.train.cv_fold for r in runs] == [1, 2, 3]  # each resumes its fold
        assert [r.name for r in runs] == [f"moons-mlp-fold{i}of3" for i in (1, 2, 3)]
        final = [ws.epoch_metrics(r.id)["val_accuracy"].value[-1] for r in runs]
    assert summary["metrics"]["val_accuracy"]["mean"] == pytest.approx(np.mean(final))
    assert summary["metrics"]["val_accuracy"]["std"] == pytest.approx(np.std(final))
    assert summary["metrics"]["val_loss"]["folds"] == 3

    assert main(["runs"]) == 0
    header, *listed = capsys.readouterr().out.splitlines()
    assert "GROUP" in header.split() and all(summary["group"] in row for row in listed[:3])
    assert listed[-1].startswith(f"group {summary['group']}: 3 of 3 folds completed; "
                                 f"val_accuracy {np.mean(final):.4g} ± ")
    assert main(["runs", "--json"]) == 0
    assert {r["group"] for r in json.loads(capsys.readouterr().out)} == {summary["group"]}


def test_a_schema_3_workspace_gets_the_group_column(tmp_path, tiny_config):
    folder = tmp_path / "old"
    old_workspace(folder, 3, tiny_config().to_toml())
    with Workspace(folder) as ws:
        assert [(r.name, r.run_group) for r in ws.list_runs()] == [("old", None)]
        ws.create_run(tiny_config(), "new", group="cv-0002")
        assert [r.name for r in ws.list_runs(group="cv-0002")] == ["new"]


def summary_of_runs(capsys) -> str:
    assert main(["runs"]) == 0
    return capsys.readouterr().out.splitlines()[-1]


@pytest.mark.slow
def test_a_group_stopped_part_way_is_completed_by_resuming_its_folds(
        tmp_path, workspace_dir, capsys, monkeypatch):
    from engine import cli

    path = tmp_path / "cv.toml"
    moons().save(path)
    assert main(["run", str(path), "--workspace", str(tmp_path / "whole")]) == 0
    whole = capsys.readouterr().out.splitlines()[-1]

    train, started = cli._train, []

    def stop_the_second_fold(trainer, ws, run, as_json):
        started.append(run.id)
        if len(started) == 2:
            trainer.stop("user")  # Ctrl-C at once
        return train(trainer, ws, run, as_json)

    monkeypatch.setattr(cli, "_train", stop_the_second_fold)
    assert main(["run", str(path)]) == cli.EXIT_STOPPED
    first = started[0]
    assert (f"ended at fold 2 of 3: `torchwork resume RUN` for each of runs {first + 1} "
            f"{first + 2} completes it") in capsys.readouterr().err
    monkeypatch.setattr(cli, "_train", train)
    with closing(sqlite3.connect(workspace_dir / "workspace.sqlite")) as conn:
        # the process that created the third fold has ended (its start time no longer matches)
        conn.execute("UPDATE runs SET proc_created = 1 WHERE id = ?", (first + 2,))
        conn.commit()
    assert summary_of_runs(capsys).startswith("group cv-0001: 1 of 3 folds completed; ")
    for run_id in (first + 1, first + 2):
        assert main(["resume", str(run_id)]) == 0
    capsys.readouterr()
    assert summary_of_runs(capsys) == whole  # as if never stopped


def test_a_tables_group_column_keeps_each_group_on_one_side_of_every_fold(tmp_path):
    """data.group_column: a patient's rows are never both trained and validated on, and
    the group name is not a feature."""
    rng = np.random.default_rng(0)
    rows = [(f"patient-{g}", g, float(rng.normal()), "ab"[i % 2])
            for g in range(12) for i in range(4)]
    path = tmp_path / "visits.csv"
    path.write_text("patient,gid,x,label\n" + "".join(f"{p},{g},{x},{y}\n"
                                                     for p, g, x, y in rows))
    seen = []
    for fold in (1, 2, 3):
        cfg = RunConfig()
        for key, value in {"data.dataset": f"table:{path}", "data.target": "label",
                           "data.group_column": "patient", "preprocess.scaling": "none",
                           "train.cv_folds": 3, "train.cv_fold": fold}.items():
            cfg.set(key, value)
        bundle = load_dataset(cfg)
        assert not any("patient" in name for name in bundle.feature_names)
        gid = bundle.feature_names.index("numeric__gid")
        train = set(bundle.x_train[:, gid].tolist())
        val = set(bundle.x_val[:, gid].tolist())
        assert train and val and not train & val  # no patient on both sides
        seen += sorted(val)
    assert sorted(seen) == list(range(12))  # each patient validated on exactly once


def test_a_group_column_the_table_lacks_is_named(tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text("patient,x,label\n" + "".join(f"p{i},{i},{i % 2}\n" for i in range(12)))
    cfg = RunConfig()
    for key, value in {"data.dataset": f"table:{path}", "data.target": "label",
                       "data.group_column": "patiet", "train.cv_folds": 3,
                       "train.cv_fold": 1}.items():
        cfg.set(key, value)
    with pytest.raises(ConfigError, match="data.group_column='patiet'.*did you mean 'patient'"):
        load_dataset(cfg)

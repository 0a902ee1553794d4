"""Evaluation of workspace runs: the report stored after every completed run, and
`torchwork evaluate` (text, --json keys, --split test, --data)."""

import json
from types import SimpleNamespace

import pytest
import torch

from engine.cli import main
from engine.evaluation import load_report
from engine.evaluation import runs as evaluation_runs
from engine.monitor.recorder import record_run
from engine.run_builder import build_trainer
from engine.training.events import RunEnded
from engine.workspace import Workspace
from engine.workspace.runlog import RunLog
from tests.conftest import tiny

CLASSIFICATION_KEYS = {"accuracy", "balanced_accuracy", "per_class", "macro_f1", "weighted_f1",
                       "confusion_matrix", "roc_auc", "log_loss", "ece"}
REGRESSION_KEYS = {"mse", "rmse", "mae", "r2"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with a finished moons run (1) and a finished diabetes regression run (2)."""
    folder = tmp_path_factory.mktemp("evaluate") / "ws"
    moons = folder.parent / "moons.toml"
    tiny(**{"data.n_samples": 400}).save(moons)
    diabetes = folder.parent / "diabetes.toml"
    tiny(**{"data.dataset": "diabetes", "train.epochs": 2}).save(diabetes)
    for config in (moons, diabetes):
        assert main(["run", str(config), "--workspace", str(folder)]) == 0
    return folder


def run_of(folder, run_id):
    with Workspace(folder) as ws:
        return ws.get_run(run_id), ws.epoch_metrics(run_id)


def test_a_completed_run_stores_its_validation_report(trained):
    run, epochs = run_of(trained, 1)
    report = load_report(run.dir, "val")
    assert report["run"] == {"id": 1, "name": run.name} and report["step"] == run.steps
    # the same model and rows as the run's last validation: the same accuracy and loss
    assert report["metrics"]["accuracy"] == pytest.approx(epochs["val_accuracy"].value[-1])
    assert report["metrics"]["log_loss"] == pytest.approx(epochs["val_loss"].value[-1], rel=1e-4)
    assert report["n"] == 80 == sum(map(sum, report["metrics"]["confusion_matrix"]))
    assert len(report["samples"]["pred"]) == 80
    assert [c["class"] for c in report["curves"]["roc"]] == ["1"]
    assert "evaluation on the validation split (80 samples): accuracy" in \
        (run.dir / "log.txt").read_text()


def test_a_regression_run_reports_in_the_targets_units(trained):
    run, epochs = run_of(trained, 2)
    metrics = load_report(run.dir, "val")["metrics"]
    assert metrics["mse"] == pytest.approx(epochs["val_mse"].value[-1], rel=1e-4)
    assert metrics["mae"] == pytest.approx(epochs["val_mae"].value[-1], rel=1e-4)
    assert metrics["mse"] > 1000  # diabetes' targets run from 25 to 346: not standardized units


def test_evaluate_json_prints_exactly_the_documented_keys(trained, capsys):
    assert main(["evaluate", "1", "--json", "--workspace", str(trained)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r) == CLASSIFICATION_KEYS
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc", "ece"):
        assert 0.0 <= r[key] <= 1.0, key
    assert [set(c) for c in r["per_class"]] == [{"class", "precision", "recall", "f1",
                                                  "support"}] * 2
    matrix = r["confusion_matrix"]
    assert [sum(row) for row in matrix] == [c["support"] for c in r["per_class"]]  # rows: true
    assert main(["evaluate", "2", "--json", "--workspace", str(trained)]) == 0
    assert set(json.loads(capsys.readouterr().out)) == REGRESSION_KEYS


def test_evaluate_prints_the_report_and_rewrites_the_stored_one(trained, capsys):
    run, _ = run_of(trained, 1)
    path = run.dir / "evaluation" / "val.json"
    path.unlink()
    assert main(["evaluate", run.dir.name, "--workspace", str(trained)]) == 0
    out = capsys.readouterr().out
    assert f"run 1 ({run.name})" in out and "accuracy" in out
    assert "confusion matrix (rows: true class, columns: predicted)" in out
    assert load_report(run.dir, "val")["metrics"]["accuracy"] > 0.5


@pytest.mark.parametrize("args, expected", [
    (["--split", "test"], "this run has no test split: set data.test_fraction"),
    (["--data", "rows.csv"], "--data rows.csv: this run trained on 'moons'"),
])
def test_evaluate_refuses_with_one_clear_line(trained, capsys, args, expected):
    assert main(["evaluate", "1", "--workspace", str(trained), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_evaluate_an_unknown_run_exits_2(trained, capsys):
    assert main(["evaluate", "99", "--workspace", str(trained)]) == 2
    assert "no run 99" in capsys.readouterr().err


def test_data_goes_through_the_loader_registered_for_the_runs_kind(trained, monkeypatch,
                                                                   tmp_path):
    """The hook the table and image readers fill: --data reads through the run's stored
    preprocessing; the rows' report is printed, not stored as the run's."""
    seen = []

    def loader(path, bundle, config):
        seen.append((path, config.data.dataset))
        return bundle  # stands in for the file's rows, prepared like the run's

    monkeypatch.setitem(evaluation_runs.EXTERNAL_LOADERS, "moons", loader)
    rows = tmp_path / "rows.csv"
    rows.write_text("x0,x1\n")
    report = evaluation_runs.evaluate_run(trained, 1, data=rows)
    assert seen == [(rows, "moons")] and report["split"] == "data"
    assert report["data"] == str(rows.resolve())


def test_a_failing_evaluation_leaves_the_run_completed_and_says_so(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no memory for the report")

    monkeypatch.setattr(evaluation_runs, "evaluate_model", broken)
    config = tmp_path / "tiny.toml"
    tiny(**{"train.epochs": 1}).save(config)
    assert main(["run", str(config), "--workspace", str(tmp_path / "ws")]) == 0
    run, _ = run_of(tmp_path / "ws", 1)
    assert run.status == "completed" and load_report(run.dir) is None
    assert ("evaluation on the validation split failed: RuntimeError: no memory for the "
            "report; retry with `torchwork evaluate 1 --split val`") in \
        (run.dir / "log.txt").read_text()


def test_a_stopped_run_is_not_evaluated_until_asked(tmp_path):
    folder = tmp_path / "ws"
    with Workspace(folder) as ws:
        trainer = build_trainer(tiny())
        run = ws.create_run(trainer.config)
        record_run(trainer, ws, run).stop()
        trainer.stop("user")
        assert trainer.run().status == "stopped"
    assert load_report(run.dir) is None
    assert evaluation_runs.evaluate_run(folder, run.id)["n"] == 50
    assert load_report(run.dir)["n"] == 50


def test_a_read_only_run_folder_is_evaluated_and_says_the_report_is_not_stored(
        trained, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(evaluation_runs, "save_report", refuse)
    assert main(["evaluate", "1", "--json", "--workspace", str(trained)]) == 0
    out, err = capsys.readouterr()
    assert set(json.loads(out)) == CLASSIFICATION_KEYS
    assert "note: the report is not stored in" in err and "Permission denied" in err


def test_a_damaged_report_is_named_with_the_fix(tmp_path):
    from engine.evaluation import EvaluationError, report_path

    path = report_path(tmp_path, "val")
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(EvaluationError, match="evaluate the run again"):
        load_report(tmp_path, "val")
    path.write_text('{"format": "something else"}')
    with pytest.raises(EvaluationError, match="not a Torchwork evaluation report"):
        load_report(tmp_path, "val")


class FakeTrainer:
    """What EvaluateAtEnd reads of a Trainer: its subscriptions, model, data and device."""

    def __init__(self, data):
        self.model, self.data, self.device = torch.nn.Linear(2, 2), data, torch.device("cpu")
        self.handlers = {}

    def on(self, event_type, callback):
        self.handlers[event_type] = callback

    def whole_model(self):
        return self.model

    def end(self, status="completed"):
        self.handlers[RunEnded](RunEnded(status, 10, 1, 1.0, 10.0, None, "val_loss", None, None))


def two_class_data(**splits):
    x = torch.randn(8, 2)
    y = torch.tensor([0, 1] * 4)
    return SimpleNamespace(task="classification", class_names=["a", "b"], input_shape=(2,),
                           x_val=x, y_val=y, **splits)


@pytest.mark.parametrize("kind, status, written", [
    ("train", "completed", ["test.json", "val.json"]),
    ("train", "stopped", []),  # it goes on later: judged when it completes, or on demand
    ("profile", "completed", []),  # a capture's few steps make no model to judge
])
def test_the_end_of_a_run_evaluates_its_test_split_too(tmp_path, kind, status, written):
    run = SimpleNamespace(id=3, name="r", dir=tmp_path, kind=kind)
    trainer = FakeTrainer(two_class_data(x_test=torch.randn(4, 2),
                                         y_test=torch.tensor([0, 1, 1, 0])))
    evaluation_runs.EvaluateAtEnd(run, RunLog(tmp_path / "log.txt")).attach(trainer)
    trainer.end(status)
    folder = tmp_path / "evaluation"
    assert sorted(p.name for p in folder.iterdir()) == written if written else \
        not folder.exists()
    if written:
        assert load_report(tmp_path, "test")["n"] == 4
        assert "evaluation on the test split (4 samples)" in (tmp_path / "log.txt").read_text()


def test_a_run_with_a_test_split_is_judged_on_it_too(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    tiny(**{"data.n_samples": 400, "data.test_fraction": 0.25, "train.epochs": 1}).save(config)
    folder = tmp_path / "ws"
    assert main(["run", str(config), "--workspace", str(folder)]) == 0
    run, _ = run_of(folder, 1)
    test = load_report(run.dir, "test")
    assert test["n"] == 100 and test["split"] == "test"  # a quarter of 400, never trained on
    assert "evaluation on the test split (100 samples)" in (run.dir / "log.txt").read_text()
    capsys.readouterr()
    assert main(["evaluate", "1", "--split", "test", "--json", "--workspace", str(folder)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == pytest.approx(test["metrics"]["accuracy"])
    assert sum(map(sum, printed["confusion_matrix"])) == 100

"""Building a run from its config: a student run distils however it is started or resumed,
while the Trainer itself knows nothing of compression."""

import json

import pytest

from engine.cli import main
from engine.run_builder import build_trainer
from engine.training import Trainer


def epochs_of(text: str) -> dict[int, dict]:
    return {e["epoch"]: e for e in map(json.loads, text.splitlines()) if e["event"] == "epoch"}


@pytest.fixture
def teacher_run(tiny_config, tmp_path, workspace_dir, capsys):
    """Run 1 of the workspace: a bigger model trained on the tiny data; and a student config."""
    teacher, student = tmp_path / "teacher.toml", tmp_path / "student.toml"
    tiny_config(**{"model.hidden": [32, 32], "train.epochs": 1}).save(teacher)
    assert main(["run", str(teacher), "--json"]) == 0
    tiny_config(**{"model.hidden": [4], "model.dropout": 0.2, "train.epochs": 2,
                   "distill.teacher": "1", "distill.alpha": 0.8}).save(student)
    capsys.readouterr()
    return student


def test_a_stopped_student_run_resumes_as_if_never_stopped(teacher_run, capsys):
    assert main(["run", str(teacher_run), "--json"]) == 0  # run 2: straight through
    straight = epochs_of(capsys.readouterr().out)
    assert main(["run", str(teacher_run), "--json", "--max-steps", "5"]) == 0  # run 3
    capsys.readouterr()
    assert main(["resume", "3", "--json", "--max-steps", "0"]) == 0
    resumed = epochs_of(capsys.readouterr().out)
    assert sorted(resumed) == [1, 2]
    for epoch in (1, 2):  # the teacher's term is in the loss after the resume too
        for key in ("val_loss", "val_accuracy"):  # the same weights
            assert resumed[epoch][key] == straight[epoch][key], (epoch, key)
        # the epoch's mean train loss, summed in other chunks (float32 rounding)
        assert resumed[epoch]["train_loss"] == pytest.approx(straight[epoch]["train_loss"],
                                                             rel=1e-6)


def test_the_run_builder_attaches_the_teacher(teacher_run, workspace_dir):
    from engine.config import RunConfig

    config = RunConfig.from_toml(teacher_run.read_text())
    student = build_trainer(config, workspace_dir)
    assert student.loss_hook is not None and student.run().status == "completed"


def test_a_trainer_built_by_hand_does_not_train_a_student_without_its_teacher(teacher_run):
    from engine.config import RunConfig

    trainer = Trainer(RunConfig.from_toml(teacher_run.read_text()))
    with pytest.raises(RuntimeError, match="engine.run_builder.build_trainer"):
        trainer.run()

"""The Trainer: event order, exact resume and accumulation, control, failures and their advice."""

import os
import threading

import pytest
import torch

from engine.config import ConfigError
from engine.training import CheckpointError, Trainer
from engine.training import events as ev
from engine.training.checkpoint import load_checkpoint


def record(trainer, *types):
    seen = []
    for t in types or [getattr(ev, n) for n in dir(ev) if isinstance(getattr(ev, n), type)
                       and issubclass(getattr(ev, n), ev.Event) and getattr(ev, n) is not ev.Event]:
        trainer.on(t, seen.append)
    return seen


def weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def max_diff(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_event_order(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(**{"train.epochs": 2}))
    seen = record(trainer)
    trainer.enable_checkpoints(tmp_path)  # after the recorder, so it sees events in order
    result = trainer.run()
    names = [type(e).__name__ for e in seen]
    assert result.status == "completed"
    assert names[0] == "RunStarted" and names[-1] == "RunEnded"
    assert names[-3:-1] == ["LoopEnded", "CheckpointSaved"]
    epoch1 = names[names.index("EpochStarted"):names.index("EpochEnded") + 1]
    assert epoch1[:3] == ["EpochStarted", "StepStarted", "StepEnded"]
    assert epoch1[-2:] == ["ValidationEnded", "EpochEnded"]
    assert names[names.index("EpochEnded") + 1] == "CheckpointSaved"
    assert names.count("EpochEnded") == 2
    steps = [e.step for e in seen if isinstance(e, ev.StepEnded)]
    assert steps == list(range(1, trainer.total_steps + 1))
    logged = [e for e in seen if isinstance(e, ev.MetricsLogged)]
    assert all(isinstance(e.loss, float) and e.samples_per_s > 0 for e in logged)
    assert seen[-1].steps == trainer.total_steps and seen[-1].epochs_completed == 2
    for e in seen:  # only plain data crosses from the loop
        for value in vars(e).values():
            assert not isinstance(value, (torch.Tensor, torch.nn.Module))


def test_metrics_are_fractions_and_val_improves(tiny_config):
    trainer = Trainer(tiny_config(**{"train.epochs": 5}))
    before = trainer.validate()
    epochs = record(trainer, ev.EpochEnded)
    trainer.run()
    assert 0.0 <= epochs[-1].metrics["val_accuracy"] <= 1.0
    assert epochs[-1].metrics["val_loss"] < before["val_loss"]


def test_gradient_accumulation_equals_one_big_batch(tiny_config):
    common = {"optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.0,
              "train.epochs": 2}
    big = Trainer(tiny_config(**common, **{"data.batch_size": 32}))
    small = Trainer(tiny_config(**common, **{"data.batch_size": 8,
                                             "train.grad_accum_steps": 4}))
    assert max_diff(weights(big), weights(small)) == 0
    assert big.steps_per_epoch == small.steps_per_epoch
    big.run()
    small.run()
    assert big.step == small.step
    assert max_diff(weights(big), weights(small)) < 1e-5


@pytest.mark.parametrize("overrides", [
    {"model.dropout": 0.3, "schedule.name": "warmup_cosine", "schedule.warmup_steps": 5},
    {"optim.name": "sgd", "optim.momentum": 0.9, "train.grad_accum_steps": 2,
     "schedule.name": "step", "schedule.step_size": 1, "regularization.l1": 1e-4,
     "precision.amp": "bf16"},
    {"schedule.name": "plateau", "regularization.early_stopping_patience": 5,
     "model.batch_norm": True},
])
def test_resume_continues_exactly(tiny_config, tmp_path, overrides):
    cfg = tiny_config(**{"train.epochs": 4, **overrides})
    straight = Trainer(cfg)
    straight.run()

    first = Trainer(cfg, checkpoint_dir=tmp_path)
    first.on(ev.StepEnded, lambda e: e.step == 11 and first.stop())
    stopped = first.run()
    assert stopped.status == "stopped" and stopped.steps == 11
    assert 0 < first.batch_in_epoch  # stopped part-way through an epoch

    second = Trainer(cfg)
    second.load_checkpoint(tmp_path / "last.pt")
    assert second.step == 11
    resumed = second.run()
    assert resumed.status == "completed" and resumed.steps == straight.step
    assert max_diff(weights(straight), weights(second)) <= 1e-6


def test_checkpoint_holds_everything_and_loads_weights_only(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(**{"schedule.name": "onecycle"}), checkpoint_dir=tmp_path)
    trainer.run()
    state = load_checkpoint(tmp_path / "last.pt")
    assert {"model", "optimizer", "scheduler", "rng", "progress", "config"} <= set(state)
    assert state["progress"]["step"] == trainer.total_steps
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temporary file


def test_unsafe_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "torchwork-checkpoint", "model": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused: loading it would unpickle arbitrary"):
        load_checkpoint(path)
    assert not marker.exists()


def test_foreign_and_truncated_checkpoints_are_explained(tiny_config, tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a Torchwork checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    trainer = Trainer(tiny_config(), checkpoint_dir=tmp_path)
    trainer.run()
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    other = Trainer(tiny_config(**{"model.hidden": [8]}))
    with pytest.raises(CheckpointError, match="does not fit this run"):
        other.load_checkpoint(tmp_path / "last.pt")


def test_pause_resume_and_stop_from_another_thread(tiny_config, tmp_path):
    trainer = Trainer(tiny_config(**{"train.epochs": 50}), checkpoint_dir=tmp_path)
    seen = record(trainer, ev.Paused, ev.Resumed, ev.StopRequested, ev.CheckpointSaved)
    paused = threading.Event()
    trainer.on(ev.Paused, lambda e: paused.set())

    def control():
        trainer.pause()
        assert paused.wait(10)
        step = trainer.step
        trainer.resume()
        trainer.stop()
        control.step = step

    threading.Timer(0.2, control).start()
    result = trainer.run()
    assert result.status == "stopped"
    kinds = [type(e).__name__ for e in seen if getattr(e, "reason", "") != "interval"]
    assert kinds[:3] == ["Paused", "Resumed", "StopRequested"]
    assert seen[-1].reason == "stop" and (tmp_path / "last.pt").exists()
    assert result.steps <= control.step + 1  # honoured within one step


def test_max_steps_ends_the_run_as_completed(tiny_config):
    result = Trainer(tiny_config(**{"train.max_steps": 5, "train.epochs": 10})).run()
    assert result.status == "completed" and result.steps == 5


def test_early_stopping_restores_the_best_weights(tiny_config):
    cfg = tiny_config(**{"train.epochs": 20, "regularization.early_stopping_patience": 2,
                         "regularization.early_stopping_min_delta": 100.0})
    trainer = Trainer(cfg)
    snapshots = []
    trainer.on(ev.EpochEnded, lambda e: snapshots.append(weights(trainer)))
    stops = record(trainer, ev.StopRequested)
    result = trainer.run()
    assert result.status == "completed" and result.epochs_completed == 3
    assert stops[0].reason == "early_stopping"
    assert max_diff(weights(trainer), snapshots[0]) == 0  # only epoch 1 counted as best


def test_nan_loss_stops_with_step_and_advice(tiny_config, tmp_path, faulty_model):
    arch = faulty_model("if self.calls >= 4: out = out * float('nan')")
    trainer = Trainer(tiny_config(**{"model.arch": arch, "train.log_every": 10}),
                      checkpoint_dir=tmp_path / "ck")
    raised = record(trainer, ev.ExceptionRaised)
    result = trainer.run()
    assert result.status == "failed"
    assert "loss became nan at step 4" in result.error
    assert "optim.lr" in result.error and "grad_clip_norm" in result.error
    assert raised[0].kind == "nan"
    assert not (tmp_path / "ck" / "last.pt").exists()  # NaN weights are not checkpointed


def test_a_nan_run_names_the_same_step_everywhere(tiny_config, faulty_model):
    """The NaN is found at the next logging, steps later; the run still fails at the step
    whose loss it was, in its error, its event and its end (what the status bar shows)."""
    arch = faulty_model("if self.calls >= 4: out = out * float('nan')")
    trainer = Trainer(tiny_config(**{"model.arch": arch, "train.log_every": 10}))
    raised, ended = record(trainer, ev.ExceptionRaised), record(trainer, ev.RunEnded)
    result = trainer.run()
    assert result.steps > 4  # the steps taken before the NaN was read
    assert "loss became nan at step 4 (epoch 1)" in result.error
    assert raised[0].step == ended[0].failed_at == result.failed_at == 4


@pytest.mark.parametrize("exc, kind, text", [
    ("torch.OutOfMemoryError('CUDA out of memory')", "oom",
     "out of memory at batch size 32 (step 3): try a smaller batch (data.batch_size=16)"),
    ("ValueError('bad pixel')", "error", "ValueError: bad pixel"),
])
def test_errors_in_the_loop_end_the_run_with_their_message(tiny_config, faulty_model, exc,
                                                           kind, text):
    arch = faulty_model(f"if self.calls == 3: raise {exc}")
    trainer = Trainer(tiny_config(**{"model.arch": arch}))
    raised = record(trainer, ev.ExceptionRaised)
    ended = record(trainer, ev.RunEnded)
    result = trainer.run()
    assert result.status == "failed" and text in result.error
    assert raised[0].kind == kind and raised[0].traceback
    assert ended[0].error == result.error
    assert raised[0].step == ended[0].failed_at == 3  # the step in progress, as the text says


def test_fp16_on_cpu_is_a_config_error(tiny_config):
    with pytest.raises(ConfigError, match="precision.amp='fp16' needs a CUDA device"):
        Trainer(tiny_config(**{"precision.amp": "fp16"}))


def test_grad_norm_is_logged_before_clipping(tiny_config):
    trainer = Trainer(tiny_config(**{"train.grad_clip_norm": 0.01, "optim.name": "sgd"}))
    logged = record(trainer, ev.MetricsLogged)
    trainer.run()
    assert all(e.grad_norm > 0.01 for e in logged)  # the norm before it was clipped


@pytest.mark.parametrize("clip", [{"train.grad_clip_norm": 1e-4}, {"train.grad_clip_value": 1e-5}])
def test_clipping_limits_each_update(tiny_config, clip):
    def largest_update(overrides):
        trainer = Trainer(tiny_config(**{"optim.name": "sgd", "optim.momentum": 0.0,
                                         "optim.lr": 1.0, "train.max_steps": 1, **overrides}))
        before = weights(trainer)
        trainer.run()
        return max_diff(before, weights(trainer))

    assert largest_update(clip) <= 1e-4 + 1e-7 < largest_update({})


def test_loader_workers_give_the_same_run(tiny_config):
    alone = Trainer(tiny_config(**{"model.dropout": 0.2}))
    alone.run()
    workers = Trainer(tiny_config(**{"model.dropout": 0.2, "data.num_workers": 2}))
    workers.run()
    assert max_diff(weights(alone), weights(workers)) <= 1e-6


@pytest.mark.slow
def test_compile_and_channels_last_train_a_cnn(tiny_config):
    cfg = tiny_config(**{"data.dataset": "digits", "model.arch": "cnn",
                         "model.channels": [8], "model.hidden": [16],
                         "precision.compile": True, "precision.channels_last": True,
                         "train.epochs": 1})
    trainer = Trainer(cfg)
    before = trainer.validate()["val_loss"]
    result = trainer.run()
    assert result.status == "completed", result.error
    assert trainer.validate()["val_loss"] < before
    assert trainer.model.state_dict().keys() == Trainer(cfg).model.state_dict().keys()

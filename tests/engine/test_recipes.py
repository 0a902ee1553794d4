"""Every optimizer, schedule and loss trains: validation loss falls on a tiny problem."""

import pytest

from engine.config import CLASSIFICATION_LOSSES, OPTIMIZERS, REGRESSION_LOSSES, SCHEDULES
from engine.training import Trainer
from engine.training import events as ev

LR = {"sgd": 0.1, "adam": 0.01, "adamw": 0.01, "rmsprop": 0.005, "adagrad": 0.05, "lbfgs": 0.5}


def trains(cfg) -> tuple[float, float, list]:
    trainer = Trainer(cfg)
    before = trainer.validate()["val_loss"]
    lrs = []
    trainer.on(ev.StepEnded, lambda e: lrs.append(trainer.lr))
    result = trainer.run()
    assert result.status == "completed", result.error
    return before, trainer.validate()["val_loss"], lrs


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_lowers_the_loss(tiny_config, name):
    before, after, _ = trains(tiny_config(**{"optim.name": name, "optim.lr": LR[name]}))
    assert after < 0.9 * before


@pytest.mark.parametrize("name", SCHEDULES)
def test_each_schedule_lowers_the_loss_and_moves_the_rate(tiny_config, name):
    cfg = tiny_config(**{"schedule.name": name, "train.epochs": 4, "schedule.step_size": 1,
                         "schedule.milestones": [1, 2], "schedule.gamma": 0.5,
                         "schedule.patience": 0, "schedule.warmup_steps":
                             0 if name == "plateau" else 5})
    before, after, lrs = trains(cfg)
    assert after < before
    if name == "constant":
        assert lrs[0] < lrs[-1] == pytest.approx(cfg.optim.lr)  # warmup then constant
    elif name != "plateau":
        assert len(set(round(v, 12) for v in lrs)) > 2


@pytest.mark.parametrize("loss", CLASSIFICATION_LOSSES)
def test_each_classification_loss_trains(tiny_config, loss):
    before, after, _ = trains(tiny_config(**{"train.loss": loss}))
    assert after < before


@pytest.mark.parametrize("loss", REGRESSION_LOSSES)
def test_each_regression_loss_trains(tiny_config, loss):
    cfg = tiny_config(**{"data.dataset": "diabetes", "train.loss": loss, "train.epochs": 5,
                         "regularization.early_stopping_metric": "val_loss"})
    before, after, _ = trains(cfg)
    assert after < before


def test_regression_metrics_are_in_the_targets_units(tiny_config):
    trainer = Trainer(tiny_config(**{"data.dataset": "diabetes", "train.epochs": 10}))
    epochs = []
    trainer.on(ev.EpochEnded, epochs.append)
    trainer.run()
    m = epochs[-1].metrics
    assert set(m) == {"val_loss", "val_mse", "val_mae", "val_r2"}
    assert m["val_mse"] > 100 * m["val_loss"]  # diabetes targets span ~25..346
    assert 0.0 < m["val_r2"] < 1.0


@pytest.mark.parametrize("penalty, strength", [("regularization.l1", 0.05),
                                               ("regularization.l2", 0.05),
                                               ("optim.weight_decay", 1.0)])
def test_penalties_shrink_the_weights(tiny_config, penalty, strength):
    def weight_norm(value):
        name = "adamw" if penalty == "optim.weight_decay" else "adam"
        trainer = Trainer(tiny_config(**{penalty: value, "optim.name": name,
                                         "train.epochs": 5}))
        trainer.run()
        return sum(float(p.detach().abs().sum()) for p in trainer.penalized)

    assert weight_norm(strength) < 0.9 * weight_norm(0.0)

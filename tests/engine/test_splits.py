"""The test split (data.test_fraction, data.test_path) and class imbalance (train.class_weights,
data.oversample), all fitted on the training split."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import train_test_split

from engine.config import ConfigError, RunConfig
from engine.data import load_dataset
from engine.data.preprocess import transform_frame
from engine.training import Trainer
from engine.training.loader import epoch_order


def config(**values) -> RunConfig:
    cfg = RunConfig()
    for key, value in {"train.device": "cpu", "train.epochs": 1, **values}.items():
        cfg.set(key, value)
    return cfg


def rows(t: torch.Tensor) -> set:
    return {tuple(r) for r in t.numpy().round(5).tolist()}


def test_no_test_split_by_default_and_the_validation_split_is_unchanged():
    cfg = config(**{"data.dataset": "wine", "data.standardize": False})
    b = load_dataset(cfg)
    assert b.x_test is None and b.y_test is None
    from sklearn.datasets import load_wine

    w = load_wine()
    _, x_va, _, _ = train_test_split(w.data, w.target, test_size=0.2, random_state=0,
                                     stratify=w.target)
    np.testing.assert_allclose(b.x_val.numpy(), x_va.astype(np.float32))


def test_test_fraction_holds_out_disjoint_stratified_rows():
    cfg = config(**{"data.dataset": "synthetic", "data.n_samples": 1000,
                    "data.test_fraction": 0.1, "data.val_fraction": 0.2})
    b = load_dataset(cfg)
    assert (len(b.x_train), len(b.x_val), len(b.x_test)) == (700, 200, 100)
    assert not rows(b.x_test) & rows(b.x_train) and not rows(b.x_test) & rows(b.x_val)
    assert torch.bincount(b.y_test).tolist() == [50, 50]


def test_the_trainer_never_reads_the_test_rows():
    cfg = config(**{"data.dataset": "synthetic", "data.n_samples": 500,
                    "data.test_fraction": 0.2})
    trainer = Trainer(cfg)
    seen = rows(trainer.train_loader.x) | rows(trainer.val_loader.x)
    assert not seen & rows(trainer.data.x_test)
    assert trainer.train_loader.n + trainer.val_loader.n == 400


def test_both_test_fraction_and_test_path_are_refused():
    cfg = config(**{"data.dataset": "table:t.csv", "data.target": "y",
                    "data.test_fraction": 0.1, "data.test_path": "test.csv"})
    with pytest.raises(ConfigError, match="both name a test split"):
        cfg.validate()


def test_test_path_goes_through_the_training_preprocessing(tmp_path):
    rng = np.random.default_rng(0)

    def frame(n):
        return pd.DataFrame({"x": rng.normal(size=n) * 5 + 3,
                             "kind": rng.choice(["u", "v"], size=n),
                             "label": np.array(["a", "b"])[np.arange(n) % 2]})

    train, test = frame(100), frame(30)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    cfg = config(**{"data.dataset": f"table:{tmp_path / 'train.csv'}", "data.target": "label",
                    "data.test_path": str(tmp_path / "test.csv")})
    b = load_dataset(cfg)
    assert len(b.x_train) + len(b.x_val) == 100 and len(b.x_test) == 30
    np.testing.assert_array_equal(b.x_test.numpy(),
                                  transform_frame(b.preprocessing["table"], test))
    assert b.y_test.tolist() == [0, 1] * 15


def two_classes() -> RunConfig:
    return config(**{"data.dataset": "synthetic", "data.n_samples": 400})


def test_balanced_class_weights_come_from_the_training_split(monkeypatch):
    cfg = two_classes()
    cfg.set("train.class_weights", "balanced")
    trainer = Trainer(cfg)
    y = trainer.data.y_train
    counts = torch.bincount(y).double()
    expected = len(y) / (2 * counts)
    torch.testing.assert_close(trainer.loss_fn.weight.double(), expected)
    assert Trainer(two_classes()).loss_fn.weight is None


def test_oversampling_draws_classes_equally_often():
    y = torch.tensor([0] * 90 + [1] * 10)
    weights = (1.0 / torch.bincount(y).double())[y]
    drawn = y[epoch_order(len(y), seed=0, epoch=1, weights=weights)]
    share = drawn.float().mean().item()
    assert 0.35 < share < 0.65  # a permutation would give exactly 0.1
    again = epoch_order(len(y), seed=0, epoch=1, weights=weights)
    assert torch.equal(again, epoch_order(len(y), seed=0, epoch=1, weights=weights))


def test_oversample_reaches_the_trainer_and_regression_refuses_it():
    cfg = two_classes()
    cfg.set("data.oversample", True)
    assert Trainer(cfg).train_loader.weights is not None
    reg = config(**{"data.dataset": "diabetes", "data.oversample": True})
    with pytest.raises(ConfigError, match="data.oversample=true needs classification"):
        reg.validate()


def test_a_test_split_too_small_for_the_classes_says_what_to_raise():
    cfg = config(**{"data.dataset": "iris", "data.test_fraction": 0.01})
    with pytest.raises(ConfigError, match=r"data\.test_fraction=0\.01 holds out 2 of 150 iris "
                                          r"samples, fewer than its 3 classes: raise "
                                          r"data\.test_fraction"):
        load_dataset(cfg)


def test_cross_validation_folds_of_a_table_exclude_its_test_rows(tmp_path):
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": np.arange(90.0), "noise": rng.normal(size=90),
                  "label": np.array(["a", "b", "c"])[np.arange(90) % 3]}
                 ).to_csv(tmp_path / "t.csv", index=False)
    seen = []
    for fold in (1, 2, 3):
        cfg = config(**{"data.dataset": f"table:{tmp_path / 't.csv'}", "data.target": "label",
                        "data.test_fraction": 0.2, "preprocess.scaling": "none",
                        "train.cv_folds": 3, "train.cv_fold": fold})
        b = load_dataset(cfg)
        test = set(b.x_test[:, 0].tolist())
        val = set(b.x_val[:, 0].tolist())
        assert len(test) == 18 and not test & val and not test & set(b.x_train[:, 0].tolist())
        seen.append(val)
    assert not seen[0] & seen[1] and not seen[1] & seen[2]
    assert len(seen[0] | seen[1] | seen[2]) == 72  # every non-test row validates once

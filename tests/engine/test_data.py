"""engine.data: built-in datasets, a seeded stratified split, scaling fitted on training rows."""

import json
import math

import numpy as np
import pytest
import torch
from sklearn import datasets as skd
from sklearn.datasets import make_classification

from engine.config import ConfigError, RunConfig
from engine.data import load_dataset
from engine.data.sources import synthetic_layout


def config(**values) -> RunConfig:
    cfg = RunConfig()
    for key, value in values.items():
        cfg.set(key.replace("__", "."), value)
    return cfg


# name, per-sample shape, total samples, classes (None: regression)
EXPECTED = [
    ("digits", (1, 8, 8), 1797, 10),
    ("iris", (4,), 150, 3),
    ("wine", (13,), 178, 3),
    ("breast_cancer", (30,), 569, 2),
    ("diabetes", (10,), 442, None),
    ("synthetic", (20,), 2000, 2),
    ("moons", (2,), 2000, 2),
]


@pytest.mark.parametrize("name, shape, total, classes", EXPECTED)
def test_each_dataset_loads_with_shapes_dtypes_and_task(name, shape, total, classes):
    cfg = config(data__dataset=name)
    b = load_dataset(cfg)
    assert b.input_shape == shape
    assert b.task == cfg.task == ("regression" if classes is None else "classification")
    assert b.num_classes == classes
    assert b.x_train.shape[1:] == b.x_val.shape[1:] == shape
    assert b.x_train.dtype == b.x_val.dtype == torch.float32
    assert len(b.x_train) == len(b.y_train) and len(b.x_val) == len(b.y_val)
    assert len(b.x_train) + len(b.x_val) == total
    assert len(b.x_val) == math.ceil(0.2 * total)
    assert len(b.feature_names) == math.prod(shape)
    if classes is None:
        assert b.y_train.dtype == torch.float32 and b.class_names is None
    else:
        assert b.y_train.dtype == b.y_val.dtype == torch.int64
        assert len(b.class_names) == classes
        assert set(b.y_train.tolist()) == set(range(classes))
        assert (b.target_mean, b.target_std) == (0.0, 1.0)
    # Export reads this back: it must survive JSON unchanged.
    assert json.loads(json.dumps(b.preprocessing)) == b.preprocessing
    assert b.preprocessing["input_shape"] == list(shape)
    assert b.preprocessing["dataset"] == name


def test_synthetic_follows_the_generator_options():
    b = load_dataset(config(data__dataset="synthetic", data__n_samples=300, data__n_features=6,
                            data__n_classes=5))
    assert b.input_shape == (6,) and b.num_classes == 5
    assert len(b.x_train) + len(b.x_val) == 300
    assert set(b.y_val.tolist()) == set(range(5))


@pytest.mark.parametrize("n_features", [2, 3, 4, 5, 8, 20, 64])
def test_synthetic_layout_satisfies_sklearn_for_every_allowed_class_count(n_features):
    for n_classes in range(2, n_features + 1):
        informative, redundant, clusters = synthetic_layout(n_features, n_classes)
        assert n_classes * clusters <= 2 ** informative
        assert informative + redundant <= n_features
    # The tightest case, as many classes as features, run through sklearn itself.
    informative, redundant, clusters = synthetic_layout(n_features, n_features)
    make_classification(n_samples=200, n_features=n_features, n_classes=n_features,
                        n_informative=informative, n_redundant=redundant,
                        n_clusters_per_class=clusters)


def test_moons_noise_is_applied():
    quiet = load_dataset(config(data__dataset="moons", data__noise=0.0, data__standardize=False))
    noisy = load_dataset(config(data__dataset="moons", data__noise=0.3, data__standardize=False))
    # Without noise, class 0 lies exactly on the unit half circle.
    radius = quiet.x_train[quiet.y_train == 0].norm(dim=1)
    assert torch.allclose(radius, torch.ones_like(radius), atol=1e-5)
    radius = noisy.x_train[noisy.y_train == 0].norm(dim=1)
    assert (radius - 1).abs().max() > 0.1


def test_split_is_stratified():
    b = load_dataset(config(data__dataset="wine", data__val_fraction=0.3))
    total = np.bincount(skd.load_wine().target)
    val = np.bincount(b.y_val.numpy(), minlength=3)
    assert np.all(np.abs(val - total * len(b.y_val) / total.sum()) <= 1)


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    a = load_dataset(config(data__dataset="iris", train__seed=3))
    b = load_dataset(config(data__dataset="iris", train__seed=3))
    c = load_dataset(config(data__dataset="iris", train__seed=4))
    for name in ("x_train", "y_train", "x_val", "y_val"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.preprocessing == b.preprocessing
    assert not torch.equal(a.x_val, c.x_val)


def test_generated_data_follow_the_seed():
    a = load_dataset(config(data__dataset="synthetic", data__n_samples=200, train__seed=1))
    b = load_dataset(config(data__dataset="synthetic", data__n_samples=200, train__seed=1))
    c = load_dataset(config(data__dataset="synthetic", data__n_samples=200, train__seed=2))
    assert torch.equal(a.x_train, b.x_train)
    assert a.x_train.shape == c.x_train.shape and not torch.equal(a.x_train, c.x_train)


def test_scaler_is_fitted_on_the_training_split_only():
    b = load_dataset(config(data__dataset="iris"))
    x_train = b.x_train.double()
    assert torch.allclose(x_train.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x_train.std(0, unbiased=False), torch.ones(4, dtype=torch.float64),
                          atol=1e-5)
    mean = np.array(b.preprocessing["feature_mean"])
    std = np.array(b.preprocessing["feature_std"])
    raw_train = x_train.numpy() * std + mean
    np.testing.assert_allclose(mean, raw_train.mean(0), rtol=1e-6)
    assert not np.allclose(mean, skd.load_iris().data.mean(0), rtol=1e-4)
    # Validation rows use the training statistics, so they are not centred exactly.
    assert b.x_val.double().mean(0).abs().max() > 1e-3


def test_digits_are_standardized_per_pixel_and_keep_their_image_shape():
    b = load_dataset(config(data__dataset="digits"))
    assert len(b.preprocessing["feature_mean"]) == 64
    flat = b.x_train.reshape(len(b.x_train), 64).double()
    assert flat.mean(0).abs().max() < 1e-5
    # Image layout: pixel (row 0, col 3) is feature 3 of the flattened sklearn data.
    raw = (b.x_train[:, 0, 0, 3].double().numpy() * b.preprocessing["feature_std"][3]
           + b.preprocessing["feature_mean"][3])
    assert set(np.round(raw, 4)) <= set(skd.load_digits().data[:, 3])


def test_without_standardize_features_are_the_raw_values():
    b = load_dataset(config(data__dataset="iris", data__standardize=False))
    raw = {tuple(np.round(row, 4)) for row in skd.load_iris().data}
    assert all(tuple(np.round(row, 4)) in raw for row in b.x_train.double().numpy())
    assert b.preprocessing["feature_mean"] is None and b.preprocessing["feature_std"] is None


def test_regression_targets_are_standardized_with_training_statistics():
    b = load_dataset(config(data__dataset="diabetes", data__standardize=False))
    y = b.y_train.double()
    assert abs(y.mean().item()) < 1e-5
    assert abs(y.std(unbiased=False).item() - 1) < 1e-5
    original = y.numpy() * b.target_std + b.target_mean
    assert b.target_mean == pytest.approx(original.mean())
    assert b.target_mean != pytest.approx(skd.load_diabetes().target.mean(), rel=1e-6)
    targets = set(skd.load_diabetes().target)
    val_original = b.y_val.double().numpy() * b.target_std + b.target_mean
    assert set(np.round(val_original, 3)) <= targets
    assert b.preprocessing["target_mean"] == b.target_mean
    assert b.preprocessing["target_std"] == b.target_std


def test_too_small_validation_split_names_the_key_and_the_fix():
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0\.01 .*2 of 150 iris.*3 classes"
                                          r".*at least 0\.02"):
        load_dataset(config(data__dataset="iris", data__val_fraction=0.01))


def test_too_small_training_split_says_to_lower_val_fraction():
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0\.9 leaves 2 of 20 .*lower "
                                          r"data\.val_fraction.*data\.n_samples"):
        load_dataset(config(data__dataset="synthetic", data__n_samples=20, data__n_features=5,
                            data__n_classes=3, data__val_fraction=0.9))


def test_too_few_samples_per_class_says_to_raise_n_samples():
    with pytest.raises(ConfigError, match=r"data\.n_samples=20 .*raise data\.n_samples"):
        load_dataset(config(data__dataset="synthetic", data__n_samples=20, data__n_classes=10))


def test_unknown_dataset_is_a_config_error():
    cfg = RunConfig()
    cfg.data.dataset = "mnist"
    with pytest.raises(ConfigError, match=r"data\.dataset.*'mnist'"):
        load_dataset(cfg)

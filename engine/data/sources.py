"""Built-in data sources: scikit-learn's bundled sets and generators, never a download.

A source only produces raw arrays and names. Splitting and scaling live in
datasets.py so that every source goes through the same path and no source can
let the scaler see validation rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sklearn import datasets as skd

from engine.config import DataConfig


@dataclass(frozen=True)
class RawData:
    x: np.ndarray  # (N, F) features; images are flattened here and reshaped after scaling
    y: np.ndarray  # (N,) class indices or regression targets
    input_shape: tuple[int, ...]  # per-sample shape the model sees
    feature_names: list[str]
    class_names: list[str] | None  # None for regression


def _bundled(bunch, *, classification: bool = True) -> RawData:
    x = np.asarray(bunch.data, dtype=np.float64)
    names = None
    if classification:
        names = [str(n) for n in bunch.target_names]
    features = [str(n) for n in bunch.feature_names]
    return RawData(x, np.asarray(bunch.target), (x.shape[1],), features, names)


def _digits(data: DataConfig, seed: int) -> RawData:
    # One grey channel of 8x8 pixels, so convolutional models see the image layout.
    return replace(_bundled(skd.load_digits()), input_shape=(1, 8, 8))


def synthetic_layout(n_features: int, n_classes: int) -> tuple[int, int, int]:
    """(n_informative, n_redundant, n_clusters_per_class) that make_classification accepts.

    sklearn requires n_classes * n_clusters_per_class <= 2 ** n_informative and
    n_informative + n_redundant <= n_features. Half of the features carry signal
    (at least as many as the classes need), so the task is learnable but not trivial;
    one cluster per class is the fallback when two do not fit.
    """
    needed = math.ceil(math.log2(2 * n_classes))
    informative = min(n_features, max(2, n_features // 2, needed))
    clusters = 2 if 2 * n_classes <= 2 ** informative else 1
    redundant = min(2, n_features - informative)
    return informative, redundant, clusters


def _synthetic(data: DataConfig, seed: int) -> RawData:
    informative, redundant, clusters = synthetic_layout(data.n_features, data.n_classes)
    x, y = skd.make_classification(
        n_samples=data.n_samples, n_features=data.n_features, n_informative=informative,
        n_redundant=redundant, n_classes=data.n_classes, n_clusters_per_class=clusters,
        random_state=seed)
    return RawData(x, y, (data.n_features,), [f"x{i}" for i in range(data.n_features)],
                   [str(c) for c in range(data.n_classes)])


def _moons(data: DataConfig, seed: int) -> RawData:
    x, y = skd.make_moons(n_samples=data.n_samples, noise=data.noise, random_state=seed)
    return RawData(x, y, (2,), ["x0", "x1"], ["0", "1"])


SOURCES: dict[str, Callable[[DataConfig, int], RawData]] = {
    "digits": _digits,
    "iris": lambda data, seed: _bundled(skd.load_iris()),
    "wine": lambda data, seed: _bundled(skd.load_wine()),
    "breast_cancer": lambda data, seed: _bundled(skd.load_breast_cancer()),
    "diabetes": lambda data, seed: _bundled(skd.load_diabetes(), classification=False),
    "synthetic": _synthetic,
    "moons": _moons,
}

# Sources whose size data.n_samples sets, so error messages can suggest changing it.
GENERATED = ("synthetic", "moons")

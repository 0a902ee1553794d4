"""Turn a RunConfig into train/validation tensors: seeded split, then scaling fitted on train.

The order matters: the split comes first and every statistic (feature scaler,
target mean/std) is fitted on the training rows only, so validation scores are
not flattered by information from the validation rows. The statistics go into
``DataBundle.preprocessing`` so export can feed a rebuilt model the same way.

An optional test split (data.test_fraction) is taken first, from all rows,
then the validation split from the rest; with no test split the validation
split is the one runs have always had. The Trainer never reads the test split:
only evaluation does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from engine.config import ConfigError, RunConfig
from engine.run_options import IMAGES_PREFIX

from .folds import fold_indices
from .sources import GENERATED, SOURCES


@dataclass
class DataBundle:
    """Everything a run needs from its data; tensors stay in the engine."""

    # float32 (N, *input_shape); for an image folder streamed from its cache, an
    # engine.data.image_bundle.ImageRows (len, shape, and indexing that returns tensors)
    x_train: torch.Tensor
    y_train: torch.Tensor  # int64 class indices, or float32 standardized targets
    x_val: torch.Tensor
    y_val: torch.Tensor
    input_shape: tuple[int, ...]
    task: str  # "classification" | "regression"
    num_classes: int | None  # None for regression
    class_names: list[str] | None
    feature_names: list[str]
    target_mean: float  # original target = prediction * target_std + target_mean
    target_std: float
    # JSON-ready: to feed a model later, x = ((flat - feature_mean) / feature_std)
    # reshaped to input_shape (no scaling where feature_mean is None); a table's
    # under "table" (engine.data.preprocess.transform_frame replays it).
    preprocessing: dict[str, Any]
    # The test split (data.test_fraction or data.test_path), never used in training,
    # early stopping or selection; None without one.
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)  # for the run's log: choices, dropped rows


def load_dataset(cfg: RunConfig) -> DataBundle:
    """Build the seeded split of ``cfg.data.dataset``; the same config gives identical tensors."""
    name, seed = cfg.data.dataset, cfg.train.seed
    if name.startswith(IMAGES_PREFIX):
        from .image_bundle import load_images

        return load_images(cfg)
    if name.startswith("table:"):
        from .table_data import load_table_dataset

        return load_table_dataset(cfg)
    if name not in SOURCES:
        raise ConfigError(f"data.dataset must be one of {', '.join(map(repr, SOURCES))} "
                          f"(got {name!r})")
    raw = SOURCES[name](cfg.data, seed)
    task = cfg.task
    classification = task == "classification"
    y = raw.y.astype(np.int64) if classification else raw.y.astype(np.float64)
    generated = name in GENERATED
    train, val, test = split_rows(
        cfg, y, raw.class_names if classification else None, generated=generated,
        too_few="raise data.n_samples" if generated else "this dataset cannot be split",
        groups=getattr(raw, "groups", None))
    x_tr, x_va, y_tr, y_va = raw.x[train], raw.x[val], y[train], y[val]

    feature_mean = feature_std = None
    scaler = None
    if cfg.data.standardize:
        scaler = StandardScaler().fit(x_tr)
        x_tr, x_va = scaler.transform(x_tr), scaler.transform(x_va)
        feature_mean, feature_std = scaler.mean_.tolist(), scaler.scale_.tolist()
    x_te = y_te = None
    if test is not None:
        x_te, y_te = raw.x[test], y[test]
        x_te = scaler.transform(x_te) if scaler is not None else x_te

    target_mean, target_std = 0.0, 1.0
    if not classification:  # always: losses and learning rates behave alike on every target
        target_mean, target_std, (y_tr, y_va, y_te) = scale_target(y_tr, y_va, y_te)

    preprocessing = {
        "dataset": name,
        "task": task,
        "input_shape": list(raw.input_shape),
        "feature_names": list(raw.feature_names),
        "feature_mean": feature_mean,
        "feature_std": feature_std,
        "target_mean": target_mean,
        "target_std": target_std,
        "class_names": raw.class_names,
    }
    return DataBundle(
        x_train=_features(x_tr, raw.input_shape), y_train=_targets(y_tr, classification),
        x_val=_features(x_va, raw.input_shape), y_val=_targets(y_va, classification),
        input_shape=raw.input_shape, task=task,
        num_classes=len(raw.class_names) if classification else None,
        class_names=raw.class_names, feature_names=list(raw.feature_names),
        target_mean=target_mean, target_std=target_std, preprocessing=preprocessing,
        x_test=None if x_te is None else _features(x_te, raw.input_shape),
        y_test=None if y_te is None else _targets(y_te, classification))


def split_rows(cfg: RunConfig, y: np.ndarray, class_names: list[str] | None, *,
               generated: bool = False, too_few: str = "this dataset cannot be split",
               test_fraction: float | None = None, groups: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Row indices (train, val, test or None), seeded and stratified for classification.

    The test rows (``test_fraction``, by default data.test_fraction) go first, from all
    rows; validation takes data.val_fraction of all rows from the rest. With no test
    split this is the very split of train_test_split(x, y, test_size=val_fraction).
    A run of a cross-validation group (train.cv_fold) takes its fold of the rows left
    after the test split instead (``groups``: group k-fold), so no fold sees a test row.
    ``generated`` (data.n_samples sets the size) and ``too_few`` (what to do about a
    class with one row) shape the messages of a split that cannot be made.
    """
    d = cfg.data
    test_fraction = d.test_fraction if test_fraction is None else test_fraction
    rows = np.arange(len(y))
    test = None
    if test_fraction:
        if class_names is not None:
            _check_split(cfg, class_names, y, test_fraction, "data.test_fraction", generated,
                         too_few)
        rows, test = _split(cfg, rows, y, test_fraction, class_names, "data.test_fraction",
                            generated)
        y = y[rows]
        groups = None if groups is None else groups[rows]
    if cfg.train.cv_folds and cfg.train.cv_fold:  # one fold of a cross-validation group
        train, val = fold_indices(y, groups, cfg.train.cv_folds, cfg.train.cv_fold - 1,
                                  cfg.train.seed, stratify=class_names is not None)
        return rows[train], rows[val], test
    val_share = d.val_fraction / (1 - test_fraction)
    if class_names is not None:
        _check_split(cfg, class_names, y, val_share, "data.val_fraction", generated, too_few)
    train, val = _split(cfg, rows, y, val_share, class_names, "data.val_fraction", generated)
    return train, val, test


def _split(cfg, rows, y, fraction, class_names, key, generated):
    try:
        return train_test_split(rows, test_size=fraction, random_state=cfg.train.seed,
                                stratify=y if class_names is not None else None)
    except ValueError as exc:  # anything the pre-check did not foresee
        raise ConfigError(f"cannot split {cfg.data.dataset} ({len(y)} samples) with {key}="
                          f"{cfg.get(key)}: {exc}; change {key}"
                          + (" or data.n_samples" if generated else "")) from None


def scale_target(y_tr: np.ndarray, *others):
    """(mean, std, scaled arrays): a regression target standardized with training
    statistics; None entries (no test split) stay None."""
    target_scaler = StandardScaler().fit(y_tr.reshape(-1, 1))
    mean, std = float(target_scaler.mean_[0]), float(target_scaler.scale_[0])
    return mean, std, tuple(None if y is None else (y - mean) / std for y in (y_tr, *others))


def _check_split(cfg: RunConfig, class_names: list[str], y: np.ndarray, frac: float,
                 key: str, generated: bool, too_few: str) -> None:
    """Refuse, with the numbers and the fix, a stratified split sklearn cannot make.

    Stratifying needs every class at least twice, and at least one sample per
    class on each side; sklearn puts ceil(frac * N) samples in the held-out part.
    """
    name = cfg.data.dataset
    k, n = len(class_names), len(y)
    counts = np.bincount(y, minlength=k)
    shown = f"{cfg.get(key)}" + ("" if frac == cfg.get(key) else " (after the test split)")
    if counts.min() < 2:
        cls = int(counts.argmin())
        gives = f"data.n_samples={n} gives class" if generated else "class"
        raise ConfigError(f"{gives} {class_names[cls]!r} of {name} has only {counts[cls]} "
                          f"sample(s); a stratified split needs at least 2 per class: "
                          f"{too_few}")
    n_val = math.ceil(frac * n)
    more = f" or raise data.n_samples (now {n})" if generated else ""
    if n_val < k:
        raise ConfigError(f"{key}={shown} holds out {n_val} of {n} {name} samples, "
                          f"fewer than its {k} classes: raise {key} to at least "
                          f"{_round_up(k / n)}{more}")
    if n - n_val < k:
        raise ConfigError(f"{key}={shown} leaves {n - n_val} of {n} {name} samples "
                          f"for training, fewer than its {k} classes: lower {key} "
                          f"to at most {_round_down(1 - k / n)}{more}")


def _round_up(x: float) -> float:
    return math.ceil(x * 1000) / 1000


def _round_down(x: float) -> float:
    return math.floor(x * 1000) / 1000


def _features(x: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(-1, *input_shape))


def _targets(y: np.ndarray, classification: bool) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64 if classification
                                                 else np.float32))

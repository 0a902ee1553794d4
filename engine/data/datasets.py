"""Turn a RunConfig into train/validation tensors: seeded split, then scaling fitted on train.

The order matters: the split comes first and every statistic (feature scaler,
target mean/std) is fitted on the training rows only, so validation scores are
not flattered by information from the validation rows. The statistics go into
``DataBundle.preprocessing`` so export can feed a rebuilt model the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from engine.config import ConfigError, RunConfig
from engine.run_options import IMAGES_PREFIX

from .folds import fold_indices
from .sources import GENERATED, SOURCES, RawData


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
    # reshaped to input_shape (no scaling where feature_mean is None).
    preprocessing: dict[str, Any]


def load_dataset(cfg: RunConfig) -> DataBundle:
    """Build the seeded split of ``cfg.data.dataset``; the same config gives identical tensors."""
    name, seed = cfg.data.dataset, cfg.train.seed
    if name.startswith(IMAGES_PREFIX):
        from .image_bundle import load_images

        return load_images(cfg)
    if name not in SOURCES:
        raise ConfigError(f"data.dataset must be one of {', '.join(map(repr, SOURCES))} "
                          f"(got {name!r})")
    raw = SOURCES[name](cfg.data, seed)
    task = cfg.task
    classification = task == "classification"
    y = raw.y.astype(np.int64) if classification else raw.y.astype(np.float64)
    if cfg.train.cv_folds and cfg.train.cv_fold:  # one fold of a cross-validation group
        train, val = fold_indices(y, getattr(raw, "groups", None), cfg.train.cv_folds,
                                  cfg.train.cv_fold - 1, seed, stratify=classification)
        x_tr, x_va, y_tr, y_va = raw.x[train], raw.x[val], y[train], y[val]
    else:
        if classification:
            _check_split(cfg, raw, y)
        try:
            x_tr, x_va, y_tr, y_va = train_test_split(
                raw.x, y, test_size=cfg.data.val_fraction, random_state=seed,
                stratify=y if classification else None)
        except ValueError as exc:  # anything the pre-check did not foresee
            raise ConfigError(f"cannot split {name} ({len(y)} samples) with data.val_fraction="
                              f"{cfg.data.val_fraction}: {exc}; change data.val_fraction"
                              + (" or data.n_samples" if name in GENERATED else "")) from None

    feature_mean = feature_std = None
    if cfg.data.standardize:
        scaler = StandardScaler().fit(x_tr)
        x_tr, x_va = scaler.transform(x_tr), scaler.transform(x_va)
        feature_mean, feature_std = scaler.mean_.tolist(), scaler.scale_.tolist()

    target_mean, target_std = 0.0, 1.0
    if not classification:  # always: losses and learning rates behave alike on every target
        target_scaler = StandardScaler().fit(y_tr.reshape(-1, 1))
        target_mean, target_std = float(target_scaler.mean_[0]), float(target_scaler.scale_[0])
        y_tr, y_va = (y_tr - target_mean) / target_std, (y_va - target_mean) / target_std

    num_classes = len(raw.class_names) if classification else None
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
        input_shape=raw.input_shape, task=task, num_classes=num_classes,
        class_names=raw.class_names, feature_names=list(raw.feature_names),
        target_mean=target_mean, target_std=target_std, preprocessing=preprocessing)


def _check_split(cfg: RunConfig, raw: RawData, y: np.ndarray) -> None:
    """Refuse, with the numbers and the fix, a stratified split sklearn cannot make.

    Stratifying needs every class at least twice, and at least one sample per
    class on each side; sklearn puts ceil(val_fraction * N) samples in validation.
    """
    name, frac = cfg.data.dataset, cfg.data.val_fraction
    k, n = len(raw.class_names), len(y)
    generated = name in GENERATED
    counts = np.bincount(y, minlength=k)
    if counts.min() < 2:
        cls = int(counts.argmin())
        hint = "raise data.n_samples" if generated else "this dataset cannot be split"
        raise ConfigError(f"data.n_samples={n} gives class {raw.class_names[cls]!r} of {name} "
                          f"only {counts[cls]} sample(s); a stratified split needs at least 2 "
                          f"per class: {hint}")
    n_val = math.ceil(frac * n)
    more = f" or raise data.n_samples (now {n})" if generated else ""
    if n_val < k:
        raise ConfigError(f"data.val_fraction={frac} holds out {n_val} of {n} {name} samples, "
                          f"fewer than its {k} classes: raise data.val_fraction to at least "
                          f"{_round_up(k / n)}{more}")
    if n - n_val < k:
        raise ConfigError(f"data.val_fraction={frac} leaves {n - n_val} of {n} {name} samples "
                          f"for training, fewer than its {k} classes: lower data.val_fraction "
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

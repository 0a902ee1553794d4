"""`torchwork evaluate RUN --data PATH`: a labelled file the run never saw, prepared with
the run's stored preprocessing (never refitted), as the split the report is made of.

A table keeps its target column; an image folder names each image's class by its
subfolder (or a `path,label` CSV), as in training. The rows become the bundle's
validation split, so the report is made exactly as for the run's own splits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from engine.config import ConfigError
from engine.data.image_bundle import pixel_affine
from engine.data.images import decode_image, list_images
from engine.data.preprocess import ReplayError
from engine.data.tables import read_table
from engine.export.feed import raw_inputs

from .report import EvaluationError


def table_rows(path: Path, bundle, config):
    pre = bundle.preprocessing
    target = pre.get("target")
    try:
        frame = read_table(path)
    except ConfigError as exc:
        raise EvaluationError(f"--data {exc}") from None
    if target not in frame.columns:
        raise EvaluationError(f"--data {path}: it has no column {target!r}, the target the run "
                              f"was trained to predict: evaluation compares predictions with "
                              f"it (use torchwork predict for rows without answers)")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if frame.empty:
        raise EvaluationError(f"--data {path}: no row has a value in {target!r}")
    try:
        x = raw_inputs({"preprocessing": pre}, frame)
    except (ReplayError, KeyError) as exc:
        why = str(exc) if isinstance(exc, ReplayError) else f"the rows lack column {exc}"
        raise EvaluationError(f"--data {path}: {why}") from None
    if bundle.task == "classification":
        y = _class_indices(frame[target], bundle.class_names, path)
    else:
        values = frame[target].to_numpy(dtype=np.float64)
        y = torch.from_numpy(((values - bundle.target_mean) / bundle.target_std)
                             .astype(np.float32))
    return _as_val(bundle, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), y)


def image_rows(path: Path, bundle, config):
    image = bundle.preprocessing["image"]
    listing = list_images(f"images:{path}")
    size, channels = int(image["size"]), int(image["channels"])
    scale, offset = pixel_affine(image["mean"], image["std"])  # as in training
    names = [listing.class_names[i] for i in listing.labels]
    y = _class_indices(pd.Series(names), bundle.class_names, path)
    rows = []
    for file in listing.paths:
        try:
            pixels = decode_image(file, size, channels)
        except (OSError, ValueError, SyntaxError) as exc:
            raise EvaluationError(f"--data {path}: {file} cannot be decoded ({exc}): remove "
                                  f"it or replace it") from None
        rows.append(torch.addcmul(offset, torch.from_numpy(pixels.copy()).float(), scale))
    return _as_val(bundle, torch.stack(rows), y)


def _class_indices(values: pd.Series, class_names: list[str], path: Path) -> torch.Tensor:
    """Each row's class as the run's class index; a class the run never learned is named."""
    index = {name: i for i, name in enumerate(class_names)}
    as_text = [str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v)
               for v in values.to_numpy()]
    unknown = sorted({v for v in as_text if v not in index})
    if unknown:
        raise EvaluationError(f"--data {path}: class {unknown[0]!r} is not one the run learned "
                              f"({', '.join(class_names)}): remove those rows")
    return torch.tensor([index[v] for v in as_text], dtype=torch.int64)


def _as_val(bundle, x: torch.Tensor, y: torch.Tensor):
    return dataclasses.replace(bundle, x_val=x, y_val=y, x_test=None, y_test=None)

"""Validation: loss and task metrics of a model on the held-out split."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
from sklearn import metrics as skm

from .setup import LOWER_IS_BETTER, predict


def is_better(metric: str, value: float, best: float, min_delta: float = 0.0) -> bool:
    if LOWER_IS_BETTER[metric]:
        return value < best - min_delta
    return value > best + min_delta


@torch.no_grad()
def evaluate(forward, model, loader, loss_fn, precision, data, *, channels_last: bool,
             device: torch.device, reduce=None, forwards: int | None = None
             ) -> dict[str, float]:
    """val_loss plus accuracy, or MSE/MAE/R2 in the target's own units for regression.

    ``reduce(parts, compute)`` (a data-parallel run, each rank holding a share of the
    split): combines every rank's ``(loss_sum, count, predictions, targets)`` and returns
    the metrics ``compute`` gives for the whole split. ``forwards`` (FSDP, whose forward
    passes are collectives): the number of forward passes every rank makes; a rank with
    fewer batches makes the rest on an empty batch."""
    was_training = model.training
    model.eval()
    losses, preds, targets = [], [], []
    with precision.autocast():
        for x, y in loader.epoch(0):
            if x.device != device:
                x, y = x.to(device), y.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = forward(x)
            losses.append(loss_fn(out, y).float() * len(x))
            preds.append(predict(out, data.task))
            targets.append(y)
        if forwards is not None and forwards > len(targets):
            blank = torch.zeros((0, *data.input_shape), device=device)
            if channels_last:
                blank = blank.contiguous(memory_format=torch.channels_last)
            for _ in range(forwards - len(targets)):
                forward(blank)
    model.train(was_training)
    n = sum(len(t) for t in targets)
    loss_sum = float(torch.stack(losses).sum()) if losses else 0.0
    p = torch.cat(preds).float().cpu().numpy() if preds else np.zeros(0, np.float32)
    t = torch.cat(targets).float().cpu().numpy() if targets else np.zeros(0, np.float32)
    if reduce is not None:
        return reduce((loss_sum, n, p, t), partial(_metrics, data))
    return _metrics(data, loss_sum, n, p, t)


def _metrics(data, loss_sum: float, n: int, p: np.ndarray, t: np.ndarray) -> dict[str, float]:
    result = {"val_loss": loss_sum / n}
    if data.task == "classification":
        result["val_accuracy"] = float(skm.accuracy_score(t, p))
        return result
    p = p * data.target_std + data.target_mean
    t = t * data.target_std + data.target_mean
    if not np.all(np.isfinite(p)):
        return {**result, "val_mse": math.nan, "val_mae": math.nan, "val_r2": math.nan}
    result["val_mse"] = float(skm.mean_squared_error(t, p))
    result["val_mae"] = float(skm.mean_absolute_error(t, p))
    result["val_r2"] = float(skm.r2_score(t, p))
    return result

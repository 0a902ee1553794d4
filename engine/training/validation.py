"""Validation: loss and task metrics of a model on the held-out split."""

from __future__ import annotations

import math

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
             device: torch.device) -> dict[str, float]:
    """val_loss plus accuracy, or MSE/MAE/R2 in the target's own units for regression."""
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
    model.train(was_training)
    n = sum(len(t) for t in targets)
    result = {"val_loss": float(torch.stack(losses).sum()) / n}
    p = torch.cat(preds).float().cpu().numpy()
    t = torch.cat(targets).float().cpu().numpy()
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

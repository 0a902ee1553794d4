"""Pruning: zero the smallest weights (unstructured) or remove whole channels (structured).

Unstructured pruning uses torch.nn.utils.prune, per layer or with one global
threshold. It only zeros weights, so the model keeps its shape and size on
disk; it pays off with sparse kernels or compression. Structured pruning uses
Torch-Pruning's dependency graph to remove channels from every layer that
shares them, so the model really gets smaller and faster. The final classifier
always keeps its outputs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from engine.models.fit import fold_masks

from .errors import CompressionError

METHODS = ("structured", "unstructured", "global")
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _magnitude() -> tp.importance.Importance:
    return tp.importance.MagnitudeImportance(p=2)


# Channel importance for structured pruning; "taylor" needs a batch with labels.
IMPORTANCES = {
    "magnitude": _magnitude,
    "taylor": tp.importance.TaylorImportance,
    "lamp": tp.importance.LAMPImportance,
    "bn_scale": tp.importance.BNScaleImportance,
    "fpgm": tp.importance.FPGMImportance,
}


@dataclass(frozen=True)
class PruneResult:
    model: nn.Module
    method: str
    ratio: float
    params_before: int
    params_after: int
    zeros_before: int
    zeros_after: int
    layers: tuple[str, ...]  # the layers that were pruned


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and Linear layers by their qualified names (the names --exclude takes)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def check_exclude(model: nn.Module, exclude: Iterable[str]) -> None:
    layers = prunable_layers(model)
    unknown = sorted(set(exclude) - set(layers))
    if unknown:
        raise CompressionError(f"cannot exclude {', '.join(unknown)}: no such Conv or Linear "
                               f"layer; the model has {', '.join(layers)}")


def classifier_name(model: nn.Module) -> str:
    """The last prunable layer in definition order: the one whose outputs are the classes."""
    names = list(prunable_layers(model))
    if not names:
        raise CompressionError(f"{type(model).__name__} has no Conv or Linear layer to prune")
    return names[-1]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_zeros(model: nn.Module) -> int:
    return sum(int((p == 0).sum()) for p in model.parameters())


def prune_model(model: nn.Module, method: str, ratio: float, *, example: torch.Tensor,
                importance: str = "magnitude", exclude: Iterable[str] = (),
                calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
                loss_fn: nn.Module | None = None, permanent: bool = True) -> PruneResult:
    """A pruned copy of ``model``; the original is left as it was.

    ``permanent=False`` keeps unstructured masks in place (``weight_orig`` and a
    forward hook), so fine-tuning cannot regrow pruned weights; call
    :func:`engine.models.fit.fold_masks` afterwards. Structured pruning is always permanent.
    """
    if method not in METHODS:
        raise CompressionError(f"pruning method must be one of {', '.join(METHODS)} "
                               f"(got {method!r})")
    if not 0.0 < ratio < 1.0:
        raise CompressionError(f"pruning ratio must be between 0 and 1, exclusive "
                               f"(got {ratio:g}): 0.5 removes half")
    check_exclude(model, exclude)
    model = copy.deepcopy(model).cpu().eval()
    layers = prunable_layers(model)
    exclude = set(exclude)
    before, zeros_before = count_params(model), count_zeros(model)
    if method == "structured":
        exclude.add(classifier_name(model))
        targets = _structured(model, ratio, example, importance, exclude, calibration, loss_fn,
                              layers)
    else:
        targets = {n: m for n, m in layers.items() if n not in exclude}
        if not targets:
            raise CompressionError("every prunable layer is excluded: nothing left to prune")
        if method == "unstructured":
            for m in targets.values():
                prune.l1_unstructured(m, "weight", amount=ratio)
        else:
            prune.global_unstructured([(m, "weight") for m in targets.values()],
                                      pruning_method=prune.L1Unstructured, amount=ratio)
        if permanent:
            fold_masks(model)
    return PruneResult(model, method, ratio, before, count_params(model), zeros_before,
                       count_zeros(model), tuple(targets))


def _structured(model, ratio, example, importance, exclude, calibration, loss_fn,
                layers) -> dict[str, nn.Module]:
    if importance not in IMPORTANCES:
        raise CompressionError(f"importance must be one of {', '.join(IMPORTANCES)} "
                               f"(got {importance!r})")
    ignored = [layers[n] for n in exclude]
    try:
        pruner = tp.pruner.MetaPruner(model, example, importance=IMPORTANCES[importance](),
                                      pruning_ratio=ratio, ignored_layers=ignored)
    except Exception as exc:  # tracing a model Torch-Pruning cannot follow
        raise CompressionError(f"structured pruning cannot trace {type(model).__name__} "
                               f"({type(exc).__name__}: {exc}): try unstructured pruning"
                               ) from exc
    if importance == "taylor":
        if calibration is None or loss_fn is None:
            raise CompressionError("taylor importance needs a labelled batch and the loss")
        x, y = calibration
        model.zero_grad()
        loss_fn(model(x), y).backward()
    pruner.step()
    model.zero_grad(set_to_none=True)
    return {n: m for n, m in layers.items() if n not in exclude}

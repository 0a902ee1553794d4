"""Multi-layer perceptron: the default for tabular data, and a baseline for images."""

from __future__ import annotations

import math

from torch import nn

from engine.config import ModelConfig

from .layers import activation


def build_mlp(cfg: ModelConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Flatten, then Linear -> [BatchNorm1d] -> activation -> [Dropout] per hidden width.

    A plain nn.Sequential: torch.compile, pruning tools and export all handle it
    without special cases.
    """
    # Tabular rows are already flat: no Flatten module to call at every step.
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    width = math.prod(input_shape)
    for hidden in cfg.hidden:
        # Batch norm's own shift makes the Linear bias redundant.
        layers.append(nn.Linear(width, hidden, bias=not cfg.batch_norm))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(activation(cfg.activation))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = hidden
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)

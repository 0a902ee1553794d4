"""A small residual network for both image input (C, H, W) and tabular input (F,).

Residual connections let deeper stacks train reliably on small data, so this is
the architecture to reach for when an MLP or the plain CNN stops improving.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.config import ModelConfig

from .cnn import can_halve
from .layers import activation, first


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to a (projected when needed) shortcut.

    Batch norm is always on here: residual conv stacks without it train poorly.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, act: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.act1 = activation(act)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act2 = activation(act)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResidualMLPBlock(nn.Module):
    """Linear -> norm -> activation -> [dropout] -> Linear, added to a (projected) shortcut.

    The norm is BatchNorm1d when model.batch_norm is on, else LayerNorm, which
    does not depend on the batch and so also behaves with tiny batches.
    """

    def __init__(self, in_width: int, width: int, cfg: ModelConfig):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_width, width),
            _norm1d(width, cfg.batch_norm),
            activation(cfg.activation),
            *([nn.Dropout(cfg.dropout)] if cfg.dropout > 0 else []),
            nn.Linear(width, width),
        )
        self.shortcut: nn.Module = (nn.Identity() if in_width == width
                                    else nn.Linear(in_width, width, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


def build_resnet(cfg: ModelConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Image input (3-D shape) gets the convolutional net; any other shape is flattened."""
    if len(input_shape) == 3:
        return _image_resnet(cfg, input_shape, num_outputs)
    return _tabular_resnet(cfg, math.prod(input_shape), num_outputs)


def _image_resnet(cfg: ModelConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Stem conv to channels[0], one BasicBlock per channels entry, global average pool, Linear.

    The stem does not downsample, so the first block keeps full resolution and
    every later block halves it while the result stays at least 2x2.
    """
    in_ch, height, width = input_shape
    stem_ch = first(cfg.channels, "model.channels", "resnet")
    layers: list[nn.Module] = [nn.Conv2d(in_ch, stem_ch, 3, padding=1, bias=False),
                               nn.BatchNorm2d(stem_ch), activation(cfg.activation)]
    in_ch = stem_ch
    for i, out_ch in enumerate(cfg.channels):
        stride = 2 if i > 0 and can_halve(height, width) else 1
        layers.append(BasicBlock(in_ch, out_ch, stride, cfg.activation))
        if stride == 2:
            height, width = (height + 1) // 2, (width + 1) // 2
        in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if cfg.dropout > 0:
        layers.append(nn.Dropout(cfg.dropout))
    layers.append(nn.Linear(in_ch, num_outputs))
    return nn.Sequential(*layers)


def _tabular_resnet(cfg: ModelConfig, in_features: int, num_outputs: int) -> nn.Module:
    """Linear to hidden[0], one ResidualMLPBlock per hidden width, then norm, activation, Linear.

    The head's norm and activation matter: the blocks end in a plain sum, so
    without them the last block's Linear and the output Linear would collapse into one.
    """
    width = first(cfg.hidden, "model.hidden", "resnet")
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_features, width)]
    for hidden in cfg.hidden:
        layers.append(ResidualMLPBlock(width, hidden, cfg))
        width = hidden
    layers += [_norm1d(width, cfg.batch_norm), activation(cfg.activation),
               nn.Linear(width, num_outputs)]
    return nn.Sequential(*layers)


def _norm1d(width: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm1d(width) if batch_norm else nn.LayerNorm(width)

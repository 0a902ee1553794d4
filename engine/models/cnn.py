"""A small convolutional network for image input (C, H, W), sized for images like digits' 8x8."""

from __future__ import annotations

from torch import nn

from engine.config import ModelConfig

from .errors import ModelError
from .layers import activation, first


def can_halve(height: int, width: int) -> bool:
    """Downsample only while the result stays at least 2x2, so tiny images keep some layout."""
    return height >= 4 and width >= 4


def build_cnn(cfg: ModelConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Per entry of cfg.channels: Conv3x3 -> [BatchNorm2d] -> activation -> MaxPool2d(2).

    Then a classifier head of one hidden Linear (cfg.hidden[0]). Shapes are worked
    out here, once, so the forward pass has no Python-side shape logic and stays
    friendly to torch.compile and channels_last.
    """
    if len(input_shape) != 3:
        raise ModelError(f"model.arch='cnn' needs image input (channels, height, width); got "
                         f"input shape {tuple(input_shape)}: use 'mlp' or 'resnet'")
    in_ch, height, width = input_shape
    hidden = first(cfg.hidden, "model.hidden", "cnn")
    layers: list[nn.Module] = []
    for out_ch in cfg.channels:
        layers.append(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not cfg.batch_norm))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(activation(cfg.activation))
        if can_halve(height, width):
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        in_ch = out_ch
    layers.append(nn.Flatten())
    layers += _dropout(cfg.dropout)
    layers += [nn.Linear(in_ch * height * width, hidden), activation(cfg.activation)]
    layers += _dropout(cfg.dropout)
    layers.append(nn.Linear(hidden, num_outputs))
    return nn.Sequential(*layers)


def _dropout(p: float) -> list[nn.Module]:
    return [nn.Dropout(p)] if p > 0 else []

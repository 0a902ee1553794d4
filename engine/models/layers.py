"""Small pieces the built-in architectures share."""

from __future__ import annotations

from torch import nn

from .errors import ModelError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module (not in-place, so hooks and pruning see clean tensors)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ModelError(f"model.activation must be one of {', '.join(map(repr, ACTIVATIONS))} "
                         f"(got {name!r})") from None


def first(values: list[int], key: str, arch: str) -> int:
    """The first width of a list option, with a clear error when the list is empty."""
    if not values:
        raise ModelError(f"{key} must list at least one width for model.arch={arch!r}")
    return values[0]

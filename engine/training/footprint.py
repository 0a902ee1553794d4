"""Refuse a run whose data or model cannot fit in memory, before anything is allocated.

Without this, `model.hidden = [1000000000]` or `data.n_samples = 100000000`
ends in the kernel's out-of-memory killer or a bare allocator error halfway
through building. The model is sized by building it on torch's meta device
(shapes without storage), so the count follows the real builders exactly.
"""

from __future__ import annotations

import math

import psutil
import torch
from torch import nn

from ..config import ConfigError, RunConfig
from ..data.sources import GENERATED
from ..models.registry import ARCHITECTURES
from .setup import num_outputs

# Peak bytes per generated value while sklearn generates (float64), the split
# copies, the scaler transforms and the float32 tensors are made; plus per
# sample for the targets. Measured on synthetic and moons data.
BYTES_PER_VALUE = 28
BYTES_PER_SAMPLE = 32
# Optimizer state per parameter, in parameter-sized slots (L-BFGS adds its history).
STATE_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 2, "adagrad": 1, "lbfgs": 4}


def available_bytes() -> int:
    """Memory this process can still take without swapping (tests replace this)."""
    return psutil.virtual_memory().available


def generated_bytes(cfg: RunConfig) -> int:
    """About the peak memory of making a generated data set (0 for bundled ones, all small)."""
    d = cfg.data
    if d.dataset not in GENERATED:
        return 0
    features = d.n_features if d.dataset == "synthetic" else 2
    return d.n_samples * (features * BYTES_PER_VALUE + BYTES_PER_SAMPLE)


def check_data_fits(cfg: RunConfig) -> None:
    need, free = generated_bytes(cfg), available_bytes()
    if need <= free:
        return
    d = cfg.data
    what = f"data.n_samples={d.n_samples}"
    fix = "lower data.n_samples"
    if d.dataset == "synthetic":
        what += f" x data.n_features={d.n_features}"
        fix += " or data.n_features"
    raise ConfigError(f"{what} needs about {_size(need)} to generate and split "
                      f"(only {_size(free)} of memory is free): {fix}")


def model_size(cfg: RunConfig, input_shape: tuple[int, ...],
               outputs: int) -> tuple[int, int] | None:
    """(parameter and buffer values, activation values per sample) of the built-in model.

    None for a custom model (its file runs only when it is really built) and
    for a config the builder refuses, whose error the real build then gives.
    The model is built on the meta device; activations are counted from the
    layers' shapes, as a meta forward pass would import all of torch's compiler.
    """
    build = ARCHITECTURES.get(cfg.model.arch)
    if build is None:
        return None
    try:
        with torch.device("meta"):
            model = build(cfg.model, input_shape, outputs)
    except Exception:
        return None
    values = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    return values, activation_values(model, input_shape)


def activation_values(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """About the values one sample leaves for the backward pass: every layer's output.

    Walks the layers in order, following the shape through convolutions,
    pooling, flattening and linear layers; any other layer keeps its input's shape.
    """
    shape, total = list(input_shape), 0
    for layer in model.modules():
        if next(layer.children(), None) is not None:
            continue
        if isinstance(layer, nn.Conv2d) and len(shape) == 3:
            (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            shape = [layer.out_channels, (shape[1] + 2 * ph - kh) // sh + 1,
                     (shape[2] + 2 * pw - kw) // sw + 1]
        elif isinstance(layer, nn.MaxPool2d) and len(shape) == 3:
            shape = [shape[0], shape[1] // 2, shape[2] // 2]
        elif isinstance(layer, nn.AdaptiveAvgPool2d) and len(shape) == 3:
            shape = [shape[0], 1, 1]
        elif isinstance(layer, nn.Flatten):
            shape = [math.prod(shape)]
        elif isinstance(layer, nn.Linear):
            shape = [layer.out_features]
        total += math.prod(shape)
    return total


def check_model_fits(cfg: RunConfig, data, device: torch.device) -> None:
    """Refuse a model that cannot fit in free memory; ``data`` (the run's DataBundle) gives
    its shapes.

    The model is built in host memory whatever the device; on the CPU its
    gradients, the optimizer's state and a batch's activations live there too.
    """
    size = model_size(cfg, tuple(data.input_shape), num_outputs(cfg, data.num_classes))
    if size is None:
        return
    values, per_sample = size
    free = available_bytes()
    weights = values * 4
    keys = _size_keys(cfg, data.input_shape)
    needs = "need" if " and " in keys else "needs"
    if weights > free:
        raise ConfigError(f"{keys} {needs} about {_size(weights)} for the parameters alone "
                          f"(only {_size(free)} of memory is free): use smaller layers")
    if device.type != "cpu":
        return
    o = cfg.optim
    slots = STATE_SLOTS[o.name] + (2 * o.lbfgs_history if o.name == "lbfgs" else 0)
    batch = min(cfg.data.batch_size, len(data.x_train))
    total = weights * (2 + slots) + per_sample * batch * 4
    if total > free:
        raise ConfigError(f"{keys} {needs} about {_size(total)} to train on the CPU (parameters, "
                          f"gradients, {o.name}'s state and the activations of a batch of "
                          f"{batch}; only {_size(free)} of memory is free): use smaller layers"
                          f" or a smaller data.batch_size")


def _size_keys(cfg: RunConfig, input_shape) -> str:
    """The options that set the model's size, with their values, for the message."""
    m = cfg.model
    image = len(input_shape) == 3
    keys = {"mlp": ["hidden"], "resnet": ["channels"] if image else ["hidden"]}.get(
        m.arch, ["channels", "hidden"])
    return " and ".join(f"model.{k}={_short(getattr(m, k))}" for k in keys)


def _short(values: list[int]) -> str:
    return str(values) if len(values) <= 6 else f"[{', '.join(map(str, values[:6]))}, ...]"


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"

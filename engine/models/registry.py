"""Build the model a RunConfig asks for, then prove it fits the data with one forward pass.

Architectures are looked up by name in ARCHITECTURES, so a new one is a new
builder plus one entry here (and its name in engine.config.ARCHS, which the
forms and validation offer). ``custom:file.py`` loads a user's builder instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.config import ModelConfig, RunConfig

from .cnn import build_cnn
from .custom import PREFIX, build_custom
from .errors import ModelError
from .mlp import build_mlp
from .resnet import build_resnet

Builder = Callable[[ModelConfig, tuple[int, ...], int], nn.Module]

ARCHITECTURES: dict[str, Builder] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "resnet": build_resnet,
}


def build_model(cfg: RunConfig, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """The model for ``cfg.model.arch``, on the CPU, checked against input_shape and num_outputs.

    Weights are initialised from ``cfg.train.seed`` inside a forked RNG, so the
    same config always gives the same initial model and the caller's random
    state is left as it was.
    """
    arch = cfg.model.arch
    input_shape = tuple(int(d) for d in input_shape)
    if not input_shape or min(input_shape) < 1:
        raise ModelError(f"model.arch={arch!r}: input shape {input_shape} must be a non-empty "
                         f"list of sizes >= 1")
    if num_outputs < 1:
        raise ModelError(f"model.arch={arch!r}: num_outputs must be >= 1 (got {num_outputs})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        if arch.startswith(PREFIX):
            model = build_custom(arch, input_shape, num_outputs)
        elif arch in ARCHITECTURES:
            model = ARCHITECTURES[arch](cfg.model, input_shape, num_outputs)
        else:
            known = ", ".join(repr(a) for a in ARCHITECTURES)
            raise ModelError(f"model.arch must be one of {known} or {PREFIX}path/to/file.py "
                             f"(got {arch!r})")
    check_model(model, arch, input_shape, num_outputs)
    return model


def check_model(model: nn.Module, arch: str, input_shape: tuple[int, ...],
                num_outputs: int) -> None:
    """One eval-mode forward pass of a zero batch of 2; refuse errors and wrong output shapes.

    Catching a mismatch here gives one clear message before training starts,
    instead of a shape error deep inside the loss at the first step.
    """
    where = f"model.arch={arch!r}"
    batch = (2, *input_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(batch))
    except Exception as exc:
        raise ModelError(f"{where}: forward pass of a zero batch of shape {batch} failed with "
                         f"{type(exc).__name__}: {exc}: make the model accept input of shape "
                         f"(batch, {', '.join(map(str, input_shape))})") from exc
    finally:
        model.train(was_training)
    expected = (2, num_outputs)
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{where}: forward returned {type(out).__name__}, expected a tensor of "
                         f"shape {expected} for {num_outputs} outputs")
    if tuple(out.shape) != expected:
        raise ModelError(f"{where}: output has shape {tuple(out.shape)}, expected {expected} "
                         f"for {num_outputs} outputs")

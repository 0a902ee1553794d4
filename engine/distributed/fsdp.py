"""FSDP2 (``torch.distributed.fsdp.fully_shard``): each rank keeps a shard of every parameter.

``fully_shard`` is applied block by block, then to the root, as torch asks
(bottom-up): each block's parameters are all-gathered just before its forward and
freed after, and its gradients are reduce-scattered, so a rank holds whole weights
of one block at a time and only its shard of the rest, of the gradients and of the
optimizer state (which is why the optimizer is built after the wrapping, on the
sharded parameters).

What a block is:
- a custom model's file may name them: ``FSDP_BLOCKS = (torch.nn.TransformerEncoderLayer,)``
  (every outermost module of those classes) or a function ``FSDP_BLOCKS(model)`` returning
  the block modules;
- otherwise (the built-in mlp, cnn and resnet, and custom models that name none), each
  top-level child of the model that holds parameters: a Linear or Conv layer, a residual
  block. Normalization layers are left to the root's group (a few values each, gathered
  once per step with the root), and a model whose parameters all sit in one child
  (a ``body`` Sequential) is looked into.

The data share, the agreed stop, the loss mean and the validation reduce are DDP's
(DataParallel); what differs is the wrapping, accumulation without a gradient sync
(``set_requires_gradient_sync(False)``), the state of a sharded model and optimizer,
and validation, whose forward passes are collectives here.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from ..config import ConfigError
from ..models.custom import declared_blocks
from .group import DataParallel

NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
# a full copy, on rank 0's CPU only: what a one-file checkpoint and a restore need
FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _holds_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def default_blocks(model: nn.Module) -> list[nn.Module]:
    """Each top-level child holding parameters, norms left to the root (see the module doc)."""
    while True:
        children = [c for c in model.children() if _holds_parameters(c)]
        own = next(model.parameters(recurse=False), None) is not None
        if len(children) == 1 and not own and not isinstance(children[0], NORMS):
            model = children[0]  # everything sits in one container: its children are the blocks
            continue
        return [c for c in children if not isinstance(c, NORMS)]


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The modules ``fully_shard`` wraps one by one before the root; ConfigError naming the
    custom file when what it declares is not usable."""
    declared = declared_blocks(model)
    if declared is None:
        return default_blocks(model)
    spec, where = declared
    if callable(spec) and not isinstance(spec, type):
        try:
            blocks = list(spec(model))
        except Exception as exc:
            raise ConfigError(f"{where}: calling it on the model raised {type(exc).__name__}: "
                              f"{exc}: make it return the model's block modules") from None
        owned = {id(m) for m in model.modules()}
        if not all(isinstance(b, nn.Module) and id(b) in owned and b is not model
                   for b in blocks):
            raise ConfigError(f"{where}: it must return submodules of the model (not the model "
                              f"itself), got {[type(b).__name__ for b in blocks]}")
        return blocks
    classes = tuple(spec) if isinstance(spec, (tuple, list)) else (spec,)
    if not classes or not all(isinstance(c, type) and issubclass(c, nn.Module) for c in classes):
        raise ConfigError(f"{where}: expected a tuple of torch.nn.Module classes or a function "
                          f"of the model, got {spec!r}")
    blocks: list[nn.Module] = []
    for name, module in model.named_modules():
        if module is not model and isinstance(module, classes) and not any(
                name.startswith(f"{outer}.") for outer, _ in blocks):
            blocks.append((name, module))
    if not blocks:
        names = ", ".join(c.__name__ for c in classes)
        raise ConfigError(f"{where}: the model has no module of class {names}: name classes "
                          f"the model is built from")
    return [m for _, m in blocks]


def mixed_precision(amp: str, device: torch.device) -> MixedPrecisionPolicy:
    """precision.amp as FSDP2's policy on CUDA: parameters gathered in bf16/fp16, gradients
    reduced in fp32. On the CPU the parameters stay fp32 (autocast still applies)."""
    if device.type != "cuda" or amp == "off":
        return MixedPrecisionPolicy()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def shard(model: nn.Module, policy: MixedPrecisionPolicy) -> list[nn.Module]:
    """``fully_shard`` each block, then the root (in place); the blocks."""
    blocks = blocks_of(model)
    for block in blocks:
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return blocks


class FullyShardedRank(DataParallel):
    """One rank of an FSDP2 run (the collectives the Trainer calls are DDP's)."""

    strategy = "fsdp"

    def __init__(self, *args, amp: str = "off"):
        super().__init__(*args)
        self.amp = amp
        self.root: nn.Module | None = None
        self.blocks: list[nn.Module] = []

    def wrap(self, model: nn.Module) -> nn.Module:
        """Shard ``model`` in place: the model the Trainer keeps is the sharded one."""
        self.blocks = shard(model, mixed_precision(self.amp, self.device))
        self.root = model
        return model

    def wrap_note(self) -> str:
        return (f"fsdp: fully_shard on {len(self.blocks)} block(s) "
                f"({', '.join(sorted({type(b).__name__ for b in self.blocks})) or 'none'}) "
                f"and the root")

    @contextlib.contextmanager
    def no_sync(self):
        """Accumulate without reduce-scatter (a non-final micro-batch)."""
        root: FSDPModule = self.root
        root.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            root.set_requires_gradient_sync(True)

    def model_state(self, model: nn.Module) -> dict:
        """The whole model's state, gathered on rank 0's CPU ({} on the other ranks): every
        rank must call this at the same point (early stopping's best weights; checkpoints
        are sharded: engine.training.sharded)."""
        return get_model_state_dict(model, options=FULL)

    def load_model_state(self, model: nn.Module, state: dict) -> None:
        """Restore what model_state gave rank 0; rank 0 sends each rank its shards."""
        set_model_state_dict(model, state, options=StateDictOptions(
            full_state_dict=True, broadcast_from_rank0=True))

    def attach(self, trainer) -> None:
        """At the end of a completed loop every rank joins one gather of the whole model
        onto rank 0 (whole_model's weights), while all ranks are still in step."""
        from ..training import events as ev

        self._end_state: dict | None = None
        trainer.on(ev.LoopEnded, self._gather_at_end)

    def _gather_at_end(self, event) -> None:
        if event.status == "completed":
            self._end_state = get_model_state_dict(self.root, options=FULL)

    def whole_model(self, trainer) -> nn.Module:
        """The model whole, for rank 0 alone (its forward passes must not be collectives):
        rebuilt from the config with the weights gathered at the end of the loop. Not read
        back from the sharded checkpoint: rank 0 would load shards alone while the other
        ranks wait in the group's last barrier (a rank then aborted, now and then)."""
        from ..models import build_model
        from ..training.setup import num_outputs

        if not getattr(self, "_end_state", None):
            raise RuntimeError("the model is sharded across the processes, and the run ended "
                               "before it was gathered whole")
        cfg, data = trainer.config, trainer.data
        model = build_model(cfg, tuple(data.input_shape), num_outputs(cfg, data.num_classes))
        model.load_state_dict(self._end_state)
        return model.to(trainer.device)

    def validation_forwards(self, batches: int) -> int:
        """How many forward passes validation makes on every rank: each one all-gathers, so
        a rank with fewer batches pads with empty ones."""
        t = torch.tensor([batches], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return int(t.item())


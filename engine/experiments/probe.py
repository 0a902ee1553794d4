"""Training steps on a copy of a Trainer's model and optimizer, for the tuners.

The LR range test and the batch-size finder take real optimizer steps; they
take them on deep copies, inside ``untouched``, so the run they were asked
about trains afterwards exactly as if they had never run (same weights, same
optimizer state, same random draws).
"""

from __future__ import annotations

import contextlib
import copy

import torch

from ..config import ConfigError
from ..training.rng import rng_state, set_rng_state


@contextlib.contextmanager
def untouched(trainer):
    """Probe ``trainer``'s run under its own torch settings (train.threads, precision.tf32,
    as Trainer.run sets them: a finder's speeds are the run's), then restore those and
    the process's random generators (torch, CUDA, numpy, Python) on exit."""
    state = rng_state()
    try:
        with trainer.settings.applied():
            yield
    finally:
        set_rng_state(state)


class StepProbe:
    """One optimizer step per batch on copies of ``trainer``'s model and optimizer.

    The step is the Trainer's own (autocast, gradient scaling, augmentation of
    training batches, train mode with frozen norms kept in eval); gradient
    accumulation, L1/L2 penalties and distillation are left out: a probe step
    is one batch and the task loss.
    """

    def __init__(self, trainer):
        if isinstance(trainer.optimizer, torch.optim.LBFGS):
            raise ConfigError("optim.name='lbfgs' searches its own step length: the LR range "
                              "test and batch-size finder need a first-order optimizer "
                              "(sgd, adam, adamw, rmsprop, adagrad)")
        self.trainer = trainer
        # One deepcopy of both keeps the optimizer pointing at the copied parameters.
        self.model, self.optimizer = copy.deepcopy((trainer.model, trainer.optimizer))
        self.model.train()
        frozen = {id(m) for m in trainer.frozen_norms}
        for original, twin in zip(trainer.model.modules(), self.model.modules()):
            if id(original) in frozen:
                twin.eval()
        self.shares = [g["lr"] / trainer.config.optim.lr for g in self.optimizer.param_groups]
        self.scaler = (torch.amp.GradScaler("cuda") if trainer.precision.scaler is not None
                       else None)

    def set_lr(self, lr: float) -> None:
        """Every group at ``lr`` times its share of optim.lr (optim.backbone_lr_scale)."""
        for group, share in zip(self.optimizer.param_groups, self.shares):
            group["lr"] = lr * share

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Train on one batch; the loss before the step (on the device, not read)."""
        t = self.trainer
        if t.train_loader.on_device != t.device:
            x, y = x.to(t.device, non_blocking=True), y.to(t.device, non_blocking=True)
        if t.augment is not None:
            x, y = t.augment(x, y)
        if t.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with t.precision.autocast():
            loss = t.loss_fn(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            clip = t.config.train.grad_clip_norm
            if clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.optimizer.step()
        return loss.detach()

    def close(self) -> None:
        """Free the copies (on a GPU, their memory goes back to the cache's pool)."""
        self.model = self.optimizer = None
        if self.trainer.device.type == "cuda":
            torch.cuda.empty_cache()


def batches(loader, first_epoch: int = 1):
    """The loader's training batches, epoch after epoch, without end."""
    epoch = first_epoch
    while True:
        yield from loader.epoch(epoch, 0)
        epoch += 1

"""Handlers that give the Trainer its features: early stopping and checkpointing.

Each attaches itself to the events it needs; the loop knows nothing of them.
"""

from __future__ import annotations

import math

import torch

from . import events as ev
from .validation import is_better


class EarlyStopping:
    """Stops after ``patience`` epochs without improvement and restores the best weights."""

    def __init__(self, metric: str, patience: int, min_delta: float = 0.0):
        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.trainer = None

    def attach(self, trainer) -> None:
        self.trainer = trainer
        trainer.on(ev.ValidationEnded, self._on_validation)
        trainer.on(ev.LoopEnded, self._on_loop_ended)
        trainer.register_state("early_stopping", self)

    def _on_validation(self, event: ev.ValidationEnded) -> None:
        value = event.metrics.get(self.metric, math.nan)
        if not math.isfinite(value):
            return
        if self.best is None or is_better(self.metric, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, event.epoch, 0
            self.best_weights = {k: v.detach().clone()
                                 for k, v in self.trainer.model_state().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.trainer.stop("early_stopping")

    def _on_loop_ended(self, event: ev.LoopEnded) -> None:
        # A user stop keeps the current weights so that resuming continues exactly.
        if event.status == "completed" and self.best_weights is not None:
            self.trainer.load_model_state(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        """Restore from a checkpoint; a mangled part is a ValueError naming it (the trainer
        reports it as a checkpoint that does not fit), not a crash epochs later."""
        best, best_epoch, wait, weights = (state["best"], state["best_epoch"], state["wait"],
                                           state["best_weights"])
        for name, value in (("best_epoch", best_epoch), ("wait", wait)):
            if type(value) is not int or value < 0:
                raise ValueError(f"early_stopping.{name} must be a whole number >= 0 "
                                 f"(got {type(value).__name__})")
        if best is not None and (type(best) is not float or not math.isfinite(best)):
            raise ValueError(f"early_stopping.best must be a finite number or None "
                             f"(got {type(best).__name__})")
        if weights is not None and not (isinstance(weights, dict) and all(
                isinstance(v, torch.Tensor) for v in weights.values())):
            raise ValueError("early_stopping.best_weights must be a state dict of tensors")
        self.best, self.best_epoch, self.wait, self.best_weights = best, best_epoch, wait, weights


class Checkpointer:
    """Writes last.pt every ``every`` epochs, at the end of a run and when it is stopped."""

    def __init__(self, every: int):
        self.every = every
        self.trainer = None

    def attach(self, trainer) -> None:
        self.trainer = trainer
        trainer.on(ev.EpochEnded, self._on_epoch, last=True)
        trainer.on(ev.LoopEnded, self._on_loop_ended, last=True)

    def _on_epoch(self, event: ev.EpochEnded) -> None:
        if self.every and event.epoch % self.every == 0:
            self.trainer.save_checkpoint("interval")

    def _on_loop_ended(self, event: ev.LoopEnded) -> None:
        # A failed run keeps its last good checkpoint: its weights may be NaN. On a full
        # disk a write would fail again: the last good one stays.
        if event.status in ("completed", "stopped") and event.cause != "disk_full":
            self.trainer.save_checkpoint("end" if event.status == "completed" else "stop")

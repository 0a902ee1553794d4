"""The handler that reports a trial's objective to Optuna each epoch and prunes it.

It attaches to the Trainer's EpochEnded event like any other handler; when the
pruner says so it stops the run (reason "pruned"), which then ends at the next
step boundary. The search marks that run's record pruned.
"""

from __future__ import annotations

import math

from engine.training import events as ev


class PruningHandler:
    def __init__(self, trial, objective: str):
        self.trial = trial
        self.objective = objective
        self.pruned = False
        self.value: float | None = None  # the last epoch's objective
        self._trainer = None

    def attach(self, trainer) -> PruningHandler:
        self._trainer = trainer
        trainer.on(ev.EpochEnded, self._on_epoch)
        return self

    def _on_epoch(self, e: ev.EpochEnded) -> None:
        if self.objective not in e.metrics:
            # Raised inside the loop, so the run fails with this message and so does the trial.
            raise ValueError(f"search.objective={self.objective!r} is not measured by this run "
                             f"(it measures {', '.join(sorted(e.metrics)) or 'nothing'})")
        value = float(e.metrics[self.objective])
        if not math.isfinite(value):
            return  # a NaN validation is the run's own failure to report, not a value
        self.value = value
        self.trial.report(value, e.epoch)
        if self.trial.should_prune():
            self.pruned = True
            self._trainer.stop("pruned")

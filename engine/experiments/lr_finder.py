"""LR range test: an exponential learning-rate sweep on a copy of the run, and a suggestion.

Leslie Smith's range test as PyTorch Lightning's Tuner and fastai's
``lr_find`` run it: the rate grows geometrically from ``start_lr`` to
``end_lr`` over ``steps`` optimizer steps, one training batch each, on copies
of the model and optimizer (engine.experiments.probe); the sweep stops early
when the loss diverges.

The suggestion rule (``RULE``, fastai's "valley"): smooth the recorded losses
without lag (a running median over 5 steps drops single spikes, then a centred
mean over 9), find the longest descent of the smoothed curve (the longest
chain of ever-lower values) and suggest the rate half way along it. The
descent ends at the minimum, before the divergence tail; an early spike is
gone in the median and cannot start a long chain. The rate where the loss
falls fastest (Lightning's rule) and the minimum's rate / 10 (fastai's older
one) are reported beside it as cross-checks.

Why not the steepest point: the rate grows 5% or more per step, and the loss
answers a rate some steps late, so the steepest fall shows up at a rate up to
ten times too high; on the digits problems it suggested rates that trained
worse than the grid's best by 2 to 80 points (bench/lr_finder.py).
The default sweep takes 300 steps over 8 decades: fewer steps make that lag
worse (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..config import ConfigError
from .probe import StepProbe, batches, untouched

RULE = "middle of the longest descent (valley) of the smoothed loss"
DIVERGE = 4.0  # the sweep stops once the running loss exceeds 4x its lowest value
MEDIAN, MEAN = 5, 9


@dataclass
class LrSweep:
    """The sweep and its suggestion, as plain data (``as_json`` is the CLI's --json object)."""

    suggested_lr: float | None
    rule: str
    reason: str
    min_loss_lr: float | None  # the cross-check: rate at the smoothed minimum / 10
    stopped: str  # "end" (all steps) or "diverged"
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def lr_range_test(trainer, *, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 300,
                  diverge: float = DIVERGE, on_step=None) -> LrSweep:
    """Sweep ``trainer``'s run from ``start_lr`` to ``end_lr``; its own state is left as it was.

    ``on_step(i, lr, loss)`` is called after each step (progress for a caller).
    """
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"the sweep needs 0 < start lr < end lr (got {start_lr:g} to "
                          f"{end_lr:g})")
    if steps < 20:
        raise ConfigError(f"an LR sweep needs at least 20 steps to smooth its curve "
                          f"(got {steps})")
    factor = (end_lr / start_lr) ** (1 / (steps - 1))
    lrs, losses = [], []
    stopped, running, best, beta = "end", 0.0, math.inf, 0.9
    with untouched(trainer):
        probe = StepProbe(trainer)
        try:
            stream = batches(trainer.train_loader)
            for i in range(steps):
                lr = start_lr * factor ** i
                probe.set_lr(lr)
                x, y = next(stream)
                loss = float(probe.step(x, y))  # one read per step: the sweep is its curve
                if not math.isfinite(loss):
                    stopped = "diverged"
                    break
                lrs.append(lr)
                losses.append(loss)
                if on_step is not None:
                    on_step(i, lr, loss)
                running = beta * running + (1 - beta) * loss
                debiased = running / (1 - beta ** (i + 1))
                best = min(best, debiased)
                if i >= 10 and debiased > diverge * best:
                    stopped = "diverged"
                    break
        finally:
            probe.close()
    return suggest(lrs, losses, stopped)


def smooth(losses) -> np.ndarray:
    """A running median (single spikes gone), then a centred running mean (no lag)."""
    from scipy.ndimage import median_filter, uniform_filter1d

    values = np.asarray(losses, dtype=float)
    if len(values) < MEAN:
        return values
    return uniform_filter1d(median_filter(values, MEDIAN, mode="nearest"), MEAN,
                            mode="nearest")


def valley(smoothed) -> tuple[int, int]:
    """(first, last) index of the longest descent of the curve: the longest chain of
    ever-lower values (fastai's "valley"), taken as the stretch of steps it spans."""
    n = len(smoothed)
    chain, end = [1] * n, 0
    for i in range(1, n):
        for j in range(i):
            if smoothed[i] < smoothed[j] and chain[i] < chain[j] + 1:
                chain[i] = chain[j] + 1
        if chain[i] > chain[end]:
            end = i
    return end - chain[end] + 1, end


def suggest(lrs, losses, stopped: str = "end") -> LrSweep:
    """The suggestion for a recorded sweep by ``RULE``, with the reason in words."""
    lrs, losses = list(map(float, lrs)), list(map(float, losses))
    smoothed = smooth(losses)
    curve = dict(lrs=lrs, losses=losses, smoothed=[float(v) for v in smoothed])
    if len(lrs) < 2 * MEAN:
        return LrSweep(None, RULE, f"The loss diverged after {len(lrs)} steps, before a curve "
                       f"could be drawn: start the sweep at a lower rate", None, stopped,
                       **curve)
    lowest = int(np.argmin(smoothed))
    min_lr = lrs[lowest] / 10
    first, last = valley(smoothed)
    if last - first < max(5, len(lrs) // 20):
        return LrSweep(min_lr, RULE, f"The smoothed loss never fell for long: it is lowest "
                       f"at lr={lrs[lowest]:.2g}, so no valley can be found; suggesting that "
                       f"rate / 10. Try a wider sweep or more steps", min_lr, stopped, **curve)
    pick = (first + last) // 2
    lr = lrs[pick]
    slope = np.gradient(smoothed, np.log10(lrs))
    steep = first + int(np.argmin(slope[first:last + 1]))
    tail = (f"; the sweep stopped at lr={lrs[-1]:.2g} where the loss diverged"
            if stopped == "diverged" else "")
    reason = (f"The longest descent of the smoothed loss runs from lr={lrs[first]:.2g} "
              f"({smoothed[first]:.3g}) to lr={lrs[last]:.2g} ({smoothed[last]:.3g}); its "
              f"middle is lr={lr:.2g}{tail}. Cross-checks: steepest descent at "
              f"lr={lrs[steep]:.2g}, minimum / 10 = {min_lr:.2g}")
    return LrSweep(lr, RULE, reason, min_lr, stopped, **curve)

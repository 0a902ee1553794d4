"""Batch-size finder: real training steps at growing batch sizes, their throughput, the knee.

Sizes are powers of two from ``start`` up. Each is tried with a few real
optimizer steps on a copy of the run (engine.experiments.probe). The search
stops at the first size that cannot run: on CUDA an out-of-memory error is
caught, the cache emptied and the previous size is the largest that fits; on
the CPU a size is not tried once the existing footprint check
(engine.training.footprint) says the step would not fit in the free RAM, so the
machine never swaps. The training split's size ends the search too: a batch
cannot be larger than the data.

The knee is the smallest size whose throughput reaches ``KNEE`` of the best:
beyond it a larger batch buys little speed and costs generalisation.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from ..config import ConfigError
from ..training.footprint import check_model_fits
from ..training.loader import BatchLoader
from .probe import StepProbe, untouched

KNEE = 0.9
MIN_SECONDS = 0.3  # timed steps per size go on until they add up to this (small batches)


@dataclass
class SizeTrial:
    batch_size: int
    samples_per_s: float | None  # None: the size did not fit
    peak_bytes: int | None  # CUDA's max_memory_allocated during its steps (None on the CPU)


@dataclass
class BatchSizeSearch:
    suggested: int | None  # the knee
    largest_fitting: int | None
    stopped: str  # "oom" | "ram" | "data" | "limit" | "error"
    reason: str
    trials: list[SizeTrial] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def find_batch_size(trainer, *, start: int = 8, limit: int = 65536, steps: int = 5,
                    on_size=None) -> BatchSizeSearch:
    """Try powers of two from ``start`` to ``limit``; ``trainer``'s own state is untouched.

    At least ``steps`` timed steps, and MIN_SECONDS of them, follow one untimed
    warm-up step per size; a size's throughput
    is its batch over the fastest step's time: other work on a busy machine only
    ever slows a step down, so the fastest is the one it disturbed least.
    ``on_size(trial)`` is called after each size (progress for a caller).
    """
    if start < 1 or limit < start:
        raise ConfigError(f"the batch-size search needs 1 <= start <= limit (got {start} and "
                          f"{limit})")
    data, device = trainer.data, trainer.device
    n_train = len(data.y_train)
    trials: list[SizeTrial] = []
    stopped, why = "limit", f"reached the limit of {limit}"
    size = start
    with untouched(trainer):
        while size <= limit:
            if size > n_train:
                stopped, why = "data", f"the training split has {n_train} samples"
                break
            if device.type == "cpu":
                try:
                    check_model_fits(trainer.config.with_overrides(
                        [f"data.batch_size={size}"]), data, device)
                except ConfigError as exc:
                    stopped, why = "ram", f"batch {size} would not fit in free RAM ({exc})"
                    break
            try:
                trial = _try_size(trainer, size, steps)
            except Exception as exc:  # the model's own failure at this size, said as such
                stopped, why = "error", f"batch {size} failed: {type(exc).__name__}: {exc}"
                break
            if trial is None:
                stopped, why = "oom", f"batch {size} ran out of {device.type.upper()} memory"
                trials.append(SizeTrial(size, None, None))
                if on_size is not None:
                    on_size(trials[-1])
                break
            trials.append(trial)
            if on_size is not None:
                on_size(trial)
            size *= 2
    return summarize(trials, stopped, why)


def _try_size(trainer, size: int, steps: int) -> SizeTrial | None:
    cuda = trainer.device.type == "cuda"
    probe = None
    try:
        probe = StepProbe(trainer)
        loader = BatchLoader(trainer.train_loader.x, trainer.train_loader.y, size,
                             shuffle=True, seed=0, device=trainer.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(trainer.device)
        stream = _cycle(loader)
        times: list[float] = []
        warm = False  # the first step warms up kernels and allocates optimizer state
        while len(times) < steps or sum(times) < MIN_SECONDS:
            x, y = next(stream)
            started = time.perf_counter()
            loss = probe.step(x, y)
            float(loss)  # the step has finished on the device
            if warm:
                times.append(time.perf_counter() - started)
            warm = True
        fastest = min(times)
        peak = int(torch.cuda.max_memory_allocated(trainer.device)) if cuda else None
        return SizeTrial(size, len(y) / fastest if fastest > 0 else None, peak)
    except torch.OutOfMemoryError:
        return None
    finally:
        if probe is not None:
            probe.close()


def _cycle(loader):
    epoch = 1
    while True:
        yield from loader.epoch(epoch, 0)
        epoch += 1


def summarize(trials: list[SizeTrial], stopped: str, why: str) -> BatchSizeSearch:
    """The knee: the smallest size reaching KNEE of the best throughput, and why."""
    ran = [t for t in trials if t.samples_per_s]
    if not ran:
        return BatchSizeSearch(None, None, stopped, f"No batch size could train: {why}", trials)
    best = max(ran, key=lambda t: t.samples_per_s)
    knee = next(t for t in ran if t.samples_per_s >= KNEE * best.samples_per_s)
    largest = ran[-1].batch_size
    reason = (f"Batch {knee.batch_size} reaches {knee.samples_per_s / best.samples_per_s:.0%} "
              f"of the best throughput ({best.samples_per_s:.0f} samples/s at batch "
              f"{best.batch_size}); the largest that fits is {largest}; the search stopped "
              f"because {why}")
    return BatchSizeSearch(knee.batch_size, largest, stopped, reason, trials)

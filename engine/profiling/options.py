"""What a profiler capture records and where it goes: plain values, no torch.

The window imports these to build a request without loading torch; the
capture itself (engine.profiling.capture) runs in the training process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

PROFILE_DIR = "profile"
# The trainer's annotation around its once-per-train.log_every read of the loss: a
# deliberate sync, which the advisor does not count as the step's own.
LOG_ANNOTATION = "Trainer.log"


@dataclass(frozen=True)
class CaptureOptions:
    """What to record: the schedule (in optimizer steps) and the profiler's options."""
    wait: int = 1
    warmup: int = 1
    active: int = 3
    record_shapes: bool = True
    profile_memory: bool = True
    with_stack: bool = False

    def validate(self) -> None:
        for key, low in (("wait", 0), ("warmup", 0), ("active", 1)):
            value = getattr(self, key)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"profiler {key} must be a whole number >= {low} (got {value!r})")

    @property
    def steps(self) -> int:
        """Optimizer steps the capture spans, from arming to its written trace."""
        return self.wait + self.warmup + self.active


@dataclass(frozen=True)
class CaptureResult:
    """Where a capture went and how it ended (plain data: crosses to the window)."""
    folder: str
    trace: str | None  # the written trace file; None when nothing was recorded
    partial: bool  # the run ended before all active steps were recorded
    error: str | None = None


def capture_name() -> str:
    """A capture folder name that sorts by time: ``capture-20261122-164512``."""
    return time.strftime("capture-%Y%m%d-%H%M%S")


def profiling_config(config, options: CaptureOptions):
    """The config of a short dedicated run that lasts exactly the capture's steps."""
    cfg = config.copy()
    cfg.set("train.max_steps", options.steps)
    cfg.set("train.epochs", max(cfg.train.epochs, options.steps))  # >= 1 step per epoch
    cfg.validate()
    return cfg

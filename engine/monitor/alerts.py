"""Warnings worth a glance, from a stream of samples: memory nearly full, a GPU that
sits idle while training (the input pipeline is likely the bottleneck), throttling.

Qt-free, so the dock and `torchwork monitor` say the same thing in the same words.
"""

from __future__ import annotations

import math

from .sampler import Sample

MEMORY_FRACTION = 0.90
IDLE_UTILIZATION = 30.0  # %
IDLE_AFTER_S = 30.0


class Alerts:
    """Feed it every sample in order; ``update`` returns the warnings that hold now."""

    def __init__(self, memory_fraction: float = MEMORY_FRACTION,
                 idle_utilization: float = IDLE_UTILIZATION, idle_after_s: float = IDLE_AFTER_S):
        self.memory_fraction = memory_fraction
        self.idle_utilization = idle_utilization
        self.idle_after_s = idle_after_s
        self._idle_since: dict[int, float] = {}  # GPU index -> time its low utilization began

    def update(self, sample: Sample, training: bool) -> list[str]:
        warnings = []
        for g in sample.gpus:
            label = f"GPU {g.index}"
            fraction = g.memory_fraction
            if fraction > self.memory_fraction:
                warnings.append(f"{label} memory {100 * fraction:.0f}% full "
                                f"({g.memory_used / 2**30:.1f} of {g.memory_total / 2**30:.1f} "
                                f"GiB): a bigger batch or model may run out of memory")
            low = training and math.isfinite(g.utilization) and \
                g.utilization < self.idle_utilization
            if not low:
                self._idle_since.pop(g.index, None)
            else:
                since = self._idle_since.setdefault(g.index, sample.time)
                if sample.time - since >= self.idle_after_s:
                    warnings.append(f"{label} mostly idle (under {self.idle_utilization:.0f}% for "
                                    f"{sample.time - since:.0f} s): the input pipeline may be the "
                                    f"bottleneck (try more workers, pinned memory, a bigger "
                                    f"batch)")
            if g.thermal_throttled:
                warnings.append(f"{label} is slowing its clocks to cool down (thermal "
                                f"throttling at {g.temperature:.0f} °C)")
            if g.power_throttled:
                warnings.append(f"{label} is held back by its power limit (power throttling at "
                                f"{g.power:.0f} of {g.power_limit:.0f} W)")
        return warnings

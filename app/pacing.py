"""How much of the machine the window may take while a run trains. No Qt here.

The window's periodic work (the bridge handing events to the panels, the
status bar, the plots' redraws) is paced: each plot waits a multiple of what
its last frame cost before drawing again. A CPU run on a machine of few cores
has a torch thread on every core, and each millisecond the window takes stalls
them all at their next barrier (measured on 2 cores: the window's ~4% of one
core cost the run ~10%). Such a run gets the FRUGAL pace: curves every few
seconds, progress once a second. A GPU run, or a CPU run on a machine with
cores to spare, gets the NORMAL one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FRUGAL_CORES = 4  # a CPU run on this many cores or fewer leaves none to spare


@dataclass(frozen=True)
class Pace:
    delivery_ms: int  # how often the bridge hands the run's events to the panels
    status_s: float  # how often the status bar's progress and ETA change
    plot_budget: int  # the training plots wait this many times a frame's cost...
    plot_max_ms: int  # ...but never longer than this
    hardware_budget: int  # the same for the hardware dock's rolling plots
    hardware_max_ms: int

    def plot_wait_ms(self, spent_ms: float, shortest_ms: int) -> int:
        """How long the training plots wait after a redraw that took ``spent_ms``."""
        return _wait_ms(self.plot_budget * spent_ms, shortest_ms, self.plot_max_ms)

    def hardware_wait_ms(self, spent_ms: float, shortest_ms: int) -> int:
        """How long the hardware dock waits after a redraw that took ``spent_ms``."""
        return _wait_ms(self.hardware_budget * spent_ms, shortest_ms, self.hardware_max_ms)


def _wait_ms(wanted_ms: float, shortest_ms: int, longest_ms: int) -> int:
    return int(min(max(shortest_ms, wanted_ms), longest_ms))


NORMAL = Pace(delivery_ms=50, status_s=0.25, plot_budget=25, plot_max_ms=1000,
              hardware_budget=50, hardware_max_ms=2000)  # drawing <= 4% and 2% of a core
FRUGAL = Pace(delivery_ms=250, status_s=1.0, plot_budget=100, plot_max_ms=3000,
              hardware_budget=200, hardware_max_ms=5000)  # <= 1% and 0.5%


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def pace_for(device: str) -> Pace:
    """The pace while a run trains on ``device`` ("cpu", "cuda", "mps", ...)."""
    return FRUGAL if device == "cpu" and available_cores() <= FRUGAL_CORES else NORMAL

"""Hardware monitor: GPU readings through NVML (pynvml), torch memory, CPU and RAM (psutil).

``HardwareRecorder`` (which records a Trainer's run) lives in engine.monitor.recorder:
it needs engine.training, and so torch, which a plain monitor does not.
"""

from engine.monitor.alerts import Alerts
from engine.monitor.sampler import (
    DEFAULT_INTERVAL_S,
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    GpuReading,
    Sample,
    Sampler,
    check_interval,
)

__all__ = ["Alerts", "DEFAULT_INTERVAL_S", "GpuReading", "MAX_INTERVAL_S", "MIN_INTERVAL_S",
           "Sample", "Sampler", "check_interval"]

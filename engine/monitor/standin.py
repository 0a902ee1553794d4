"""An NVML stand-in: pynvml's function names, constants and error types, answering with
realistic values for made-up GPUs.

Used where no NVIDIA GPU is at hand: the tests drive the GPU code paths with
it (failures included, by raising pynvml's own NVMLError subclasses from a
chosen call), the overhead bench measures the per-reading cost with it, and
the docs screenshot shows the dock's GPU plots with it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import pynvml

GIB = 1024 ** 3


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _Memory:
    total: int
    used: int
    free: int
    reserved: int = 0  # v2 only: what the driver keeps for itself


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int | None  # pynvml's spelling


class StandInNvml:
    """Looks like the pynvml module to engine.monitor.backends.NvmlBackend.

    ``fail[name] = exc`` makes the call ``name`` raise ``exc`` (an NVMLError
    instance) from then on; ``memory_used``, ``utilization``,
    ``throttle_reasons`` and ``energy_mj`` per GPU set what it answers. As a real driver does,
    memory info v1 counts the driver's own ``memory_reserved`` as used and v2
    (``nvmlDeviceGetMemoryInfo_v2``, what nvidia-smi shows) leaves it out.
    """

    NVMLError = pynvml.NVMLError
    NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported
    NVMLError_NoPermission = pynvml.NVMLError_NoPermission
    NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = pynvml.NVMLError_DriverNotLoaded
    NVMLError_FunctionNotFound = pynvml.NVMLError_FunctionNotFound
    nvmlMemory_v2 = pynvml.nvmlMemory_v2
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM = pynvml.NVML_CLOCK_MEM
    NVML_PCIE_UTIL_TX_BYTES = pynvml.NVML_PCIE_UTIL_TX_BYTES
    NVML_PCIE_UTIL_RX_BYTES = pynvml.NVML_PCIE_UTIL_RX_BYTES

    def __init__(self, count: int = 1, name: str = "NVIDIA H100 80GB HBM3",
                 memory_total: int = 80 * GIB, pids: tuple[int, ...] | None = None):
        self.count = count
        self.name = name
        self.memory_total = memory_total
        self.pids = pids if pids is not None else (os.getpid(),)
        self.memory_used = [int(0.3 * memory_total)] * count
        self.memory_reserved = 480 * 2 ** 20  # about what an H100's driver keeps
        self.utilization = [87] * count
        self.throttle_reasons = [0] * count
        self.energy_mj = [123_456_789] * count  # since the driver loaded
        self.fail: dict[str, Exception] = {}
        self.calls: dict[str, int] = {}
        self.initialised = False

    def _enter(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.fail:
            raise self.fail[name]

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < self.count:
            raise pynvml.NVMLError_InvalidArgument()
        return index

    def nvmlDeviceGetName(self, h: int) -> str:
        self._enter("nvmlDeviceGetName")
        return self.name

    def nvmlDeviceGetUUID(self, h: int) -> str:
        self._enter("nvmlDeviceGetUUID")
        return f"GPU-00000000-0000-0000-0000-00000000000{h}"

    def nvmlDeviceGetUtilizationRates(self, h: int) -> _Utilization:
        self._enter("nvmlDeviceGetUtilizationRates")
        return _Utilization(self.utilization[h], self.utilization[h] // 2)

    def nvmlDeviceGetMemoryInfo(self, h: int, version: int | None = None) -> _Memory:
        used, reserved = self.memory_used[h], self.memory_reserved
        if version:
            self._enter("nvmlDeviceGetMemoryInfo_v2")
            return _Memory(self.memory_total, used, self.memory_total - used - reserved,
                           reserved)
        self._enter("nvmlDeviceGetMemoryInfo")
        return _Memory(self.memory_total, used + reserved, self.memory_total - used - reserved)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        self._enter("nvmlDeviceGetPowerUsage")
        return int(300_000 + 150_000 * math.sin(time.monotonic() / 7 + h))  # mW

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit")
        return 700_000

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature")
        return 64 + h

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        self._enter("nvmlDeviceGetClockInfo")
        return 1980 if clock == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetPcieThroughput(self, h: int, counter: int) -> int:
        self._enter("nvmlDeviceGetPcieThroughput")
        return 1_200_000 if counter == self.NVML_PCIE_UTIL_TX_BYTES else 5_600_000  # KB/s

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[_Process]:
        self._enter("nvmlDeviceGetComputeRunningProcesses")
        mine = [_Process(pid, int(0.25 * self.memory_used[h])) for pid in self.pids]
        return [_Process(1, 512 * 1024 ** 2), *mine]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        self._enter("nvmlDeviceGetCurrentClocksEventReasons")
        return self.throttle_reasons[h]

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        self._enter("nvmlDeviceGetTotalEnergyConsumption")
        return self.energy_mj[h]  # mJ

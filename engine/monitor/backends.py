"""Where hardware readings come from: NVML (through pynvml), torch's allocator, psutil.

Each backend reads what it can and never raises: a library that is missing,
a GPU that is lost mid-run or a field this GPU does not support becomes one
problem, reported once in plain words through ``report``, and the reading
goes on without it. The sampler thread calls ``read`` many times a second, so
everything that costs (nvmlInit, device handles, the psutil.Process) is done
once and kept.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable

NAN = math.nan
GIB = 1024 ** 3
PCIE_EVERY_S = 1.0  # nvmlDeviceGetPcieThroughput samples the bus for ~20 ms: read it 1/s at most
HOST_EVERY_S = 1.0  # machine CPU %, RAM and RSS: see PsutilBackend
MIN_CPU_WINDOW_S = 0.05

# NVML clocks-event (throttle) reason bits; the same values under both of pynvml's names.
THERMAL_REASONS = 0x20 | 0x40  # SwThermalSlowdown | HwThermalSlowdown
POWER_REASONS = 0x04 | 0x80  # SwPowerCap | HwPowerBrakeSlowdown

Report = Callable[[str], None]


def _quiet(_text: str) -> None:
    """The default report: problems are kept by the caller's own list, if it wants them."""


class NvmlBackend:
    """Per-GPU readings from NVML; ``nvml`` is the pynvml module or a stand-in with its names.

    Readings are a dict per GPU (units: %, bytes, W, °C, MHz, bytes/s).
    """

    FIELDS = ("utilization", "memory_utilization", "memory_used", "memory_total", "power",
              "power_limit", "temperature", "sm_clock", "memory_clock", "pcie_tx", "pcie_rx",
              "process_memory", "throttle_reasons")

    def __init__(self, nvml=None, *, pids: Iterable[int] | None = None, report: Report = _quiet):
        if nvml is None:
            import pynvml as nvml
        self.nvml = nvml
        self.pids = frozenset(pids or (os.getpid(),))
        self.report = report
        self.gpus: list[dict] = []  # index, name, uuid, handle, lost, off (fields given up)
        self.available = False
        self._pcie: dict[int, tuple[float, float, float]] = {}  # index -> (when, tx, rx)
        self._reasons = (getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
                         or getattr(nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
        self._start()

    def _start(self) -> None:
        nvml = self.nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            self.report(f"No NVIDIA GPU found: {_init_cause(nvml, exc)}")
            return
        except OSError as exc:  # a broken driver install can fail below pynvml's errors
            self.report(f"No NVIDIA GPU found: NVML could not load ({exc})")
            return
        try:
            count = nvml.nvmlDeviceGetCount()
            for i in range(count):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                self.gpus.append(dict(index=i, name=_text(self._call(nvml.nvmlDeviceGetName,
                                                                      handle, "")),
                                      uuid=_text(self._call(nvml.nvmlDeviceGetUUID, handle, "")),
                                      handle=handle, lost=False, off=set()))
        except nvml.NVMLError as exc:
            self.report(f"No NVIDIA GPU found: NVML could not list the GPUs ({exc})")
            self.gpus = []
            return
        if not self.gpus:
            self.report("No NVIDIA GPU found: the NVIDIA driver is loaded but reports no GPU")
            return
        self.available = True

    @staticmethod
    def _call(fn, handle, default):
        try:
            return fn(handle)
        except Exception:  # a name or UUID is only a label
            return default

    def read(self) -> list[dict]:
        """One reading per GPU found at start; a lost GPU keeps its place with NaN values."""
        now = time.monotonic()
        return [self._read_gpu(gpu, now) for gpu in self.gpus]

    def _read_gpu(self, gpu: dict, now: float) -> dict:
        out = dict.fromkeys(self.FIELDS, NAN)
        out.update(index=gpu["index"], name=gpu["name"], uuid=gpu["uuid"], throttle_reasons=0)
        if gpu["lost"]:
            return out
        nvml, h = self.nvml, gpu["handle"]
        try:
            rates = self._field(gpu, "utilization", nvml.nvmlDeviceGetUtilizationRates, h)
            if rates is not None:
                out["utilization"] = float(rates.gpu)
                out["memory_utilization"] = float(rates.memory)
            mem = self._field(gpu, "memory", self._memory_info, gpu, h)
            if mem is not None:
                out["memory_used"], out["memory_total"] = float(mem.used), float(mem.total)
            milliwatts = self._field(gpu, "power draw", nvml.nvmlDeviceGetPowerUsage, h)
            if milliwatts is not None:
                out["power"] = milliwatts / 1000
            limit = self._field(gpu, "power limit", nvml.nvmlDeviceGetEnforcedPowerLimit, h)
            if limit is not None:
                out["power_limit"] = limit / 1000
            temp = self._field(gpu, "temperature", nvml.nvmlDeviceGetTemperature, h,
                               nvml.NVML_TEMPERATURE_GPU)
            if temp is not None:
                out["temperature"] = float(temp)
            for key, clock in (("sm_clock", nvml.NVML_CLOCK_SM),
                               ("memory_clock", nvml.NVML_CLOCK_MEM)):
                value = self._field(gpu, key.replace("_", " "), nvml.nvmlDeviceGetClockInfo, h,
                                    clock)
                if value is not None:
                    out[key] = float(value)
            out["pcie_tx"], out["pcie_rx"] = self._pcie_rates(gpu, now)
            out["process_memory"] = self._process_memory(gpu)
            if self._reasons is not None:
                reasons = self._field(gpu, "throttle reasons", self._reasons, h)
                if reasons is not None:
                    out["throttle_reasons"] = int(reasons)
        except nvml.NVMLError_GpuIsLost:
            gpu["lost"] = True
            self.report(f"GPU {gpu['index']} ({gpu['name'] or 'unnamed'}) is lost: NVML no "
                        f"longer reaches it (fell off the bus or was reset); its readings stop "
                        f"here")
            return dict(out, **dict.fromkeys(self.FIELDS[:-1], NAN), throttle_reasons=0)
        return out

    def _field(self, gpu: dict, what: str, fn, *args):
        """Call one NVML getter; a field NVML cannot give is given up with one report.

        NotSupported (and NoPermission) will not change, so the field is not
        asked again; other errors are reported once and the field is tried again
        next time. A lost GPU propagates to ``_read_gpu``.
        """
        if what in gpu["off"]:
            return None
        nvml = self.nvml
        try:
            return fn(*args)
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError as exc:
            permanent = isinstance(exc, (nvml.NVMLError_NotSupported,
                                         getattr(nvml, "NVMLError_NoPermission", ())))
            key = what if permanent else f"{what}: {exc}"
            if key not in gpu["off"]:
                gpu["off"].add(key)
                tail = ("is not available on this GPU" if permanent
                        else "could not be read (will keep trying)")
                self.report(f"GPU {gpu['index']}: {what} {tail} ({exc})")
            return None

    def _memory_info(self, gpu: dict, handle):
        """Memory as nvidia-smi shows it: info v2, whose ``used`` leaves out what the driver
        reserves for itself (about 0.5 GiB on an H100), which v1 counts as used. Drivers
        older than v2 (before R510) answer v1."""
        nvml = self.nvml
        if not gpu.get("memory_v1") and hasattr(nvml, "nvmlMemory_v2"):
            try:
                return nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2)
            except (nvml.NVMLError_FunctionNotFound, nvml.NVMLError_NotSupported):
                gpu["memory_v1"] = True
        return nvml.nvmlDeviceGetMemoryInfo(handle)

    def _pcie_rates(self, gpu: dict, now: float) -> tuple[float, float]:
        when, tx, rx = self._pcie.get(gpu["index"], (-math.inf, NAN, NAN))
        if now - when >= PCIE_EVERY_S:
            nvml, h = self.nvml, gpu["handle"]
            kb_tx = self._field(gpu, "PCIe throughput", nvml.nvmlDeviceGetPcieThroughput, h,
                                nvml.NVML_PCIE_UTIL_TX_BYTES)
            kb_rx = self._field(gpu, "PCIe throughput", nvml.nvmlDeviceGetPcieThroughput, h,
                                nvml.NVML_PCIE_UTIL_RX_BYTES)
            tx = NAN if kb_tx is None else kb_tx * 1024.0
            rx = NAN if kb_rx is None else kb_rx * 1024.0
            self._pcie[gpu["index"]] = (now, tx, rx)
        return tx, rx

    def _process_memory(self, gpu: dict) -> float:
        procs = self._field(gpu, "per-process memory",
                            self.nvml.nvmlDeviceGetComputeRunningProcesses, gpu["handle"])
        if procs is None:
            return NAN
        used = [p.usedGpuMemory for p in procs if p.pid in self.pids]
        if not used:
            return 0.0
        # None: NVML cannot attribute memory per process here (e.g. inside a container)
        return NAN if any(u is None for u in used) else float(sum(used))

    def close(self) -> None:
        if self.available:
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass
            self.available = False


def _init_cause(nvml, exc) -> str:
    causes = (("NVMLError_LibraryNotFound", "NVML library not found"),
              ("NVMLError_DriverNotLoaded", "the NVIDIA driver is not loaded"),
              ("NVMLError_NoPermission", "no permission to use the NVIDIA driver"),
              ("NVMLError_InsufficientPermissions", "no permission to use the NVIDIA driver"))
    for name, text in causes:
        cls = getattr(nvml, name, None)
        if cls is not None and isinstance(exc, cls):
            return text
    return f"NVML failed to start ({exc})"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class TorchMemoryBackend:
    """torch's caching-allocator counters per CUDA device, in bytes.

    Read only when torch is already imported and CUDA already initialised in
    this process: importing torch or creating a CUDA context just to read
    zeros would cost seconds and hundreds of MiB (and, in the window's
    process, a thread team that slows training).
    """

    def __init__(self, report: Report = _quiet):
        self.report = report
        self._uuids: dict[int, str] = {}
        self._failed = False

    def read(self) -> list[dict]:
        torch = sys.modules.get("torch")
        if torch is None or self._failed or not torch.cuda.is_initialized():
            return []
        try:
            out = []
            for i in range(torch.cuda.device_count()):
                if i not in self._uuids:
                    uuid = getattr(torch.cuda.get_device_properties(i), "uuid", "")
                    self._uuids[i] = f"GPU-{uuid}" if uuid else ""
                out.append(dict(index=i, uuid=self._uuids[i],
                                torch_allocated=float(torch.cuda.memory_allocated(i)),
                                torch_reserved=float(torch.cuda.memory_reserved(i)),
                                torch_peak=float(torch.cuda.max_memory_allocated(i))))
            return out
        except Exception as exc:  # a CUDA error here is the run's to report, not ours
            self._failed = True
            self.report(f"torch memory counters could not be read ({type(exc).__name__}: "
                        f"{exc}); they are left out from here on")
            return []


class PsutilBackend:
    """CPU and RAM of this process and of the machine, from psutil (and os.times).

    Costs were measured where it matters, at 10 Hz with cold caches: reading
    /proc through psutil takes ~0.2 ms a call, so the machine's CPU %, its RAM
    and the process's RSS are read once a second at most and repeated in
    between (RAM does not move faster, and a CPU share over a 0.1 s window is
    too coarse to mean much anyway). This process's CPU % comes from
    ``os.times()`` at every reading (~20 µs). The first reading has nothing to
    compare with, so its CPU values are NaN.

    ``pids``: the processes that train the run together (the ranks of a torchrun run on
    this node): the process CPU and RSS are theirs added up. A rank's share costs a
    psutil read per reading.
    """

    def __init__(self, pid: int | None = None, report: Report = _quiet,
                 pids: Iterable[int] | None = None):
        import psutil

        self.psutil = psutil
        self.report = report
        self.process = psutil.Process(pid or os.getpid())
        own = self.process.pid == os.getpid()
        self._cpu_times = _own_cpu_times if own else self._other_cpu_times
        self.others = []
        for other in sorted(set(pids or ()) - {self.process.pid}):
            try:
                self.others.append(psutil.Process(other))
            except psutil.Error:
                pass  # a rank already gone: the run is failing anyway
        self._last = dict(process_cpu=NAN, process_rss=NAN, system_cpu=NAN, ram_used=NAN,
                          ram_total=NAN)
        self._cpu_mark: tuple[float, float] | None = None  # (when, process CPU seconds)
        self._slow_at = -math.inf
        self._gone = False

    def _other_cpu_times(self) -> float:
        return _cpu_seconds(self.process)

    def read(self) -> dict:
        ps, out = self.psutil, self._last
        now = time.monotonic()
        try:
            if not self._gone:
                # CPU times tick every 10 ms: a share over less than 50 ms would be noise
                if self._cpu_mark is None or now - self._cpu_mark[0] >= MIN_CPU_WINDOW_S:
                    cpu = self._cpu_times() + self._others(_cpu_seconds, 0.0)
                    if self._cpu_mark is not None:
                        out["process_cpu"] = 100.0 * (cpu - self._cpu_mark[1]) / (
                            now - self._cpu_mark[0])
                    self._cpu_mark = (now, cpu)
            if now - self._slow_at >= HOST_EVERY_S:
                first = self._slow_at == -math.inf
                self._slow_at = now
                ram = ps.virtual_memory()
                system_cpu = ps.cpu_percent(None)
                out.update(system_cpu=NAN if first else system_cpu,
                           ram_used=float(ram.total - ram.available), ram_total=float(ram.total))
                if not self._gone:
                    out["process_rss"] = float(self.process.memory_info().rss
                                               + self._others(_rss, 0))
        except ps.NoSuchProcess:
            self._gone = True
            out.update(process_cpu=NAN, process_rss=NAN)
            self.report(f"process {self.process.pid} has ended: its CPU and memory are no "
                        f"longer read")
        except (ps.Error, OSError) as exc:
            self.report(f"CPU and memory could not be read ({exc})")
        return dict(out)


    def _others(self, read, zero):
        """``read(process)`` added up over the other ranks; a rank that has ended drops out
        (its CPU time with it: the next share is over the ranks still running)."""
        total = zero
        for process in list(self.others):
            try:
                total += read(process)
            except self.psutil.Error:
                self.others.remove(process)
                self._cpu_mark = None
        return total


def _cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _rss(process) -> int:
    return process.memory_info().rss


def _own_cpu_times() -> float:
    times = os.times()
    return times.user + times.system

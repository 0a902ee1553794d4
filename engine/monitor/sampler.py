"""The hardware sampler: a daemon thread that reads every backend at a fixed interval.

Each ``Sample`` is a frozen dataclass of plain numbers (NaN where a value
could not be read) with its time and the training step it falls in, so the
hardware curves and the loss curves share an axis. The thread never raises
into training or the UI: backends swallow their own failures and report
them, and the sampler passes each distinct problem on once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .backends import (
    NAN,
    POWER_REASONS,
    THERMAL_REASONS,
    NvmlBackend,
    PsutilBackend,
    TorchMemoryBackend,
)

MIN_INTERVAL_S, MAX_INTERVAL_S, DEFAULT_INTERVAL_S = 0.1, 10.0, 0.5


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment. Bytes, %, W, °C, MHz, bytes/s; NaN when not read."""
    index: int
    name: str
    uuid: str
    utilization: float = NAN  # % of time a kernel ran
    memory_utilization: float = NAN  # % of time the memory controller was busy
    memory_used: float = NAN
    memory_total: float = NAN
    power: float = NAN
    power_limit: float = NAN  # the enforced limit
    temperature: float = NAN
    sm_clock: float = NAN
    memory_clock: float = NAN
    pcie_tx: float = NAN
    pcie_rx: float = NAN
    process_memory: float = NAN  # what this process (the run) holds on the GPU
    throttle_reasons: int = 0  # NVML clocks-event reason bits
    torch_allocated: float = NAN  # tensors alive
    torch_reserved: float = NAN  # held by torch's caching allocator
    torch_peak: float = NAN  # highest allocated since the process started

    @property
    def thermal_throttled(self) -> bool:
        return bool(self.throttle_reasons & THERMAL_REASONS)

    @property
    def power_throttled(self) -> bool:
        return bool(self.throttle_reasons & POWER_REASONS)

    @property
    def memory_fraction(self) -> float:
        return self.memory_used / self.memory_total if self.memory_total > 0 else NAN


@dataclass(frozen=True)
class Sample:
    """Everything read at one moment. ``step`` is None when no run is training."""
    time: float  # seconds since the epoch (time.time())
    step: int | None
    process_cpu: float = NAN  # % of one core (can pass 100 with several threads)
    system_cpu: float = NAN  # % of all cores
    process_rss: float = NAN  # bytes
    ram_used: float = NAN
    ram_total: float = NAN
    gpus: tuple[GpuReading, ...] = ()
    problems: tuple[str, ...] = ()  # what could not be read so far, each said once

    def gpu(self, index: int) -> GpuReading | None:
        return next((g for g in self.gpus if g.index == index), None)


def check_interval(seconds: float) -> float:
    seconds = float(seconds)
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise ValueError(f"the sampling interval must be {MIN_INTERVAL_S} to {MAX_INTERVAL_S} s "
                         f"(got {seconds:g})")
    return seconds


class Sampler:
    """Reads the hardware every ``interval`` seconds on a daemon thread.

    ``on_sample(sample)`` and ``on_problem(text)`` are called on the sampler's
    thread; an exception they raise is reported as a problem, once, and
    sampling goes on. ``step`` returns the current training step (or None).
    Backends are made on first use, so a test (or the bench) can pass its own:
    ``nvml`` is a module with pynvml's names, or False to leave NVML out.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL_S, *,
                 step: Callable[[], int | None] | None = None,
                 on_sample: Callable[[Sample], None] | None = None,
                 on_problem: Callable[[str], None] | None = None,
                 nvml=None, pids=None, torch_memory: bool = True):
        self.interval = check_interval(interval)
        self._step = step
        self._on_sample = on_sample
        self._on_problem = on_problem
        self._nvml_module, self._pids, self._torch_memory = nvml, pids, torch_memory
        self._backends: tuple | None = None
        self._problems: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latest: Sample | None = None

    @property
    def problems(self) -> tuple[str, ...]:
        return self._problems

    def report(self, text: str) -> None:
        """Note a problem; one already noted is not passed on again."""
        with self._lock:
            if text in self._problems:
                return
            self._problems = (*self._problems, text)
        if self._on_problem is not None:
            try:
                self._on_problem(text)
            except Exception:  # a failing listener must not stop the sampling
                pass

    def _make_backends(self) -> tuple:
        host = gpus = torch_memory = None
        try:
            host = PsutilBackend(report=self.report, pids=self._pids)
        except Exception as exc:
            self.report(f"CPU and memory could not be read: psutil failed to start ({exc})")
        if self._nvml_module is not False:
            try:
                gpus = NvmlBackend(self._nvml_module, pids=self._pids, report=self.report)
            except Exception as exc:
                self.report(f"No NVIDIA GPU found: the NVML bindings failed to load ({exc})")
        if self._torch_memory:
            torch_memory = TorchMemoryBackend(report=self.report)
        return host, gpus, torch_memory

    def sample(self) -> Sample:
        """Read everything once, now, on the calling thread."""
        if self._backends is None:
            self._backends = self._make_backends()
        host, gpus, torch_memory = self._backends
        step = None
        if self._step is not None:
            try:
                step = self._step()
            except Exception as exc:
                self.report(f"the training step could not be read ({exc})")
        host_values = host.read() if host is not None else {}
        readings = {g["index"]: g for g in gpus.read()} if gpus is not None else {}
        if torch_memory is not None:
            _merge_torch(readings, torch_memory.read())
        sample = Sample(time=time.time(), step=step, **host_values,
                        gpus=tuple(GpuReading(**readings[i]) for i in sorted(readings)),
                        problems=self._problems)
        self.latest = sample
        return sample

    # --- the thread ---------------------------------------------------------------
    def start(self) -> Sampler:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="hardware-sampler",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (after the reading under way) and release NVML."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)
        if self._backends is not None and self._backends[1] is not None:
            self._backends[1].close()
        self._backends = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _loop(self) -> None:
        deadline = time.monotonic()
        while not self._stop.is_set():
            try:
                sample = self.sample()
                if self._on_sample is not None:
                    self._on_sample(sample)
            except Exception as exc:  # never let the thread die silently: say it, go on
                self.report(f"hardware sampling failed ({type(exc).__name__}: {exc})")
            # fixed rate, not fixed gap: a slow reading does not shift the next ones
            deadline += self.interval
            now = time.monotonic()
            if deadline < now:
                deadline = now
            self._stop.wait(deadline - now)


def _merge_torch(readings: dict[int, dict], torch_readings: list[dict]) -> None:
    """Put torch's counters of each CUDA device on NVML's reading of the same GPU.

    CUDA and NVML number devices differently when CUDA_VISIBLE_DEVICES is set,
    so the match is by UUID (by index only when torch gives none). Without
    NVML, torch's devices are shown on their own.
    """
    nvml = dict(readings)
    by_uuid = {r["uuid"]: r for r in nvml.values() if r.get("uuid")}
    for t in torch_readings:
        counters = {k: t[k] for k in ("torch_allocated", "torch_reserved", "torch_peak")}
        target = by_uuid.get(t["uuid"]) if t["uuid"] else nvml.get(t["index"])
        if target is not None:
            target.update(counters)
        elif not nvml:
            readings[t["index"]] = dict(index=t["index"], name=f"CUDA device {t['index']}",
                                        uuid=t["uuid"], **counters)

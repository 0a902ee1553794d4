"""The energy a run uses: NVML's energy counter on NVIDIA GPUs, RAPL on the CPU.

A GPU run is measured on the GPUs it trains on: NVML's total energy counter
(mJ since the driver loaded, Volta and later), read when the run starts and
again later; on a GPU without the counter (NotSupported), the power draw the
hardware sampler reads anyway is integrated (trapezoid rule). A CPU run is
measured by Linux's RAPL counters of the CPU packages (subdomains such as
core and dram are inside their package and are not added again; a laptop's
"psys" domain contains the package and is left out too). RAPL is often
readable by root only: the run's energy is then "not available" with that
reason, as it is wherever nothing can be measured.

Hand-written, not zeus or codecarbon, because neither fits here: zeus's
ZeusMonitor drops RAPL without saying why when it is unreadable (we must say
why), reads a fixed /sys path, spawns a polling process per RAPL package for
wrap-arounds and another for power integration on older GPUs, talks to its own
NVML import (our sampler and its test stand-in cannot be shared), and brings 14
packages (pydantic, httpx, amdsmi, ...); codecarbon phones home by default and
estimates from TDP where it cannot measure. Both readers here are a few dozen
lines over documented interfaces: the kernel's powercap sysfs and
nvmlDeviceGetTotalEnergyConsumption.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

RAPL_ROOT = Path("/sys/class/powercap")
_PACKAGE_DIR = re.compile(r"^intel-rapl:\d+$")  # intel-rapl:0; not intel-rapl:0:1 (subdomains)
SOURCES = ("nvml", "nvml-power", "rapl")


class EnergyUnavailable(Exception):
    """Nothing can be measured here; the text is the reason, as a person reads it."""


class NoReadingYet(EnergyUnavailable):
    """Power integration has had no power reading yet; a later sample may bring one."""


@dataclass(frozen=True)
class Energy:
    """The energy measured so far: ``joules`` None means not available, ``note`` says why."""
    joules: float | None
    source: str | None  # one of SOURCES, None when not available
    note: str = ""


class RaplReader:
    """Sums the package domains' ``energy_uj`` counters under ``root`` (/sys/class/powercap).

    Each counter wraps at its ``max_energy_range_uj``: a reading lower than the
    last one has wrapped once, so ``poll`` must be called more often than a
    wrap takes (minutes at full power: the sampler's interval, at most 10 s).
    """

    def __init__(self, root: str | Path = RAPL_ROOT):
        self.root = Path(root)
        self.domains: list[tuple[Path, int]] = []  # (energy_uj file, max_energy_range_uj)
        for folder in sorted(self.root.glob("intel-rapl:*")):
            if not _PACKAGE_DIR.match(folder.name):
                continue
            name = _read_text(folder / "name")
            if not name.startswith("package"):
                continue  # psys: the whole platform, the package included
            self.domains.append((folder / "energy_uj", int(_read_text(folder /
                                                                   "max_energy_range_uj"))))
        if not self.domains:
            raise EnergyUnavailable(f"this machine exposes no RAPL package counters (none under "
                                    f"{self.root}/intel-rapl:*)")
        self._last = self._read()
        self.microjoules = 0

    def _read(self) -> list[int]:
        return [int(_read_text(path)) for path, _ in self.domains]

    def poll(self) -> float:
        """Read the counters, add what was used since the last poll; the total in joules."""
        now = self._read()
        for (_, span), before, after in zip(self.domains, self._last, now):
            used = after - before
            self.microjoules += used if used >= 0 else used + span
        self._last = now
        return self.microjoules / 1e6


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except PermissionError:
        raise EnergyUnavailable(f"RAPL counters are not readable by this user ({path}: "
                                f"permission denied)") from None
    except (OSError, ValueError) as exc:
        raise EnergyUnavailable(f"RAPL counters could not be read ({path}: "
                                f"{getattr(exc, 'strerror', None) or exc})") from None


class NvmlEnergy:
    """Energy of the GPUs whose UUIDs are given, from NVML (``nvml``: pynvml or its stand-in).

    A GPU with the total energy counter is measured by its difference; one without
    (NotSupported) by integrating the power samples given to ``add_power``.
    """

    def __init__(self, nvml, uuids: Sequence[str]):
        self.nvml = nvml
        try:
            nvml.nvmlInit()
        except (nvml.NVMLError, OSError) as exc:
            raise EnergyUnavailable(f"NVML could not start ({exc})") from None
        self._started = True
        self.counters: dict[int, tuple[object, int]] = {}  # NVML index -> (handle, start mJ)
        self.integrated: dict[int, list] = {}  # NVML index -> [joules, last time, last watts]
        try:
            found = {}
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                uuid = nvml.nvmlDeviceGetUUID(handle)
                found[uuid.decode() if isinstance(uuid, bytes) else str(uuid)] = (i, handle)
            missing = [u for u in uuids if u not in found]
            if missing:
                raise EnergyUnavailable(f"NVML does not list the run's GPU {missing[0]}")
            for uuid in uuids:
                index, handle = found[uuid]
                try:
                    self.counters[index] = (handle,
                                            nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
                except (nvml.NVMLError_NotSupported,
                        getattr(nvml, "NVMLError_FunctionNotFound", nvml.NVMLError_NotSupported)):
                    self.integrated[index] = [0.0, None, None]  # before Volta, or old driver
        except BaseException as exc:
            self.close()
            if isinstance(exc, nvml.NVMLError):
                raise EnergyUnavailable(f"NVML could not read the GPUs ({exc})") from None
            raise

    @property
    def source(self) -> str:
        return "nvml-power" if self.integrated else "nvml"

    def add_power(self, when: float, index: int, watts: float) -> None:
        """One power reading of a GPU without the counter (the sampler's, in W at time ``when``)."""
        state = self.integrated.get(index)
        if state is None or not math.isfinite(watts):
            return
        if state[1] is not None and when > state[1]:
            state[0] += (when - state[1]) * (watts + state[2]) / 2
        state[1], state[2] = when, watts

    def poll(self) -> float:
        if any(s[1] is None for s in self.integrated.values()):
            raise NoReadingYet("the GPU has no energy counter and the hardware monitor has "
                               "given no power reading of it to integrate")
        total = sum(s[0] for s in self.integrated.values())
        for handle, start in self.counters.values():
            total += (self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - start) / 1000
        return total

    def close(self) -> None:
        if self._started:
            self._started = False
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass


class EnergyMeter:
    """The energy used since ``start``: NVML on the GPUs whose UUIDs ``gpus`` lists, RAPL
    (under ``rapl_root``) when ``gpus`` is None (a run on the CPU).

    ``read`` and ``add_sample`` may be called from different threads (the
    trainer's and the sampler's). A reader that fails mid-run (a GPU lost)
    ends the measurement with its reason: a partial figure is not reported as
    the run's energy.
    """

    def __init__(self, *, gpus: Sequence[str] | None = None, nvml=None,
                 rapl_root: str | Path = RAPL_ROOT, unavailable: str = ""):
        """``unavailable``: why nothing can be measured here, known before starting."""
        self.gpus = None if gpus is None else tuple(gpus)
        self._unavailable = unavailable
        self._nvml_module, self.rapl_root = nvml, Path(rapl_root)
        self._lock = threading.Lock()
        self._reader: NvmlEnergy | RaplReader | None = None
        self._note = "not started"
        self._last = 0.0
        self._pending = ""  # why there is no figure yet (NoReadingYet)
        self._closed = False

    def start(self) -> None:
        with self._lock:
            try:
                if self._unavailable:
                    raise EnergyUnavailable(self._unavailable)
                if self.gpus is None:
                    self._reader = RaplReader(self.rapl_root)
                elif not self.gpus:
                    raise EnergyUnavailable("the run's GPU could not be found in NVML (torch "
                                            "gives no UUID for it)")
                else:
                    nvml = self._nvml_module
                    if nvml is None:
                        try:
                            import pynvml as nvml
                        except ImportError as exc:
                            raise EnergyUnavailable(f"the NVML bindings could not be loaded "
                                                    f"({exc})") from None
                    self._reader = NvmlEnergy(nvml, self.gpus)
                self._note = ""
            except EnergyUnavailable as exc:
                self._reader, self._note = None, str(exc)
            except Exception as exc:  # never into the training: the run goes on unmeasured
                self._reader = None
                self._note = f"the energy meter failed to start ({type(exc).__name__}: {exc})"

    @property
    def source(self) -> str | None:
        reader = self._reader
        if reader is None:
            return None
        return reader.source if isinstance(reader, NvmlEnergy) else "rapl"

    def add_sample(self, sample) -> None:
        """A hardware sample (engine.monitor.Sample): its GPU power for GPUs integrated by
        power, and a poll of the counters (RAPL must be read before it wraps twice)."""
        with self._lock:
            reader = self._reader
            if isinstance(reader, NvmlEnergy):
                for gpu in sample.gpus:
                    reader.add_power(sample.time, gpu.index, gpu.power)
            self._poll()

    def read(self) -> Energy:
        with self._lock:
            self._poll()
            if self._reader is None or self._pending:
                return Energy(None, None, f"not available: {self._note or self._pending}")
            return Energy(self._last, self.source)

    def _poll(self) -> None:
        if self._reader is None or self._closed:
            return
        try:
            self._last = self._reader.poll()
            self._pending = ""
        except NoReadingYet as exc:
            self._pending = str(exc)
        except EnergyUnavailable as exc:
            self._stop(f"{exc}, part-way through the run")
        except Exception as exc:  # an NVMLError (GPU lost) or a vanished sysfs file
            self._stop(f"the energy counter stopped answering part-way through the run "
                       f"({type(exc).__name__}: {exc})")

    def _stop(self, note: str) -> None:
        reader, self._reader, self._note = self._reader, None, note
        if isinstance(reader, NvmlEnergy):
            reader.close()

    def close(self) -> None:
        """Release NVML; ``read`` then keeps answering the last figure."""
        with self._lock:
            self._closed = True
            if isinstance(self._reader, NvmlEnergy):
                self._reader.close()


def energy_text(e) -> str:
    """The run's energy as its summary says it (the log, `torchwork run`'s last lines);
    ``e`` has EnergyMeasured's fields (engine.training.events)."""
    if e.joules is None:
        return f"energy: {e.note}"
    rates = [f"{e.per_epoch_j:.4g} J per epoch" if e.per_epoch_j is not None else "",
             f"{e.per_1k_samples_j:.4g} J per 1,000 samples"
             if e.per_1k_samples_j is not None else ""]
    shown = ", ".join(r for r in rates if r)
    return (f"energy: {e.joules:.4g} J" + (f" ({shown})" if shown else "")
            + f", measured by {SOURCE_TEXT.get(e.source, e.source)}")


# How the summary, the log and the Runs dock name each source.
SOURCE_TEXT = {"nvml": "NVML's GPU energy counter",
                "nvml-power": "integrating NVML's GPU power readings",
                "rapl": "the CPU's RAPL counters"}

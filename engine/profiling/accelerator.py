"""Which accelerator a trace was recorded on, from what the trace itself says.

torch.profiler writes the kernels of every accelerator under the same
categories, on lanes numbered like CUDA streams. The trace tells them apart
elsewhere: in its runtime calls' names (``cudaLaunchKernel``,
``hipLaunchKernel``) and categories (``hip_runtime``, ``mtia_runtime``,
``xpu_runtime``), in ``deviceProperties`` (an AMD Instinct, an NVIDIA H100) and
in the names it gives processes and threads (``process_name`` and
``thread_name`` metadata events). Both readers ask ``identify``, so the
timeline's lanes and the report's words name the same accelerator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Accelerator:
    api: str  # what runs the kernels: "CUDA", "HIP", "MTIA", "XPU"
    device: str  # what one device is called: "GPU", "MTIA", "XPU"
    tensor_cores: bool = False  # whether NVIDIA's Tensor-Core advice applies
    model: str = ""  # the device's own name where the trace gives it

    def describe(self) -> str:
        """``AMD Instinct MI250X (HIP)``, or ``HIP GPU`` without a model name."""
        return f"{self.model} ({self.api})" if self.model else f"{self.api} {self.device}"


CUDA = Accelerator("CUDA", "GPU", tensor_cores=True)
# A clue (a runtime call's name or category, a device's or a process's name) matched
# against each pattern in turn. Case matters only in "cuLaunchKernel"-style names.
KNOWN = (
    (re.compile(r"(?i:^hip|^roc|\bamd\b|instinct|radeon|^gfx\d)"), Accelerator("HIP", "GPU")),
    (re.compile(r"(?i:^mtia)"), Accelerator("MTIA", "MTIA")),
    (re.compile(r"(?i:^xpu|intel)|^ze[A-Z]"), Accelerator("XPU", "XPU")),
    (re.compile(r"(?i:^cuda|nvidia|tesla|geforce|quadro)|^cu[A-Z]"), CUDA),
)
_STREAM = re.compile(r"(?i:stream)\s*(\S+)\s*(.*)")


def is_runtime(category) -> bool:
    """A runtime or driver API call of some accelerator (``cuda_runtime``, ``hip_runtime``,
    ``xpu_driver``...): the host side of a kernel launch or a copy."""
    return isinstance(category, str) and category.endswith(("_runtime", "_driver"))


def identify(runtime_calls: Iterable[tuple[str, str]] = (), device_properties=(),
             process_names: Iterable[str] = ()) -> Accelerator:
    """The accelerator that the first telling clue names; CUDA where none tells.

    Clues, most specific first: runtime calls' names (a ROCm build of torch
    files ``hipLaunchKernel`` under ``cuda_runtime``), then their categories,
    the devices' names, then the names of processes. A trace with kernels and no
    clue comes from CUPTI, torch.profiler's only device tracer before 2.0.
    """
    calls = list(runtime_calls)
    props = [p for p in device_properties or () if isinstance(p, dict)]
    clues = [name for _, name in calls]
    clues += [category.removesuffix("_runtime").removesuffix("_driver")
              for category, _ in calls]
    clues += [str(p.get(key, "")) for p in props for key in ("name", "gcnArchName")]
    clues += list(process_names)
    for clue in clues:
        if not isinstance(clue, str):
            continue
        for pattern, accelerator in KNOWN:
            if pattern.search(clue):
                model = next((str(p["name"]).strip() for p in props if p.get("name")), "")
                return Accelerator(accelerator.api, accelerator.device,
                                   accelerator.tensor_cores, model)
    return CUDA


def lane_label(accelerator: Accelerator, pid, tid, thread_name: str | None = None,
               device_name: str | None = None, several_devices: bool = False) -> str:
    """A device lane's label: ``HIP stream 3``, ``CUDA stream 7 (GPU 1)``, or the
    thread name the trace gives it, under the accelerator's name."""
    named = (thread_name or "").strip()
    match = _STREAM.fullmatch(named or str(tid))
    if match or not named:
        stream = match.group(1) if match else tid
        rest = f" {match.group(2)}" if match and match.group(2) else ""
        label = f"{accelerator.api} stream {stream}{rest}"
    elif named.lower().startswith((accelerator.api.lower(), accelerator.device.lower())):
        label = named
    else:
        label = f"{accelerator.api} {named}"
    if several_devices:
        label += f" ({(device_name or '').strip() or f'{accelerator.device} {pid}'})"
    return label


def metadata_names(events: Iterable[dict]) -> tuple[dict, dict]:
    """``process_name`` by pid and ``thread_name`` by (pid, tid), from metadata events."""
    processes, threads = {}, {}
    for e in events:
        name = (e.get("args") or {}).get("name")
        if not isinstance(name, str):
            continue
        if e.get("name") == "process_name":
            processes[e.get("pid")] = name
        elif e.get("name") == "thread_name":
            threads[(e.get("pid"), e.get("tid"))] = name
    return processes, threads

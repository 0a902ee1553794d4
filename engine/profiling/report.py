"""Read a torch.profiler trace into plain tables: the one adapter over torch-tb-profiler.

torch-tb-profiler is no longer maintained upstream, so nothing else imports it
(but ``tb_steps``, its step parser, which this file installs): the views and the
command work on the dataclasses here, and replacing the parser means rewriting
these two files only. We use its parsing modules
(``RunProfileData`` and ``RunGenerator``), not its multiprocess ``RunLoader``,
and translate whatever it raises on a bad file into a ``TraceReadError`` that
names the file and says what to do.
"""

from __future__ import annotations

import html
import logging
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .accelerator import CUDA, Accelerator, identify, is_runtime, metadata_names
from .categories import normalise_category
from .launches import DEVICE_CATEGORIES, attribute_launches

DATA_LOADING = ("enumerate(DataLoader)#", "enumerate(DataPipe)#")
CATEGORIES = ("Kernel", "Memcpy", "Memset", "Runtime", "DataLoader", "CPU Exec", "Other")

# Thresholds of our own hints: only shares this clear make the advice obvious.
DATALOADER_SHARE = 0.15
LAUNCH_BOUND_GPU_SHARE = 0.5  # GPU busy (kernels, copies) under half the step...
LAUNCH_BOUND_CPU_SHARE = 0.3  # ...while CPU work and launches take this much of it


class TraceReadError(Exception):
    """A trace file that cannot be read; the message names the file and the cause."""


class Cancelled(Exception):
    """Reading was cancelled by the caller."""


@dataclass(frozen=True)
class StepCosts:
    """Where one profiled step's time went, in microseconds per category."""
    step: str
    costs_us: dict[str, float]

    @property
    def total_us(self) -> float:
        return sum(self.costs_us.values())


@dataclass(frozen=True)
class OperatorRow:
    name: str
    input_shape: str  # "" when grouped by name only
    calls: int
    host_self_us: float
    host_total_us: float
    device_self_us: float
    device_total_us: float


@dataclass(frozen=True)
class KernelRow:
    name: str
    calls: int
    total_us: float
    mean_us: float
    max_us: float
    min_us: float
    tensor_cores: bool


@dataclass(frozen=True)
class MemoryCurve:
    """Memory in use over the capture on one device (a step curve)."""
    device: str  # "CPU", "GPU0", ...
    time_ms: tuple[float, ...]  # since the profiler started
    allocated_mb: tuple[float, ...]
    reserved_mb: tuple[float, ...]

    @property
    def peak_mb(self) -> float:
        return max(self.allocated_mb, default=0.0)


@dataclass(frozen=True)
class ProfileReport:
    trace: str
    steps: tuple[StepCosts, ...]
    average: StepCosts
    operators: tuple[OperatorRow, ...]
    operators_by_shape: tuple[OperatorRow, ...]
    kernels: tuple[KernelRow, ...]
    memory: tuple[MemoryCurve, ...]
    recommendations: tuple[str, ...]  # torch-tb-profiler's own, as plain text
    hints: tuple[str, ...] = field(default=())  # ours, only where the breakdown shows it
    has_gpu: bool = False
    accelerator: Accelerator = CUDA  # what ran the kernels, as the trace says

    def share(self, category: str) -> float:
        """Fraction of the average step spent in ``category``."""
        total = self.average.total_us
        return self.average.costs_us.get(category, 0.0) / total if total > 0 else 0.0


def read_trace(path: str | Path, progress: Callable[[float, str], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> ProfileReport:
    """Parse one ``*.pt.trace.json[.gz]`` file; raises TraceReadError or Cancelled.

    ``progress(fraction, stage)`` is called between stages and ``cancel()`` is
    checked there: the parser's stages cannot be interrupted inside.
    """
    from torch_tb_profiler import consts
    from torch_tb_profiler.profiler.data import RunProfileData
    from torch_tb_profiler.profiler.run_generator import RunGenerator

    from . import tb_steps

    # Its parser logs what it finds odd in a trace (runtime calls with no operator, "New
    # Tensor Cores eligible operator found") as warnings on the terminal: noise to a user.
    logging.getLogger(consts.PLUGIN_NAME).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"torch_tb_profiler\.")  # pandas deprecations
    path = Path(path)

    def stage(fraction: float, text: str) -> None:
        if cancel is not None and cancel():
            raise Cancelled(f"reading {path.name} was cancelled")
        if progress is not None:
            progress(fraction, text)

    _check_file(path)
    match = consts.WORKER_PATTERN.match(path.name)
    worker = match.group(1) if match else path.stem
    span = (match.group(2) or "").lstrip(".") if match else ""
    stage(0.0, "reading the file")
    try:
        trace_path, trace_json = RunProfileData._preprocess_file(str(path), tempfile.gettempdir())
    except (ValueError, EOFError, OSError, UnicodeDecodeError) as exc:
        raise TraceReadError(_damaged(path, exc)) from None
    except (KeyError, TypeError, AttributeError):
        raise TraceReadError(f"{path} is not a torch.profiler trace (no 'traceEvents' list): "
                             f"open a *.pt.trace.json file written by a capture") from None
    stage(0.3, "building the operator tree")
    try:
        accelerator = _accelerator(trace_json)
        _adapt_events(trace_json["traceEvents"])
        tb_steps.install()
        data = RunProfileData(worker, span, trace_json)
        del trace_json
        data.trace_file_path = trace_path
        if not data.events:
            raise TraceReadError(f"{path} holds no events: the capture recorded nothing; "
                                 f"capture again with at least one active step")
        data.process()
        stage(0.7, "analysing")
        tc_used_ratio = data.tc_used_ratio
        if not accelerator.tensor_cores:  # its Tensor-Core rule reads NVIDIA kernel names
            data.tc_used_ratio = None  # (None: "a CPU run", which skips the rule)
        data.analyze()
        data.tc_used_ratio = tc_used_ratio
        stage(0.8, "building tables")
        run = RunGenerator(worker, span, data).generate_run_profile()
        stage(0.9, "memory")
        report = _report(path, data, run, accelerator)
    except (TraceReadError, Cancelled):
        raise
    except Exception as exc:  # the parser's own failures on odd traces: say which file
        raise TraceReadError(_unparsable(path, exc)) from None
    stage(1.0, "done")
    return report


def _adapt_events(events: list) -> None:
    """Rewrite, in place, what newer torch writes that torch-tb-profiler 0.4.3 (written for
    torch 1.x) misreads:

    - Runtime calls (``cudaLaunchKernel``, ``hipLaunchKernel``...) come as
      ``cuda_runtime``, ``cuda_driver``, ``hip_runtime``, ``xpu_runtime``..., not
      ``runtime``: unread, no kernel was tied to its operator (the operator table's
      device times stayed zero) and the Runtime category stayed empty.
    - A launch's ``External id`` often does not name its operator (see ``launches``):
      it is taken from the operator around the launch on its thread.
    - Each step's ``ProfilerStep#N`` range is also drawn on the GPU's stream (as a
      ``gpu_user_annotation``, or under another name on a lane that holds kernels),
      which it took for a second step of the same number (a three-step capture read as
      six, half of them GPU-only). Dropped here where the CPU side has the steps, and
      made the steps where it has none; the Timeline tab reads the file itself and
      still shows them.
    - The DataLoader's ``__next__`` comes as a user annotation, which it drops, so the
      DataLoader category stayed zero; given the operator category it expects, it counts.

    Categories are first put under their current Kineto names (torch 1.8's
    ``Runtime``, ``Kernel``... see ``categories``), as the timeline reads them.
    """
    for event in events:
        if event.get("cat") is not None:
            event["cat"] = normalise_category(event["cat"])
    lanes = {(e.get("pid"), e.get("tid")) for e in events if e.get("cat") in DEVICE_CATEGORIES}
    kept, device_steps, host_steps = [], [], False
    for event in events:
        cat = event.get("cat")
        step = str(event.get("name", "")).startswith("ProfilerStep#")
        if step and (event.get("pid"), event.get("tid")) in lanes:
            cat = "gpu_user_annotation"
        if cat == "gpu_user_annotation":
            if step:
                device_steps.append(event)
            continue
        if is_runtime(cat):
            event["cat"] = "runtime"
        elif cat == "user_annotation" and str(event.get("name", "")).startswith(DATA_LOADING):
            event["cat"] = "cpu_op"
        host_steps = host_steps or (step and cat in ("user_annotation", "cpu_op"))
        kept.append(event)
    if not host_steps:
        for event in device_steps:
            event["cat"] = "user_annotation"
        kept += device_steps
    attribute_launches(kept)
    events[:] = kept


def _accelerator(trace_json: dict) -> Accelerator:
    """What ran the kernels, from the runtime calls, devices and names the trace gives."""
    events = [e for e in trace_json.get("traceEvents", ()) if isinstance(e, dict)]
    calls = {(e.get("cat"), e.get("name")): None for e in events
             if is_runtime(normalise_category(e.get("cat")))}
    device_pids = {e.get("pid") for e in events
                   if normalise_category(e.get("cat")) in DEVICE_CATEGORIES}
    processes, _ = metadata_names(e for e in events if e.get("ph") == "M")
    return identify(list(calls), trace_json.get("deviceProperties") or (),
                    [name for pid, name in processes.items() if pid in device_pids])


def _check_file(path: Path) -> None:
    if not path.exists():
        raise TraceReadError(f"trace file {path} does not exist: was the capture folder moved?")
    if path.is_dir():
        raise TraceReadError(f"{path} is a folder: choose a *.pt.trace.json file inside it")
    if path.stat().st_size == 0:
        raise TraceReadError(f"trace file {path} is empty (0 bytes): the capture was cut off "
                             f"before it was written; capture again")


def _damaged(path: Path, exc: BaseException) -> str:
    where = f" at character {exc.pos}" if getattr(exc, "pos", None) is not None else ""
    return (f"trace file {path} is truncated or damaged ({type(exc).__name__}{where}): "
            f"the capture was probably cut off while writing; "
            f"capture again")


def _unparsable(path: Path, exc: BaseException) -> str:
    return (f"trace file {path} could not be analysed ({type(exc).__name__}: {exc}): it may "
            f"come from an unsupported profiler version; the Timeline tab and Perfetto can "
            f"still show it")


def _report(path: Path, data, run, accelerator: Accelerator = CUDA) -> ProfileReport:
    from torch_tb_profiler.profiler.event_parser import ProfileRole

    roles = (ProfileRole.Kernel, ProfileRole.Memcpy, ProfileRole.Memset, ProfileRole.Runtime,
             ProfileRole.DataLoader, ProfileRole.CpuOp)

    def costs(name: str, values) -> StepCosts:
        out = {cat: float(values[role]) for cat, role in zip(CATEGORIES, roles)}
        # Communication (distributed runs only) counts as Other in our seven categories.
        out["Other"] = float(values[ProfileRole.Other] + values[ProfileRole.Communication])
        return StepCosts(name, out)

    steps = tuple(costs(name, c.costs) for name, c in zip(data.steps_names, data.steps_costs))
    average = costs("average", data.avg_costs.costs)
    kernels = ()
    if data.has_kernel and data.kernel_stat is not None:
        kernels = tuple(KernelRow(str(name), int(r["count"]), float(r["sum"]), float(r["mean"]),
                                  float(r["max"]), float(r["min"]), bool(r["tc_used"]))
                        for name, r in data.kernel_stat.iterrows())
    memory = ()
    if data.memory_snapshot is not None:
        curve = run.get_memory_curve(time_metric="ms", memory_metric="MB",
                                     patch_for_step_plot=False)
        memory = tuple(MemoryCurve(dev, tuple(p[0] for p in pts), tuple(p[1] for p in pts),
                                   tuple(p[2] for p in pts))
                       for dev, pts in sorted(curve["rows"].items()) if pts)
    # Its advice compares the host's work with the device's: none from a trace without
    # CPU operators, or from steps in which nothing took time.
    host = bool(data.role_ranges[ProfileRole.CpuOp] or data.role_ranges[ProfileRole.Runtime])
    advice = data.recommendations if host and average.total_us > 0 else ()
    report = ProfileReport(
        trace=str(path), steps=steps, average=average,
        operators=_operators(data.op_list_groupby_name, False),
        operators_by_shape=_operators(data.op_list_groupby_name_input, True),
        kernels=kernels, memory=memory,
        recommendations=tuple(_plain(text) for text in advice),
        has_gpu=bool(data.has_kernel or data.used_devices), accelerator=accelerator)
    return replace(report, hints=hints(report, data.tc_used_ratio,
                                       data.tc_eligible_ops_kernel_ratio))


def _operators(ops, by_shape: bool) -> tuple[OperatorRow, ...]:
    rows = [OperatorRow(op.name, op.input_shape if by_shape else "", int(op.calls),
                        float(op.self_host_duration), float(op.host_duration),
                        float(op.self_device_duration), float(op.device_duration))
            for op in ops or ()]
    rows.sort(key=lambda r: (r.device_self_us, r.host_self_us), reverse=True)
    return tuple(rows)


def _plain(text: str) -> str:
    """The tool writes its advice as HTML with links: keep the words and the address."""
    text = re.sub(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', r"\2 (\1)", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def hints(report: ProfileReport, tc_used_ratio: float | None = None,
          tc_eligible_ratio: float | None = None) -> tuple[str, ...]:
    """Plain-language advice where the breakdown makes it obvious, and only there."""
    out = []
    loader = report.share("DataLoader")
    if loader >= DATALOADER_SHARE:
        out.append(f"Data-loader-bound: {loader:.0%} of each step waits for the next batch. "
                   f"Raise data.num_workers, turn on data.pin_memory, or preprocess once "
                   f"before training.")
    if report.has_gpu:
        device = report.accelerator.device
        gpu = report.share("Kernel") + report.share("Memcpy") + report.share("Memset")
        cpu = report.share("CPU Exec") + report.share("Runtime")
        if gpu < LAUNCH_BOUND_GPU_SHARE and cpu >= LAUNCH_BOUND_CPU_SHARE:
            out.append(f"CPU-launch-bound: the {device} works only {gpu:.0%} of each step while "
                       f"the CPU spends {cpu:.0%} running Python and launching kernels. Use a "
                       f"larger batch, precision.compile (torch.compile) to fuse kernels, or "
                       f"fewer small operations per step.")
        if report.accelerator.tensor_cores and tc_used_ratio == 0.0 and tc_eligible_ratio:
            out.append(f"No Tensor Cores used: {tc_eligible_ratio:.0%} of kernel time is in "
                       f"operations that could use them. Turn on mixed precision "
                       f"(precision.amp='bf16' or 'fp16').")
    return tuple(out)

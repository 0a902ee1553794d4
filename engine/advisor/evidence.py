"""What the advisor's rules read: one ``Evidence`` of plain numbers per run.

It gathers what Torchwork already records: the profiler capture's step-time
breakdown, operator and kernel tables (``engine.profiling.report``) and per-step
facts (``trace_facts``), the hardware samples of the run (GPU utilization), the
run's configuration, the machine (threads, cores, the GPU's compute capability)
and, where one was made, the memory forecast's largest batch. A field that needs
a GPU is None on the CPU; a field nobody measured is None too, and the rules
that need it stay silent.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Operators whose presence makes a model convolutional, whatever its architecture says.
CONV_PREFIXES = ("aten::conv", "aten::cudnn_convolution", "aten::mkldnn_convolution",
                 "aten::_convolution", "aten::miopen_convolution")
CONV_ARCHS = ("cnn", "resnet")


@dataclass(frozen=True)
class Evidence:
    """Plain data only, so the rules are pure functions and a test writes one by hand."""
    # the run's configuration
    device: str = "cpu"  # "cpu", "cuda", "mps"
    amp: str = "off"  # precision.amp
    channels_last: bool | None = None  # precision.channels_last; None: it does not apply
    compile: bool = False  # precision.compile
    tf32: str = "auto"  # precision.tf32
    batch_size: int = 64
    grad_accum_steps: int = 1
    log_every: int = 10  # train.log_every
    num_workers: int = 0
    pin_memory: bool = False
    image_loading: str | None = None  # data.image_loading; None: not an image folder
    optimizer: str = "adam"  # optim.name
    model_arch: str = "mlp"
    conv_model: bool = False  # convolutions in the trace, or a cnn/resnet on images
    train_samples: int | None = None
    # the machine
    torch_threads: int = 1  # the run's: train.threads, or torch's default where that is 0
    physical_cores: int | None = None
    logical_cores: int | None = None
    capability: tuple[int, int] | None = None  # CUDA compute capability; None: no GPU
    # the profiler capture
    trace: str = ""
    steps: int = 0  # profiled steps
    step_us: float = 0.0  # the average step
    shares: dict[str, float] = field(default_factory=dict)  # category -> share of the step
    syncs_per_step: float = 0.0  # median over steps of host-device sync points
    sync_ops: dict[str, int] = field(default_factory=dict)  # the syncs' ops, counted
    sync_sources: tuple[str, ...] = ()  # Python lines that asked for them (with stacks)
    log_syncs_per_step: float = 0.0  # median over steps of the trainer's reads of the loss
    has_stacks: bool = False
    optimizer_impl: str | None = None  # "fused", "foreach", "for-loop"
    optimizer_share: float | None = None  # of the step, in Optimizer.step
    ops_per_step: float = 0.0  # aten operator calls
    mean_op_us: float | None = None  # host self time per aten operator call
    kernels_per_step: float | None = None  # GPU only
    mean_kernel_us: float | None = None  # GPU only
    # the monitor
    gpu_utilization: float | None = None  # mean % over the run's training samples
    # the memory forecast
    largest_batch: int | None = None

    def share(self, category: str) -> float:
        return float(self.shares.get(category, 0.0))

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"

    @property
    def gpu_busy_share(self) -> float | None:
        """Share of the step in which the GPU did work (kernels and copies); GPU only."""
        if not self.on_gpu or not self.shares:
            return None
        return self.share("Kernel") + self.share("Memcpy") + self.share("Memset")

    def as_dict(self) -> dict:
        """JSON-ready (``--json``, the A/B runner's records)."""
        out = asdict(self)
        out["capability"] = list(self.capability) if self.capability else None
        out["sync_sources"] = list(self.sync_sources)
        return out


def config_facts(cfg) -> dict:
    """The Evidence fields that come from a RunConfig."""
    arch = cfg.model.arch
    return {
        "amp": cfg.precision.amp,
        "channels_last": (bool(cfg.precision.channels_last)
                          if cfg.applies("precision.channels_last") else None),
        "compile": bool(cfg.precision.compile),
        "tf32": cfg.precision.tf32,
        "batch_size": int(cfg.data.batch_size),
        "grad_accum_steps": int(cfg.train.grad_accum_steps),
        "log_every": int(cfg.train.log_every),
        "num_workers": int(cfg.data.num_workers),
        "pin_memory": bool(cfg.data.pin_memory),
        "image_loading": cfg.data.image_loading if cfg.applies("data.image_loading") else None,
        "optimizer": cfg.optim.name,
        "model_arch": arch,
        "conv_model": arch in CONV_ARCHS and cfg.applies("model.channels"),
    }


def machine_facts(device: str) -> dict:
    """Threads, cores and (on CUDA) the device's compute capability."""
    import psutil
    import torch

    capability = None
    if device.startswith("cuda") and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        capability = tuple(int(v) for v in torch.cuda.get_device_capability(index))
    return {"device": device.split(":")[0], "torch_threads": torch.get_num_threads(),
            "physical_cores": psutil.cpu_count(logical=False),
            "logical_cores": psutil.cpu_count(logical=True) or os.cpu_count(),
            "capability": capability}


def capture_facts(report, facts) -> dict:
    """From a ProfileReport (the tables) and TraceFacts (the per-step facts) of one trace."""
    from engine.profiling.report import CATEGORIES

    steps = max(len(report.steps), facts.steps, 1)
    total = report.average.total_us
    aten = [op for op in report.operators if op.name.startswith("aten::")]
    calls = sum(op.calls for op in aten)
    kernel_calls = sum(k.calls for k in report.kernels)
    on_gpu = bool(report.has_gpu and report.kernels)
    return {
        "trace": report.trace,
        "steps": steps,
        "step_us": float(total),
        "shares": {c: report.share(c) for c in CATEGORIES} if total > 0 else {},
        "syncs_per_step": facts.median_syncs,
        "sync_ops": dict(facts.sync_ops),
        "sync_sources": tuple(facts.sync_sources),
        "log_syncs_per_step": facts.median_log_syncs,
        "has_stacks": facts.has_stacks,
        "optimizer_impl": facts.optimizer_impl,
        "optimizer_share": facts.optimizer_share,
        "ops_per_step": calls / steps,
        "mean_op_us": sum(op.host_self_us for op in aten) / calls if calls else None,
        "kernels_per_step": kernel_calls / steps if on_gpu else None,
        "mean_kernel_us": (sum(k.total_us for k in report.kernels) / kernel_calls
                           if on_gpu and kernel_calls else None),
        "conv_model": any(op.name.startswith(CONV_PREFIXES) for op in report.operators),
    }


def gpu_utilization(hardware: dict | None) -> float | None:
    """Mean GPU utilization (%) over the samples taken while the run trained, from
    ``Workspace.hardware_samples``' dict; None without a GPU reading."""
    values = []
    for columns in ((hardware or {}).get("gpus") or {}).values():
        util, step = columns.get("utilization", ()), columns.get("step", ())
        for i, u in enumerate(util):
            training = i >= len(step) or step[i] is None or step[i] >= 0
            if training and u is not None and math.isfinite(float(u)):
                values.append(float(u))
    return sum(values) / len(values) if values else None


def build_evidence(cfg, *, report=None, facts=None, hardware: dict | None = None,
                   forecast=None, machine: dict | None = None,
                   train_samples: int | None = None) -> Evidence:
    """Evidence for ``cfg`` from whatever was measured; each part is optional.

    ``report`` and ``facts`` come from one trace (``read_capture``), ``hardware``
    from ``Workspace.hardware_samples``, ``forecast`` is a MemoryForecast, and
    ``machine`` (from ``machine_facts``) defaults to this machine on the config's device.
    """
    from engine.training.setup import resolve_device

    values = config_facts(cfg)
    values.update(machine if machine is not None else
                  machine_facts(str(resolve_device(cfg.train.device))))
    if cfg.train.threads:  # the run sets its own, whatever this process has
        values["torch_threads"] = int(cfg.train.threads)
    if report is not None and facts is not None:
        captured = capture_facts(report, facts)
        captured["conv_model"] = captured["conv_model"] or values["conv_model"]
        values.update(captured)
    values["gpu_utilization"] = gpu_utilization(hardware)
    if forecast is not None:
        values["largest_batch"] = forecast.largest_batch
        train_samples = train_samples or forecast.train_samples or None
    values["train_samples"] = train_samples
    return Evidence(**values)


def read_capture(trace: str | Path):
    """(ProfileReport, TraceFacts) of one trace file; raises TraceReadError (one type for
    both readers), whose message names the file, the cause and what to do."""
    from engine.profiling.report import TraceReadError, read_trace

    from .trace_facts import TraceError, read_facts

    report = read_trace(trace)
    try:
        return report, read_facts(trace)
    except TraceError as exc:
        raise TraceReadError(str(exc)) from None

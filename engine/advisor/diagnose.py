"""From a config or a run to its Evidence: the capture it needs (made on demand, as
`torchwork profile` makes one), the run's hardware samples and the memory forecast.

An on-demand capture trains a few steps of the config in this process, under the
same ProfilerCapture as `torchwork profile`, into a temporary folder that is removed
once read: like an A/B trial, it is a measurement, not a workspace run.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from engine.profiling.options import CaptureOptions

# A short capture: stacks on, so a host-sync finding names its line.
ADVISE_CAPTURE = CaptureOptions(wait=1, warmup=2, active=5, record_shapes=False,
                                profile_memory=False, with_stack=True)


class DiagnoseError(Exception):
    """Nothing to diagnose from (its message says why and what to do)."""


@dataclass
class Diagnosis:
    config: object  # the RunConfig diagnosed (and the A/B's current side)
    source: str  # what was diagnosed, in words
    trace: str  # the trace read ("" where it was temporary)
    evidence: object  # Evidence
    findings: list  # [Finding]
    notes: list[str]  # what was left out, e.g. no forecast


def capture(cfg, workspace=None, options: CaptureOptions = ADVISE_CAPTURE):
    """Train ``options.steps`` steps of ``cfg`` under the profiler; returns (report,
    facts, trainer) from its trace, whose temporary folder is gone by then."""
    from engine.profiling.capture import ProfilerCapture
    from engine.profiling.options import profiling_config
    from engine.run_builder import build_trainer

    from .evidence import read_capture

    trainer = build_trainer(profiling_config(cfg, options), workspace)
    folder = Path(tempfile.mkdtemp(prefix="torchwork-advise-"))
    try:
        recorder = ProfilerCapture(worker="advise").attach(trainer, folder)
        recorder.request(options)
        result = trainer.run()
        done = recorder.results[-1] if recorder.results else None
        if result.status == "failed":
            raise DiagnoseError(f"the profiled steps failed: {result.error}")
        if done is None or done.trace is None:
            why = done.error if done is not None else "the profiler never started"
            raise DiagnoseError(f"no trace was written ({why})")
        report, facts = read_capture(done.trace)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report, facts, trainer


def memory_forecast(cfg, data, notes: list[str]):
    """The memory forecast (its largest batch feeds small-batch and grad-accumulation),
    or None with a note where the model cannot be forecast."""
    from engine.config import ConfigError
    from engine.experiments.memory import ForecastError, forecast
    from engine.models import ModelError

    try:
        return forecast(cfg, data)
    except (ForecastError, ConfigError, ModelError) as exc:  # e.g. a data-dependent model
        notes.append(f"no memory forecast (the rules that need one stay silent): {exc}")
        return None


def diagnose_config(cfg, workspace=None, *, source: str = "") -> Diagnosis:
    """Capture a few steps of ``cfg`` and advise on them."""
    from .evidence import build_evidence
    from .rules import advise

    report, facts, trainer = capture(cfg, workspace)
    notes: list[str] = []
    forecast = memory_forecast(trainer.config, trainer.data, notes)
    evidence = build_evidence(cfg, report=report, facts=facts, forecast=forecast,
                              train_samples=len(trainer.data.y_train))
    return Diagnosis(cfg, source or "the configuration", "", evidence, advise(evidence), notes)


def diagnose_run(ws, ref: str, overrides: list[str] | None = None) -> Diagnosis:
    """A workspace run: its latest capture (or, without one, a capture of its config)
    and its hardware samples. ``overrides`` change the config the A/B measures."""
    from engine.data import load_dataset, settle_task
    from engine.profiling.traces import list_captures

    from .evidence import build_evidence, gpu_utilization, read_capture
    from .rules import advise

    run = ws.get_run(ref)
    cfg = run.config.with_overrides(overrides or [])
    cfg.validate()
    source = f"run {run.id} ({run.name})"
    captures = list_captures(run.dir)
    if not captures:
        diagnosis = diagnose_config(cfg, ws, source=source)
        diagnosis.notes.insert(0, f"run {run.id} has no profiler capture: captured "
                                  f"{ADVISE_CAPTURE.active} steps of its config")
        evidence = diagnosis.evidence
    else:
        trace = captures[0].trace
        report, facts = read_capture(trace)
        notes: list[str] = []
        data = load_dataset(cfg)
        settled = settle_task(cfg, data)
        forecast = memory_forecast(settled, data, notes)
        evidence = build_evidence(cfg, report=report, facts=facts, forecast=forecast,
                                  train_samples=len(data.y_train))
        diagnosis = Diagnosis(cfg, source, str(trace), evidence, [], notes)
    util = gpu_utilization(ws.hardware_samples(run.id))
    if util is not None:
        evidence = replace(evidence, gpu_utilization=util)
    diagnosis.evidence = evidence
    diagnosis.findings = advise(evidence)
    return diagnosis

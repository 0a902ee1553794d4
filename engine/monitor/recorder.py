"""HardwareRecorder: samples the hardware while a Trainer runs and stores it with the run.

A handler like the others: ``attach(trainer)`` starts the sampler when the run
starts and stops it when the run ends, reading the current step off the
trainer. Samples are written to the workspace in batches from the sampler's
thread; a failed write (a full disk) is reported once and never reaches the
training loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from engine.training import events as ev

from .energy import RAPL_ROOT, EnergyMeter
from .sampler import DEFAULT_INTERVAL_S, Sample, Sampler

FLUSH_EVERY_S = 2.0


class HardwareRecorder:
    def __init__(self, workspace, run_id: int, interval: float = DEFAULT_INTERVAL_S, *,
                 on_sample: Callable[[Sample], None] | None = None,
                 on_problem: Callable[[str], None] | None = None, **sampler_options):
        self.workspace = workspace
        self.run_id = run_id
        self._forward = on_sample
        self._pending: list[Sample] = []
        self._flushed = time.monotonic()
        self._trainer = None
        self.sampler = Sampler(interval, step=self._step, on_sample=self._on_sample,
                               on_problem=on_problem, **sampler_options)

    def attach(self, trainer) -> HardwareRecorder:
        self._trainer = trainer
        trainer.on(ev.RunStarted, self._on_started)
        trainer.on(ev.RunEnded, self._on_ended)
        return self

    def _step(self) -> int | None:
        return None if self._trainer is None else self._trainer.step

    def _on_started(self, _event) -> None:
        self.sampler.start()

    def _on_ended(self, _event) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sampling and write what is buffered; safe to call twice."""
        self.sampler.stop()
        self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        self._flushed = time.monotonic()
        try:
            self.workspace.add_hardware_samples(self.run_id, pending)
        except Exception as exc:  # the run goes on; its hardware curves will have a gap
            self.sampler.report(f"hardware samples could not be stored ({exc})")

    def _on_sample(self, sample: Sample) -> None:
        self._pending.append(sample)
        if time.monotonic() - self._flushed >= FLUSH_EVERY_S:
            self.flush()
        if self._forward is not None:
            self._forward(sample)


class EnergyRecorder:
    """Measures a Trainer's run with an EnergyMeter: started when the run starts, read after
    each epoch end and when the loop has left, each reading emitted as ``EnergyMeasured``
    for the sinks (the workspace writer, the CLI's summary and JSON, the window).

    ``before`` is what the run's record holds from earlier sessions (a resumed run):
    ``(energy_j, energy_per_1k_samples_j, energy_source, energy_note)``; the run's
    figure is the sum over its sessions, or not available when one of them was not
    measured or was measured by another source (a GPU's and a CPU's energy are not
    one quantity).
    """

    def __init__(self, meter: EnergyMeter, before: tuple = (None, None, None, None)):
        self.meter = meter
        self._before_j, per_1k, self._before_source, note = before
        self._before_samples = (round(self._before_j * 1000 / per_1k)
                                if self._before_j and per_1k else 0)
        self._before_note = note or ""
        self._resumed = False
        self._trainer = None

    def attach(self, trainer) -> EnergyRecorder:
        self._trainer = trainer
        trainer.on(ev.RunStarted, self._on_started)
        trainer.on(ev.EpochEnded, self._on_epoch_ended)
        trainer.on(ev.LoopEnded, self._on_loop_ended)
        trainer.on(ev.RunEnded, self._on_run_ended)
        return self

    def add_sample(self, sample: Sample) -> None:
        self.meter.add_sample(sample)

    def _on_started(self, e) -> None:
        self._resumed = e.start_step > 0
        self.meter.start()

    def _on_epoch_ended(self, e) -> None:
        self._emit(e.step, e.epoch, final=False)

    def _on_loop_ended(self, e) -> None:
        self._emit(e.step, self._trainer.epoch - 1, final=True)
        self.meter.close()

    def _on_run_ended(self, _e) -> None:
        self.meter.close()  # a failure before the loop ended

    def _emit(self, step: int, epoch: int, *, final: bool) -> None:
        trainer = self._trainer
        energy = self.meter.read()
        joules, source, note = energy.joules, energy.source, energy.note
        samples = trainer.samples_trained
        if self._resumed and joules is not None:
            if self._before_j is None:
                joules, source = None, None
                note = ("not available: an earlier session of this run was not measured"
                        + (f" ({self._before_note.removeprefix('not available: ')})"
                           if self._before_note else ""))
            elif self._before_source not in (None, source):
                joules, source = None, None
                note = (f"not available: earlier sessions of this run were measured by "
                        f"{self._before_source}, this one by {energy.source}")
            else:
                joules += self._before_j
                samples += self._before_samples
        per_1k = joules * 1000 / samples if joules is not None and samples else None
        per_epoch = (per_1k * trainer.train_loader.n / 1000 if per_1k is not None
                     else None)
        trainer.emit(ev.EnergyMeasured(step, epoch, joules, per_epoch, per_1k, samples, source,
                                       note, final))


def run_gpus(trainer) -> tuple[str, ...] | None:
    """The NVML UUIDs of the GPUs the run trains on; None for a run on the CPU. Under
    torchrun those of every rank of this node (rank r of a node trains on cuda:LOCAL_RANK),
    measured by rank 0 alone: the run's energy is the node's GPUs', not rank 0's GPU's."""
    if trainer.device.type != "cuda":
        return None
    import torch

    if getattr(trainer, "dist", None) is not None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        indices = range(min(local, torch.cuda.device_count()) or 1)
    else:
        indices = [trainer.device.index if trainer.device.index is not None
                   else torch.cuda.current_device()]
    uuids = [getattr(torch.cuda.get_device_properties(i), "uuid", "") for i in indices]
    return tuple(f"GPU-{u}" for u in uuids) if all(uuids) else ()


def energy_unmeasured(trainer) -> str:
    """Why the run's energy cannot be measured whole from this process ("" when it can): a
    run across nodes draws power on machines this one cannot read, and a part is not
    reported as the run's energy."""
    if getattr(trainer, "dist", None) is None:
        return ""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if world > local:
        return (f"the run trains on {world // max(local, 1)} nodes and this one can read only "
                f"its own counters (its {local} process(es) of {world})")
    return ""


def record_run(trainer, workspace, run, *, on_sample: Callable[[Sample], None] | None = None,
               on_problem: Callable[[str], None] | None = None) -> HardwareRecorder:
    """Make ``trainer`` train as workspace run ``run``: its checkpoints in the run folder, its
    metrics and log through a WorkspaceWriter, its hardware samples through a recorder
    (returned; stop() it when the run is over), its energy (engine.monitor.energy) and its
    evaluation report when it completes. The CLI, the window's run process and
    compression's fine-tuning runs all record a run this way.

    ``TORCHWORK_RAPL_ROOT`` names the powercap folder to read RAPL from, for a container
    that mounts the host's /sys/class/powercap elsewhere."""
    from engine.evaluation.runs import EvaluateAtEnd
    from engine.workspace.writer import WorkspaceWriter

    trainer.run_id = str(run.id)
    trainer.enable_checkpoints(run.dir / "checkpoints")
    writer = WorkspaceWriter(workspace, run).attach(trainer)
    EvaluateAtEnd(run, writer.log).attach(trainer)
    meter = EnergyMeter(gpus=run_gpus(trainer),
                        rapl_root=os.environ.get("TORCHWORK_RAPL_ROOT") or RAPL_ROOT,
                        unavailable=energy_unmeasured(trainer))
    energy = EnergyRecorder(meter, (run.energy_j, run.energy_per_1k_samples_j,
                                    run.energy_source, run.energy_note)).attach(trainer)
    return HardwareRecorder(workspace, run.id, trainer.config.monitor.interval,
                            on_sample=_both(energy.add_sample, on_sample),
                            on_problem=on_problem, pids=run_pids(trainer)).attach(trainer)


def run_pids(trainer, pid: int | None = None) -> frozenset[int] | None:
    """The processes of this node that train the run, whose GPU memory is the run's: this one
    (None), or under torchrun every local rank, the children of the agent that started
    this process (``pid``: this process)."""
    if getattr(trainer, "dist", None) is None:
        return None
    import psutil

    me = psutil.Process(pid or os.getpid())
    try:
        agent = me.parent()
        ranks = agent.children() if agent is not None else []
    except psutil.Error:
        ranks = []
    return frozenset({me.pid, *(p.pid for p in ranks)})


def _both(first: Callable[[Sample], None], then: Callable[[Sample], None] | None):
    if then is None:
        return first

    def both(sample: Sample) -> None:
        first(sample)
        then(sample)
    return both

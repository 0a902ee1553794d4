"""HardwareRecorder: samples the hardware while a Trainer runs and stores it with the run.

A handler like the others: ``attach(trainer)`` starts the sampler when the run
starts and stops it when the run ends, reading the current step off the
trainer. Samples are written to the workspace in batches from the sampler's
thread; a failed write (a full disk) is reported once and never reaches the
training loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.training import events as ev

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


def record_run(trainer, workspace, run, *, on_sample: Callable[[Sample], None] | None = None,
               on_problem: Callable[[str], None] | None = None) -> HardwareRecorder:
    """Make ``trainer`` train as workspace run ``run``: its checkpoints in the run folder, its
    metrics and log through a WorkspaceWriter, its hardware samples through a recorder
    (returned; stop() it when the run is over), and its evaluation report when it completes.
    The CLI, the window's run process and compression's fine-tuning runs all record a run
    this way."""
    from engine.evaluation.runs import EvaluateAtEnd
    from engine.workspace.writer import WorkspaceWriter

    trainer.run_id = str(run.id)
    trainer.enable_checkpoints(run.dir / "checkpoints")
    writer = WorkspaceWriter(workspace, run).attach(trainer)
    EvaluateAtEnd(run, writer.log).attach(trainer)
    return HardwareRecorder(workspace, run.id, trainer.config.monitor.interval,
                            on_sample=on_sample, on_problem=on_problem).attach(trainer)

"""Terminal sinks for Trainer events: a progress bar for people, JSON lines for programs."""

from __future__ import annotations

import json
import math
import sys
from typing import TextIO

from tqdm import tqdm

from .monitor.energy import energy_text
from .training import events as ev


def _plain(value):
    """JSON has no NaN or infinity: such values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g}"


class JsonLines:
    """One JSON object per line on ``stream``, each with an ``event`` key."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.energy: ev.EnergyMeasured | None = None

    def attach(self, trainer) -> None:
        trainer.on(ev.RunStarted, self._started)
        trainer.on(ev.MetricsLogged, self._step)
        trainer.on(ev.EpochEnded, self._epoch)
        trainer.on(ev.EnergyMeasured, self._energy)
        trainer.on(ev.RunEnded, self._finished)

    def _write(self, kind: str, **fields) -> None:
        record = {"event": kind, **{k: _plain(v) for k, v in fields.items()}}
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def _started(self, e: ev.RunStarted) -> None:
        self._write("run_started", run_id=e.run_id, num_params=e.num_params, device=e.device,
                    task=e.task, epochs=e.epochs, total_steps=e.total_steps,
                    start_step=e.start_step, notes=list(e.notes))

    def _step(self, e: ev.MetricsLogged) -> None:
        self._write("step", step=e.step, epoch=e.epoch, loss=e.loss, lr=e.lr,
                    samples_per_s=e.samples_per_s, grad_norm=e.grad_norm, wall_s=e.wall_s)

    def _epoch(self, e: ev.EpochEnded) -> None:
        self._write("epoch", epoch=e.epoch, step=e.step, train_loss=e.train_loss, lr=e.lr,
                    wall_s=e.wall_s, **e.metrics)

    def _energy(self, e: ev.EnergyMeasured) -> None:
        self.energy = e

    def _finished(self, e: ev.RunEnded) -> None:
        self._write("run_finished", status=e.status, best_val=e.best_val,
                    best_metric=e.best_metric, steps=e.steps,
                    epochs_completed=e.epochs_completed, wall_s=e.wall_s,
                    steps_per_s=e.steps_per_s, error=e.error, failed_at=e.failed_at,
                    checkpoint=e.checkpoint, **energy_fields(self.energy))


def energy_fields(e: ev.EnergyMeasured | None) -> dict:
    """A run's energy as `run_finished` carries it; ``e`` None: the run was not measured."""
    if e is None:
        return dict(energy_j=None, energy_per_epoch_j=None, energy_per_1k_samples_j=None,
                    energy_source=None, energy_note="not available: the run was not measured")
    return dict(energy_j=e.joules, energy_per_epoch_j=e.per_epoch_j,
                energy_per_1k_samples_j=e.per_1k_samples_j, energy_source=e.source,
                energy_note=e.note or None)


class ProgressBar:
    """A tqdm bar over the run's optimizer steps with loss, validation metric and ETA."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.val = ""
        self.energy: ev.EnergyMeasured | None = None

    def attach(self, trainer) -> None:
        trainer.on(ev.RunStarted, self._started)
        trainer.on(ev.MetricsLogged, self._step)
        trainer.on(ev.EpochEnded, self._epoch)
        trainer.on(ev.CheckpointSaved, self._checkpoint)
        trainer.on(ev.Paused, lambda e: self._say(f"paused at step {e.step}"))
        trainer.on(ev.StopRequested, self._stop)
        trainer.on(ev.EnergyMeasured, self._energy)
        trainer.on(ev.RunEnded, self._finished)

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)

    def _started(self, e: ev.RunStarted) -> None:
        where = f" from step {e.start_step}" if e.start_step else ""
        self._say(f"run {e.run_id or '-'}: {e.num_params:,} parameters on {e.device}, "
                  f"{e.epochs} epochs x {e.steps_per_epoch} steps{where}")
        for note in e.notes:
            self._say(note)
        self.bar = tqdm(total=e.total_steps, initial=e.start_step, unit="step",
                        file=self.stream, dynamic_ncols=True, leave=True, disable=None,
                        mininterval=0.5,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                   "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    def _step(self, e: ev.MetricsLogged) -> None:
        if self.bar is None:
            return
        self.bar.update(e.step - self.bar.n)
        self.bar.set_postfix_str(f"epoch {e.epoch} loss {_fmt(e.loss)}{self.val}",
                                 refresh=False)

    def _epoch(self, e: ev.EpochEnded) -> None:
        shown = " ".join(f"{k} {_fmt(v)}" for k, v in e.metrics.items())
        self.val = f" {shown}" if shown else ""
        self._say(f"epoch {e.epoch}: train_loss {_fmt(e.train_loss)} {shown} lr {e.lr:.3g}")

    def _checkpoint(self, e: ev.CheckpointSaved) -> None:
        if e.reason != "interval":
            self._say(f"checkpoint ({e.reason}) at step {e.step}: {e.path}")

    def _stop(self, e: ev.StopRequested) -> None:
        why = {"user": "stopped by request", "early_stopping": "early stopping: no improvement",
               "max_steps": "reached train.max_steps",
               "finished": "its last checkpoint is the run's end: finishing its record"
               }.get(e.reason, e.reason)
        self._say(f"{why} at step {e.step}")

    def _energy(self, e: ev.EnergyMeasured) -> None:
        self.energy = e

    def _finished(self, e: ev.RunEnded) -> None:
        if self.bar is not None:
            self.bar.update(e.steps - self.bar.n)
            self.bar.close()
        best = f", best {e.best_metric} {_fmt(e.best_val)}" if e.best_val is not None else ""
        line = (f"{e.status}: {e.epochs_completed} epochs, {e.steps} steps in {e.wall_s:.1f} s "
                f"({e.steps_per_s:.1f} steps/s){best}")
        print(line, file=self.stream)
        if self.energy is not None:
            print(energy_text(self.energy), file=self.stream)
        if e.error:
            print(f"error: {e.error}", file=self.stream)

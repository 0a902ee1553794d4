"""WorkspaceWriter: records a run from the Trainer's events.

It writes three things a person uses afterwards: rows in workspace.sqlite
(for the app and `torchwork runs`), TensorBoard event files in the run's
``tb/`` folder, and ``log.txt``. The Trainer calls handlers on its own thread,
so per-step work stays tiny: step rows are buffered and committed in one
transaction about once a second and at each epoch end, which keeps a reader
at most a second behind without a commit per logging interval.

Failures (a full disk, a removed folder) are raised, never swallowed: the
Trainer turns a handler's exception into a failed run. Every database write
is its own transaction that is rolled back on error, so the lock is never kept.
"""

from __future__ import annotations

import json
import time

from engine.files import write_text_atomic
from engine.monitor.energy import energy_text
from engine.training.events import (
    CheckpointSaved,
    EnergyMeasured,
    EpochEnded,
    ExceptionRaised,
    LoopEnded,
    MetricsLogged,
    RunEnded,
    RunStarted,
)
from engine.workspace.diskspace import is_disk_full
from engine.workspace.records import RunRecord
from engine.workspace.runlog import RunLog
from engine.workspace.store import Workspace, WorkspaceError

# The run folder's copy of the data's fitted preprocessing (written when the run starts)
PREPROCESSING_FILE = "preprocessing.json"


class WorkspaceWriter:
    def __init__(self, workspace: Workspace, run: RunRecord, *, flush_interval_s: float = 1.0):
        self.workspace = workspace
        self.run = run
        self.flush_interval_s = flush_interval_s
        self.log = RunLog(run.dir / "log.txt")
        self._pending: list[tuple] = []
        self._last_flush = time.monotonic()
        self._tb = None
        self._purge_step: int | None = None
        self._reserve = Reserve(workspace.root / RESERVE_NAME)

    def attach(self, trainer) -> WorkspaceWriter:
        for event_cls, handler in ((RunStarted, self._on_run_started),
                                   (MetricsLogged, self._on_metrics),
                                   (EpochEnded, self._on_epoch_ended),
                                   (LoopEnded, self._on_loop_ended),
                                   (CheckpointSaved, self._on_checkpoint),
                                   (EnergyMeasured, self._on_energy),
                                   (ExceptionRaised, self._on_exception),
                                   (RunEnded, self._on_run_ended)):
            trainer.on(event_cls, handler)
        return self

    def flush(self) -> None:
        """Commit buffered step rows; they stay buffered if the commit fails, for a retry."""
        if self._pending:
            self.workspace.add_step_metrics(self.run.id, self._pending)
            self._pending = []
        self._last_flush = time.monotonic()

    # --- handlers ------------------------------------------------------------
    def _on_run_started(self, e: RunStarted) -> None:
        self._reserve.keep()
        if e.start_step > 0:  # resumed from a checkpoint: what came after it is redone
            self.workspace.truncate_after(self.run.id, e.start_step)
            self._purge_step = e.start_step
        self.workspace.mark_running(self.run.id, num_params=e.num_params, device=e.device)
        self._last_flush = time.monotonic()
        what = (f"resumed at step {e.start_step} (epoch {e.start_epoch})" if e.start_step
                else "started")
        self.log.write(f"run {self.run.id} '{self.run.name}' {what} on {e.device}: "
                       f"{e.num_params:,} parameters, {e.task}, {e.epochs} epochs of "
                       f"{e.steps_per_epoch} steps ({e.total_steps} steps in all)")
        for note in e.notes:
            self.log.write(note)
        if e.preprocessing is not None:
            write_text_atomic(self.run.dir / PREPROCESSING_FILE, json.dumps(e.preprocessing))

    def _on_metrics(self, e: MetricsLogged) -> None:
        self._pending.append((e.step, e.epoch, e.loss, e.lr, e.grad_norm, e.samples_per_s,
                              e.wall_s))
        self._scalars(e.step, {"train/loss": e.loss, "train/lr": e.lr,
                               "train/grad_norm": e.grad_norm,
                               "train/samples_per_s": e.samples_per_s})
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def _on_epoch_ended(self, e: EpochEnded) -> None:
        self.flush()
        self.workspace.add_epoch_metrics(self.run.id, e.epoch, e.step,
                                         {"train_loss": e.train_loss, "lr": e.lr, **e.metrics})
        self.workspace.update_run(self.run.id, steps=e.step, epochs_completed=e.epoch,
                                  wall_s=e.wall_s)
        scalars = {"epoch/train_loss": e.train_loss}
        for name, value in e.metrics.items():
            tag = f"val/{name.removeprefix('val_')}" if name.startswith("val_") else f"epoch/{name}"
            scalars[tag] = value
        self._scalars(e.step, scalars)
        self._tensorboard().flush()
        shown = "  ".join(f"{k} {v:.4g}" for k, v in e.metrics.items())
        self.log.write(f"epoch {e.epoch}  step {e.step}  train_loss {e.train_loss:.4g}  "
                       f"{shown + '  ' if shown else ''}lr {e.lr:.3g}  {e.wall_s:.1f}s")

    def _on_loop_ended(self, _e: LoopEnded) -> None:
        """The last steps are stored before the end's checkpoint is written (it runs last)."""
        self.flush()

    def _on_energy(self, e: EnergyMeasured) -> None:
        """The run's energy so far, kept current at each epoch end: a run killed later keeps
        what it had used by then."""
        self.workspace.update_run(self.run.id, energy_j=e.joules,
                                  energy_per_epoch_j=e.per_epoch_j,
                                  energy_per_1k_samples_j=e.per_1k_samples_j,
                                  energy_source=e.source, energy_note=e.note or None)
        if e.final:
            self.log.write(energy_text(e))

    def _on_checkpoint(self, e: CheckpointSaved) -> None:
        self.workspace.update_run(self.run.id, checkpoint=e.path)
        self.log.write(f"checkpoint ({e.reason}) at epoch {e.epoch}, step {e.step}: {e.path}")

    def _on_exception(self, e: ExceptionRaised) -> None:
        self.log.write(f"{e.kind} error at epoch {e.epoch}, step {e.step}: {e.message}"
                       + (f"\n{e.traceback}" if e.traceback else ""))

    def _on_run_ended(self, e: RunEnded) -> None:
        """Finish the record even when the flush fails, so the run never stays 'running'.

        On a full disk the unstored rows are let go: they are newer than the last
        checkpoint (written only after a flush), so the resume trains them again."""
        try:
            self.flush()
        except WorkspaceError as exc:
            if not is_disk_full(exc):
                raise
        finally:
            try:
                fields = dict(steps=e.steps, epochs_completed=e.epochs_completed,
                              wall_s=e.wall_s, best_val=e.best_val,
                              best_metric=e.best_metric or None, error=e.error)
                if e.checkpoint is not None:
                    fields["checkpoint"] = e.checkpoint
                self._finish(e.status, fields)
            finally:
                try:
                    if self._tb is not None:
                        self._tb.close()
                        self._tb = None
                finally:
                    self.log.write(_end_line(e))

    def _finish(self, status: str, fields: dict) -> None:
        """Write the run's end. On a full disk that may fail too: the record then stays
        'running' until the next open of the workspace marks it interrupted, which resumes
        the same way, so the failure is not raised over the run's own message."""
        try:
            self.workspace.finish_run(self.run.id, status, **fields)
        except WorkspaceError as exc:
            if not is_disk_full(exc):
                raise
            self._reserve.release()  # room for this one last write
            try:
                self.workspace.finish_run(self.run.id, status, **fields)
            except WorkspaceError as again:
                if not is_disk_full(again):
                    raise

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        """All values of one event in one TensorBoard record.

        A third of the time of one add_scalar call per value, which matters on
        the training thread.
        """
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)
                                 for tag, value in values.items()])
        self._tensorboard()._get_file_writer().add_summary(summary, step, time.time())

    def _tensorboard(self):
        if self._tb is None:
            # Imported here: it loads torch and tensorboard, which `torchwork runs`
            # and readers of the workspace should not wait for.
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(log_dir=str(self.run.dir / "tb"),
                                     purge_step=self._purge_step)
        return self._tb


RESERVE_NAME = ".reserve"
RESERVE_BYTES = 1 << 20


class Reserve:
    """A small file kept beside the database and given up when the disk is full, so that
    the write that ends a run still finds room: the run is marked stopped, not left
    'running' until the next open."""

    def __init__(self, path):
        self.path = path

    def keep(self) -> None:
        if self.path.exists():
            return
        try:
            with open(self.path, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)  # written, not sparse: the blocks are taken
        except OSError:  # a disk already full: nothing to keep
            self.path.unlink(missing_ok=True)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def _end_line(e: RunEnded) -> str:
    line = (f"run {e.status} after {e.epochs_completed} epochs, {e.steps} steps, "
            f"{e.wall_s:.1f}s ({e.steps_per_s:.1f} steps/s)")
    if e.best_val is not None:
        line += f"; best {e.best_metric} {e.best_val:.4g}"
    if e.checkpoint:
        line += f"; checkpoint {e.checkpoint}"
    if e.error:
        line += f"\n{e.error}"
    return line


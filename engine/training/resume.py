"""Resuming a workspace run: whatever moment it was killed at, it ends as if never killed.

One decision shared by `torchwork resume` and the window's Resume from checkpoint:
- no checkpoint yet (killed before its first step or first checkpoint): train again from
  step 0 with the stored configuration, dropping what the dead process had stored;
- a checkpoint written at the run's end (killed before it was marked ended): finish the
  record (status, final metrics, summary, log) without training more;
- otherwise continue from the checkpoint, dropping what was stored after it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.config import RunConfig

from .checkpoint import CheckpointError

# Keys a resume may change: the run still continues as it started (the last two choose
# only how torch does the same work: the advisor's advice, taken by a run already going).
RESUME_SETTABLE = ("train.epochs", "train.max_steps", "train.log_every", "train.checkpoint_every",
                   "optim.implementation", "train.threads")


class ResumeError(Exception):
    """A run that cannot be resumed; the message says why and what to do instead.

    ``usage`` marks a wrong request (no such run, a key that cannot change) rather than
    a run that cannot go on (exit 2 and 1 from the command line)."""

    def __init__(self, message: str, *, usage: bool = False):
        super().__init__(message)
        self.usage = usage


@dataclass
class Resumption:
    trainer: object  # the Trainer, loaded from the checkpoint (or fresh when restarting)
    run: object  # the RunRecord
    mode: str  # "continue" | "restart" | "finish"


def prepare_resume(ws, run_ref, overrides: Sequence[str] = (), *,
                   build: Callable[[RunConfig], object], world: int = 1,
                   writer: bool = True) -> Resumption:
    """The trainer that continues run ``run_ref`` of workspace ``ws``, ready to ``run()``.

    ``build(config)`` makes the Trainer with what its config attaches (a student's
    teacher: engine.run_builder.build_trainer); its ConfigError or ModelError reaches
    the caller as it is.

    On ``world`` processes (torchrun) every rank calls this and decides alike; only the
    ``writer`` (rank 0) changes the workspace. A checkpoint written by another number of
    processes resumes with the same global batch (data.batch_size is per process).
    """
    from engine.workspace import WorkspaceError

    try:
        if writer:
            ws.recover_interrupted()  # a run whose process died since the workspace was opened
        run = ws.get_run(run_ref)
    except WorkspaceError as exc:
        raise ResumeError(str(exc), usage=True) from None
    if writer and run.status in ("running", "created"):  # its process is alive (or elsewhere)
        raise ResumeError(f"run {run.id} is still {run.status} in another process: stop it "
                          f"before resuming it")
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key not in RESUME_SETTABLE:
            raise ResumeError(f"--set {key} cannot change on resume (the run would not continue "
                              f"as it started); allowed: {', '.join(RESUME_SETTABLE)}",
                              usage=True)
    cfg = RunConfig.from_toml(run.config_toml).with_overrides(list(overrides))
    if world > 1 and cfg.train.strategy == "none":
        raise ResumeError(f"run {run.id} trains in one process (train.strategy='none'): resume "
                          f"it without --nproc-per-node", usage=True)
    checkpoint = Path(run.checkpoint) if run.checkpoint else run.dir / "checkpoints" / "last.pt"
    if writer:
        ws.discard_partial_files(run.dir)
        discard_stale_shards(checkpoint)
    cfg = _same_global_batch(cfg, checkpoint, world)
    trainer = build(cfg)
    if not writer:  # the other ranks load the same checkpoint, then follow rank 0
        if checkpoint.exists():
            _load(trainer, checkpoint)
            if _finished(trainer, cfg, run):
                trainer.stop("finished")
        return Resumption(trainer, run, "follow")
    if not checkpoint.exists():
        if run.status == "completed":
            raise ResumeError(f"run {run.id} is completed but its checkpoint {checkpoint} is "
                              f"gone: start it again with `torchwork run "
                              f"{run.dir / 'config.toml'}`")
        _forget_progress(ws, run)
        mode = "restart"
    else:
        _load(trainer, checkpoint)
        done = trainer.epoch > cfg.train.epochs or bool(
            cfg.train.max_steps and trainer.step >= cfg.train.max_steps)
        ended = _ended(trainer, cfg, run)
        if run.status == "completed" and (done or ended):
            raise ResumeError(f"run {run.id} already finished its {cfg.train.epochs} epochs "
                              f"({trainer.step} steps): raise them with --set train.epochs=N")
        ws.truncate_after(run.id, trainer.step)
        mode = "finish" if done or ended else "continue"
        if mode == "finish":
            trainer.stop("finished")  # run() then only writes the run's end
    if cfg.to_toml() != run.config_toml:
        ws.update_run(run.id, config_toml=cfg.to_toml())
        (run.dir / "config.toml").write_text(cfg.to_toml(), encoding="utf-8")
    return Resumption(trainer, run, mode)


def _load(trainer, checkpoint: Path) -> None:
    try:
        trainer.load_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise ResumeError(str(exc)) from None


def _ended(trainer, cfg: RunConfig, run) -> bool:
    """The checkpoint is the run's end, and the resume asks for no more training."""
    stored = RunConfig.from_toml(run.config_toml, validate=False).train
    extended = (cfg.train.epochs, cfg.train.max_steps) != (stored.epochs, stored.max_steps)
    return trainer.checkpoint_reason == "end" and not extended


def _finished(trainer, cfg: RunConfig, run) -> bool:
    done = trainer.epoch > cfg.train.epochs or bool(
        cfg.train.max_steps and trainer.step >= cfg.train.max_steps)
    return done or _ended(trainer, cfg, run)


def _same_global_batch(cfg: RunConfig, checkpoint: Path, world: int) -> RunConfig:
    """``cfg`` with the per-process batch that keeps the checkpoint's global batch on
    ``world`` processes (each rank trains data.batch_size of every batch)."""
    from .checkpoint import SHARDS, load_checkpoint

    if not checkpoint.exists():
        return cfg
    try:
        state = load_checkpoint(checkpoint, map_location="cpu", need=(), lazy_shards=True)
    except CheckpointError as exc:
        raise ResumeError(str(exc)) from None
    saved = int(state.get("world", 1)) if SHARDS in state else 1
    if saved == world:
        return cfg
    batch = cfg.data.batch_size * saved
    if batch % world:
        raise ResumeError(f"the run trained with a global batch of {batch} (data.batch_size="
                          f"{cfg.data.batch_size} on {saved} process"
                          f"{'es' if saved > 1 else ''}), which {world} processes cannot "
                          f"share evenly: resume on a number of processes that divides {batch}")
    return cfg.with_overrides([f"data.batch_size={batch // world}"])


def discard_stale_shards(checkpoint: Path) -> None:
    """Shard folders a killed save left, which ``last.pt`` does not name."""
    from .checkpoint import SHARDS, load_checkpoint
    from .sharded import discard_stale

    keep = None
    if checkpoint.exists():
        try:
            keep = load_checkpoint(checkpoint, map_location="cpu", need=(),
                                   lazy_shards=True).get(SHARDS)
        except CheckpointError:
            return  # said when it is loaded; its shards stay for a look
    discard_stale(checkpoint.parent, keep)


def _forget_progress(ws, run) -> None:
    """What a process that died before its first checkpoint stored: it is trained again."""
    ws.truncate_after(run.id, 0)
    ws.update_run(run.id, steps=0, epochs_completed=0, wall_s=None, best_val=None,
                  checkpoint=None)
    shutil.rmtree(run.dir / "tb", ignore_errors=True)

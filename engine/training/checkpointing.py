"""The Trainer's checkpoints: what it saves, and how a run continues from one.

One process writes the whole state into one file (engine.training.checkpoint); the
ranks of a process group each write their shard with torch.distributed.checkpoint
(engine.training.sharded). Either loads on any number of processes.
"""

from __future__ import annotations

from pathlib import Path

from . import events as ev
from .checkpoint import SHARDS, CheckpointError, load_checkpoint, save_checkpoint
from .rng import rng_state, set_rng_state
from .setup import keep_implementation
from .sharded import load_sharded, rank_rng, save_sharded


class CheckpointState:
    """The checkpoint methods of engine.training.Trainer (a mixin: they read its model,
    optimizer, schedule, scaler, progress and handlers)."""

    def model_state(self) -> dict:
        """The model's weights whole (early stopping's best weights); under FSDP gathered
        from every rank onto rank 0's CPU ({} elsewhere), so every rank calls this together."""
        return self.dist.model_state(self.model) if self.dist else self.model.state_dict()

    def load_model_state(self, state: dict) -> None:
        """Put back what model_state gave (under FSDP rank 0 sends every rank its shards)."""
        if self.dist:
            return self.dist.load_model_state(self.model, state)
        self.model.load_state_dict(state)

    def whole_model(self):
        """The trained model, whole, to use in this process alone (the report at the end of
        a run); under FSDP rebuilt from rank 0's last checkpoint."""
        return self.dist.whole_model(self) if self.dist else self.model

    def state_dict(self) -> dict:
        """The whole checkpoint of a run in one process (a process group's: sharded.py)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                **self._plain_state()}

    def save_checkpoint(self, reason: str = "interval", path: str | Path | None = None) -> str:
        """Write the checkpoint (``checkpoint_dir/last.pt``); under a process group every
        rank calls this at the same point and writes its shard (engine.training.sharded)."""
        if self.dist is not None and path is None:
            written = save_sharded(self, self._plain_state(), self.checkpoint_dir, reason)
            if written is None:  # rank 0 keeps no checkpoints
                return None
            path = Path(written)
        else:
            if path is None:
                if self.checkpoint_dir is None:
                    raise CheckpointError("no checkpoint folder was given to this run")
                path = self.checkpoint_dir / "last.pt"
            # The reason travels with it: resume tells a run's last checkpoint ("end") from
            # others.
            save_checkpoint({**self.state_dict(), "reason": reason}, path)
        self.last_checkpoint = str(path)
        self.emit(ev.CheckpointSaved(str(path), self.epoch - 1, self.step, reason))
        return str(path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Continue from a checkpoint: the run goes on exactly as if never interrupted.

        load_checkpoint has checked every part's shape and type, so what can still
        fail here is a checkpoint of another run (other layers, other optimizer). A
        checkpoint of a process group loads on any number of processes (every rank
        calls this), each rank taking its own random state where that rank saved one.
        """
        path = Path(path)
        state = load_checkpoint(path, map_location=self.device, lazy_shards=True)
        sharded = SHARDS in state
        try:
            if sharded:
                load_sharded(self, path, state)
            else:
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(keep_implementation(self.optimizer,
                                                                   state["optimizer"]))
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if self.precision.scaler is not None and state.get("scaler") is not None:
                self.precision.scaler.load_state_dict(state["scaler"])
            for name, obj in self._stateful.items():
                if name in state.get("handlers", {}):
                    obj.load_state_dict(state["handlers"][name])
            p = state["progress"]
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CheckpointError(f"checkpoint {path} does not fit this run ({first}): resume "
                                  f"with the configuration the run was started with") from None
        self.step, self.epoch = int(p["step"]), int(p["epoch"])
        self.batch_in_epoch, self.wall_s = int(p["batch_in_epoch"]), float(p["wall_s"])
        self.best_val = p["best_val"]
        self._epoch_loss_sum, self._epoch_steps = p["epoch_loss_sum"], p["epoch_steps"]
        rank, world = (self.dist.rank, self.dist.world) if self.dist is not None else (0, 1)
        rng = rank_rng(path, state, rank) if sharded else state["rng"] if rank == 0 else None
        if rng is not None:
            set_rng_state(rng)
        saved = int(state.get("world", 1)) if sharded else 1
        if saved != world:
            self.notes.append(world_change_note(saved, world, self.config.data.batch_size))
        self.last_checkpoint = str(path)
        self.checkpoint_reason = state.get("reason")

    def _plain_state(self) -> dict:
        """What a checkpoint holds besides model and optimizer (rank 0's; ``rng`` this rank's)."""
        scaler = self.precision.scaler
        return {
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(),
            "progress": {"step": self.step, "epoch": self.epoch,
                         "batch_in_epoch": self.batch_in_epoch, "wall_s": self.wall_s,
                         "best_val": self.best_val, "epoch_loss_sum": self._epoch_loss_sum,
                         "epoch_steps": self._epoch_steps},
            "handlers": {name: obj.state_dict() for name, obj in self._stateful.items()},
            "config": self.config.to_toml(),
        }


def world_change_note(saved: int, world: int, batch: int) -> str:
    """The log's line for a checkpoint of ``saved`` processes resumed on ``world``."""
    if saved > world:
        ranks = ", ".join(map(str, range(world, saved)))
        rng = f"the random state of rank(s) {ranks} (dropout, augmentation) does not carry over"
    else:
        ranks = ", ".join(map(str, range(saved, world)))
        rng = f"rank(s) {ranks} start from the seeded random state (dropout, augmentation)"
    return (f"resume: a checkpoint of {saved} process(es) resumed on {world}: data.batch_size="
            f"{batch} per process keeps the global batch of {batch * world}; {rng}")

"""The process group of a torchrun launch, and what every rank must agree on.

torchrun puts RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in each
process's environment; ``data_parallel`` joins the group from there (the ``env://``
rendezvous). Every collective has a timeout, so a rank that stops answering ends
the others' run with an error instead of hanging them forever.

Decisions stay the same on every rank by construction: the training losses are
all-reduced before the NaN check reads them, validation metrics are computed once
on rank 0 from every rank's predictions and broadcast, and a stop or pause asked on
any rank is agreed at each step boundary. No rank is then left waiting in a collective the
others never reach. Control collectives run on a gloo group (the CPU), so agreeing
on a stop never synchronizes an accelerator.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..config import ConfigError

# How long a collective waits for a rank that stopped answering; then the run ends.
TIMEOUT = timedelta(seconds=float(os.environ.get("TORCHWORK_COLLECTIVE_TIMEOUT_S", "300")))
# After a failure, how long a rank waits for the others to say they failed too.
ROLL_CALL_S = 10.0


def launched_world() -> int:
    """The number of processes torchrun started (1 when not started by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def strategy_of(cfg) -> str:
    """The strategy this process trains with: 'none', 'ddp' or 'fsdp' (auto: ddp under
    torchrun with more than one process). ddp or fsdp in a single process trains as one
    process: the same file trains anywhere."""
    strategy = cfg.train.strategy
    if strategy == "none" or launched_world() <= 1:
        return "none"
    return "ddp" if strategy == "auto" else strategy


class DataParallel:
    """One rank of a DistributedDataParallel run: its place, the wrapped model, and the
    collectives the Trainer calls at the few points where ranks must agree."""

    strategy = "ddp"

    def __init__(self, rank: int, world: int, device: torch.device, control):
        self.rank, self.world, self.device = rank, world, device
        self.control = control  # a gloo group: flags and small objects, never the device
        self.ddp: DistributedDataParallel | None = None
        try:  # torchrun's rendezvous store, for the roll call after a failure
            self.store = dist.distributed_c10d._get_default_store()
        except (RuntimeError, ValueError, AttributeError):
            self.store = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> DistributedDataParallel:
        """DDP over ``model`` (which keeps its own state dict: checkpoints stay plain)."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)
        return self.ddp

    def sync_batchnorm(self, model: torch.nn.Module, setting: str, notes: list[str]
                       ) -> torch.nn.Module:
        """``model`` with its BatchNorm layers computing statistics over every process's share
        of the batch (train.sync_batchnorm; SyncBatchNorm works on CUDA only)."""
        if setting == "off" or not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                       for m in model.modules()):
            return model
        if self.device.type != "cuda":  # 'on' was refused when the group was joined
            notes.append(f"train.sync_batchnorm: each process keeps its own BatchNorm "
                         f"statistics (SyncBatchNorm needs CUDA; this run is on "
                         f"{self.device.type})")
            return model
        notes.append("train.sync_batchnorm: BatchNorm statistics over the whole batch "
                     "(SyncBatchNorm)")
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def wrap_note(self) -> str | None:
        return None

    def attach(self, trainer) -> None:
        """Handlers a rank of this strategy needs (none under DDP)."""

    def model_state(self, model: torch.nn.Module) -> dict:
        """The model's state for a checkpoint (DDP: the replica's own, the same on all ranks)."""
        return model.state_dict()

    def load_model_state(self, model: torch.nn.Module, state: dict) -> None:
        model.load_state_dict(state)

    def whole_model(self, trainer) -> torch.nn.Module:
        """The model to use in one process alone: DDP's replica is whole."""
        return trainer.model

    def validation_forwards(self, batches: int) -> int:
        """Forward passes validation makes on this rank (DDP validates the replica: no
        collective, so each rank runs its own batches)."""
        return batches

    def loader_share(self, cfg, notes: list[str]) -> dict:
        """The training loader's options for this rank's share of each batch (and the note
        that says what data.batch_size now means)."""
        b = cfg.data.batch_size
        notes.append(f"{self.strategy}: {self.world} processes ({dist.get_backend()}), each "
                     f"training on data.batch_size={b} of every batch of {b * self.world}")
        return {"rank": self.rank, "world": self.world}

    def no_sync(self):
        """Skip the gradient all-reduce (a non-final micro-batch of gradient accumulation)."""
        return self.ddp.no_sync()

    def shard(self, x, y):
        """This rank's contiguous share of ``(x, y)``; in rank order the shares are the whole."""
        n = len(x)
        lo, hi = n * self.rank // self.world, n * (self.rank + 1) // self.world
        if isinstance(x, torch.Tensor):
            return x[lo:hi], y[lo:hi]
        return _Rows(x, lo, hi), y[lo:hi]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of each element (the losses of a logging interval)."""
        dist.all_reduce(values)
        return values / self.world

    def agree(self, stop: bool, pause: bool) -> tuple[bool, bool]:
        """``(stop, pause)`` as every rank will act on it: true on all when true on any. One
        small all-reduce on the control group, at a step boundary: a stop (Ctrl-C on any
        rank) or a pause (rank 0's command channel) then takes effect on every rank at the
        same step."""
        t = torch.tensor([int(stop), int(pause)], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return bool(t[0]), bool(t[1])

    def name_the_silent(self, exc: BaseException, error: str) -> str:
        """``error`` (this rank's run failed with ``exc``) led by the ranks that stopped
        answering, when ``exc`` is a collective that timed out or lost a peer.

        Such a failure ends every rank still alive within about the same time, and each
        says so in the store: the ranks that never do within ROLL_CALL_S are the silent or
        dead ones. Any other failure keeps its own words."""
        if self.store is None or self.world < 2 or not _collective_failure(exc):
            return error
        silent: list[int] = []
        try:
            self.store.set_timeout(timedelta(seconds=5))  # its host may be the silent one
            self.store.set(f"torchwork/failed/{self.rank}", "1")
            keys = [f"torchwork/failed/{rank}" for rank in range(self.world)]
            deadline = time.monotonic() + ROLL_CALL_S
            while True:
                silent = [r for r, key in enumerate(keys) if not self.store.check([key])]
                if not silent or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        except (RuntimeError, ValueError):  # the store went with a dead rank: the words as said
            return error
        if not silent:
            return error
        who = f"rank {silent[0]}" if len(silent) == 1 else f"ranks {', '.join(map(str, silent))}"
        return (f"{who} stopped answering (died or hangs: no word from it within "
                f"{TIMEOUT.total_seconds() + ROLL_CALL_S:g} s, TORCHWORK_COLLECTIVE_TIMEOUT_S); "
                f"rank {self.rank} saw: {error}")

    def metrics(self, parts: tuple, compute) -> dict[str, float]:
        """Validation metrics of the whole split: every rank's ``(loss_sum, count, predictions,
        targets)`` goes to rank 0, which computes them once and broadcasts the result."""
        gathered = [None] * self.world if self.main else None
        dist.gather_object(parts, gathered, dst=0, group=self.control)
        result = [None]
        if self.main:
            loss_sum = sum(p[0] for p in gathered)
            count = sum(p[1] for p in gathered)
            result[0] = compute(loss_sum, count, np.concatenate([p[2] for p in gathered]),
                                np.concatenate([p[3] for p in gathered]))
        dist.broadcast_object_list(result, src=0, group=self.control)
        return result[0]


def _collective_failure(exc: BaseException) -> bool:
    """A collective that timed out or lost a peer (gloo raises a plain RuntimeError)."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text for mark in ("gloo", "Timed out", "NCCL", "Connection closed by peer"))


class _Rows:
    """Rows ``lo`` to ``hi`` of streamed data (read batch by batch, never all at once)."""

    def __init__(self, x, lo: int, hi: int):
        self.x, self.lo, self.hi = x, lo, hi

    def __len__(self) -> int:
        return self.hi - self.lo

    def __getitem__(self, idx):
        return self.x[torch.as_tensor(idx) + self.lo]


def data_parallel(cfg, device: torch.device) -> DataParallel | None:
    """Join the process group torchrun set up, for a run whose strategy is ddp or fsdp; None
    for a run in one process. Raises ConfigError for a backend or optimizer that cannot work."""
    strategy = strategy_of(cfg)
    if strategy == "none":
        return None
    if cfg.optim.name == "lbfgs":
        raise ConfigError(f"optim.name='lbfgs' cannot train under train.strategy='{strategy}' "
                          f"(its line search evaluates the loss a varying number of times per "
                          f"step, so ranks would fall out of step): use another optimizer, or "
                          f"train.strategy='none'")
    backend = cfg.train.backend
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError(f"train.backend='nccl' needs CUDA devices (this run trains on "
                          f"{device.type}): use train.backend='gloo' or 'auto'")
    if cfg.train.sync_batchnorm == "on" and device.type != "cuda":
        raise ConfigError(f"train.sync_batchnorm='on' needs CUDA devices (torch's SyncBatchNorm; "
                          f"this run trains on {device.type}): use 'auto' or 'off', which keep "
                          f"each process's own BatchNorm statistics")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT,
                                device_id=device if backend == "nccl" else None)
    control = (dist.new_group(backend="gloo", timeout=TIMEOUT)
               if dist.get_backend() != "gloo" else dist.group.WORLD)
    place = (dist.get_rank(), dist.get_world_size(), device, control)
    if strategy == "fsdp":
        from .fsdp import FullyShardedRank

        return FullyShardedRank(*place, amp=cfg.precision.amp)
    return DataParallel(*place)


def leave_group() -> None:
    """Wait for every rank to finish (rank 0 writes last), then leave the process group."""
    if not dist.is_initialized():
        return
    try:
        dist.barrier(group=_control_of_world())
    except RuntimeError:  # a rank that failed is gone: its error is the run's message
        pass
    finally:
        dist.destroy_process_group()


def _control_of_world():
    return dist.group.WORLD if dist.get_backend() == "gloo" else None

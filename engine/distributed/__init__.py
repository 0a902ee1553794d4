"""Training on several processes through PyTorch's own distributed engine.

torchrun (torch.distributed.run, its elastic agent) starts the processes and
sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous in their environment;
torch.distributed joins them into a process group, and DistributedDataParallel
averages the gradients (ddp) or FSDP2's fully_shard shards the model (fsdp.py).
This package is the glue: which strategy a run uses (``train.strategy``), the
process group's life, the few decisions that must be the same on every rank (the
data shard, validation metrics, a stop), and the restart of a launch after a rank
dies (elastic.py). Checkpoints of a process group, sharded or not, are
engine.training.sharded's (torch.distributed.checkpoint).
"""

__all__ = ["DataParallel", "data_parallel", "launched_world", "leave_group", "strategy_of"]


def __getattr__(name: str):
    """group.py (and torch) load on first use: the window reads launch.local_slots before
    its first frame, when torch must not be imported yet (tests/app/test_startup.py)."""
    if name in __all__:
        from . import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

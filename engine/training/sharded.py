"""Checkpoints of a run under a process group, written with torch.distributed.checkpoint.

Every rank saves its part of the model and optimizer (``get_state_dict`` hands
DCP what the rank holds: a replica under DDP, a shard under FSDP2) into a
folder of shards beside ``last.pt``; each rank's random state goes into a small
file of its own. ``last.pt`` itself stays a Torchwork checkpoint holding the
plain state (schedule, scaler, progress, handlers, config) and the name of its
shards folder: rank 0 writes it atomically, last, once every rank has written
its part, so a save cut short by a dead rank or a full disk never replaces the
last good checkpoint.

Only tensors go into the shards (the plain values beside them travel in
``last.pt``), so DCP never has to unpickle a value; its ``.metadata`` file, a
pickle, is read with an unpickler that admits DCP's own classes only.
Loading needs no process group: one process reads a checkpoint that two wrote,
and export, compression and a run teacher read its weights.
"""

from __future__ import annotations

import errno
import pickle
import shutil
import uuid
import warnings
from pathlib import Path

import torch

from ..workspace.diskspace import disk_full_message, is_disk_full
from .checkpoint import SHARDS, CheckpointError, load_checkpoint, save_checkpoint
from .setup import keep_implementation

_FIX = "use an earlier checkpoint or start the run again"


# --- tensors to DCP, everything else to last.pt ------------------------------------
def split(tree: dict) -> tuple[dict, dict]:
    """(the tensors of a nested dict, the rest), each keeping the nesting; lists are values."""
    tensors, rest = {}, {}
    for key, value in tree.items():
        if isinstance(value, dict):
            t, r = split(value)
            if t:
                tensors[key] = t
            if r or not t:
                rest[key] = r
        elif isinstance(value, torch.Tensor):
            tensors[key] = value
        else:
            rest[key] = value
    return tensors, rest


def join(tensors: dict, rest: dict) -> dict:
    """The nested dict ``split`` took apart."""
    out = dict(rest)
    for key, value in tensors.items():
        out[key] = join(value, out.get(key, {})) if isinstance(value, dict) else value
    return out


# --- saving ------------------------------------------------------------------------
def save_sharded(trainer, plain: dict, folder: Path | None, reason: str) -> str | None:
    """Every rank writes its part; rank 0 then writes ``folder/last.pt``. Called on every
    rank at the same point; ``folder`` is rank 0's (the other ranks may not know it). The
    path written, or None on every rank when rank 0 has no checkpoint folder."""
    import torch.distributed as dist

    group = trainer.dist
    agreed = [None if folder is None else (str(folder), f"{SHARDS}-{trainer.step:08d}-"
                                           f"{uuid.uuid4().hex[:8]}")]
    dist.broadcast_object_list(agreed, src=0, group=group.control)
    if agreed[0] is None:
        return None
    folder, name = Path(agreed[0][0]), agreed[0][1]
    target = folder / name
    model, optim = model_and_optimizer(trainer)
    problem = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # DCP's notes on its own defaults
            import torch.distributed.checkpoint as dcp

            dcp.save({"model": model[0], "optimizer": optim[0]}, checkpoint_id=target)
        save_checkpoint({"rng": plain["rng"]}, target / f"rank-{group.rank}.pt")
    except Exception as exc:  # every rank must hear of it: the pointer is not written
        problem = (_first_line(exc), is_disk_full(exc, target))
    problems = [None] * group.world
    dist.all_gather_object(problems, problem, group=group.control)
    failed = [(rank, p) for rank, p in enumerate(problems) if p]
    path = folder / "last.pt"
    if not failed and group.main:
        try:
            save_checkpoint({**plain, SHARDS: name, "world": group.world,
                             "model": model[1], "optimizer": optim[1], "reason": reason}, path)
        except Exception as exc:
            failed = [(0, (_first_line(exc), is_disk_full(exc, folder)))]
    outcome = [failed[0] if failed else None]
    dist.broadcast_object_list(outcome, src=0, group=group.control)
    if outcome[0] is not None:
        if group.main:
            shutil.rmtree(target, ignore_errors=True)
        rank, (text, full) = outcome[0]
        said = f"checkpoint {path} was not written (rank {rank}: {text}); the previous one is kept"
        if full:  # the run stops with its last good checkpoint, as one process's would
            raise CheckpointError(disk_full_message(folder, said)) from OSError(
                errno.ENOSPC, text)
        raise CheckpointError(said)
    if group.main:
        discard_stale(folder, keep=name)
    return str(path)


def model_and_optimizer(trainer) -> tuple[tuple[dict, dict], tuple[dict, dict]]:
    """((model tensors, model rest), (optimizer tensors, optimizer rest)) by parameter name,
    as torch.distributed.checkpoint.state_dict gives them for a plain, DDP or FSDP2 model."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    net = trainer.dist.ddp if trainer.dist is not None and trainer.dist.ddp else trainer.model
    model, optim = get_state_dict(net, trainer.optimizer)
    return split(model), split(optim)


def discard_stale(folder: Path, keep: str | None = None) -> None:
    """Remove shard folders that ``last.pt`` no longer names (an earlier or a cut-short save)."""
    for old in folder.glob(f"{SHARDS}-*"):
        if old.name != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


# --- loading -----------------------------------------------------------------------
def shards_of(path: Path, state: dict) -> Path:
    """The checked shards folder that ``last.pt`` at ``path`` names: its metadata readable
    without running code, and every shard file it lists present and whole."""
    name = state.get(SHARDS)
    if not isinstance(name, str) or "/" in name or "\\" in name or not name.startswith(SHARDS):
        raise CheckpointError(f"checkpoint {path} has a mangled {SHARDS!r} entry: {_FIX}")
    folder = path.parent / name
    metadata = read_metadata(folder)
    for info in (metadata.storage_data or {}).values():
        shard = folder / str(getattr(info, "relative_path", ""))
        if not shard.is_file():
            raise CheckpointError(f"checkpoint {path} is missing its shard {shard}: {_FIX}")
        end = int(getattr(info, "offset", 0)) + int(getattr(info, "length", 0))
        if shard.stat().st_size < end:
            raise CheckpointError(f"checkpoint {path} has a truncated shard {shard} "
                                  f"({shard.stat().st_size} bytes, {end} needed): {_FIX}")
    return folder


def read_metadata(folder: Path):
    meta = folder / ".metadata"
    if not meta.is_file():
        raise CheckpointError(f"checkpoint shards {folder} lack their .metadata file (the save "
                              f"was cut short or the folder was copied in part): {_FIX}")
    try:
        with meta.open("rb") as fh:
            return _MetadataUnpickler(fh).load()
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"checkpoint shards {folder} refused: {meta.name} {exc}") from None
    except Exception as exc:
        raise CheckpointError(f"checkpoint shards {folder} have an unreadable {meta.name} "
                              f"({_first_line(exc)}): {_FIX}") from None


def load_sharded(trainer, path: Path, state: dict) -> None:
    """Load model and optimizer from the shards into ``trainer`` (every rank, or one process
    without a process group): DCP reshards to however many processes load it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    folder = shards_of(path, state)
    (model, model_rest), (optim, optim_rest) = model_and_optimizer(trainer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dcp.load({"model": model, "optimizer": optim}, checkpoint_id=folder)
    except Exception as exc:  # DCP gathers every rank's error and raises it on all of them
        raise CheckpointError(f"checkpoint {path} does not fit this run (its shards in "
                              f"{folder.name}: {_dcp_reason(exc)}): resume with the "
                              f"configuration the run was started with") from None
    net = trainer.dist.ddp if trainer.dist is not None and trainer.dist.ddp else trainer.model
    set_state_dict(net, trainer.optimizer,
                   model_state_dict=join(model, state.get("model") or model_rest),
                   optim_state_dict=keep_implementation(trainer.optimizer, join(
                       optim, state.get("optimizer") or optim_rest)))


def rank_rng(path: Path, state: dict, rank: int) -> dict | None:
    """The random state rank ``rank`` saved with the checkpoint, or None when no such rank
    wrote it (a checkpoint of fewer processes)."""
    if rank == 0:
        return state["rng"]
    file = path.parent / state[SHARDS] / f"rank-{rank}.pt"
    if not file.exists():
        return None
    return load_checkpoint(file, need=("rng",))["rng"]


def read_weights(path: Path, state: dict) -> dict[str, torch.Tensor]:
    """The whole model state of a sharded checkpoint, in one process, no process group:
    what export, compression and a run teacher read."""
    import torch.distributed.checkpoint as dcp

    folder = shards_of(path, state)
    metadata = read_metadata(folder)
    template = {}
    for key, meta in metadata.state_dict_metadata.items():
        if key.startswith("model.") and hasattr(meta, "size"):
            template[key.removeprefix("model.")] = torch.empty(
                tuple(meta.size), dtype=meta.properties.dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dcp.load({"model": template}, checkpoint_id=folder, no_dist=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} has unreadable shards in {folder.name} "
                              f"({_dcp_reason(exc)}): {_FIX}") from None
    return join(template, state.get("model") or {})


class _MetadataUnpickler(pickle.Unpickler):
    """DCP's metadata classes, torch's dtypes and sizes, paths: nothing that can run code."""

    def find_class(self, module: str, name: str):
        if module in ("torch.distributed.checkpoint.metadata",
                      "torch.distributed.checkpoint.filesystem") or (
                module == "torch.serialization" and name == "_get_layout") or (
                module == "pathlib" and name in ("PosixPath", "WindowsPath", "PurePosixPath",
                                                 "PureWindowsPath")) or (
                module == "collections" and name == "OrderedDict"):
            return super().find_class(module, name)
        if module == "torch":
            found = getattr(torch, name, None)
            if isinstance(found, (torch.dtype, torch.layout, torch.memory_format)) or (
                    found is torch.Size):
                return found
        raise pickle.UnpicklingError(f"names {module}.{name}, which DCP metadata never needs "
                                     f"(loading it could run code)")


def _dcp_reason(exc: BaseException) -> str:
    """The first useful line of DCP's error (a CheckpointException lists each rank's)."""
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict) and failures:
        rank, inner = min(failures.items())
        return f"rank {rank}: {_first_line(inner)}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:300]


__all__ = ["SHARDS", "discard_stale", "join", "load_sharded", "rank_rng", "read_weights",
           "save_sharded", "shards_of", "split"]

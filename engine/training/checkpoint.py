"""Checkpoint files: written atomically, read back with ``weights_only=True``.

A checkpoint holds everything a run needs to continue exactly where it left
off: model, optimizer, schedule and scaler state, RNG states, progress and the
state of stateful handlers (early stopping). Only tensors and plain Python
values are stored, so loading never has to unpickle arbitrary objects; a file
that would need to is refused instead of run.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch

FORMAT = "torchwork-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be written or loaded; the message says why and what to do."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: temporary file, flush, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location=None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} refused: loading it would unpickle arbitrary Python objects, "
            f"which can run code ({detail}). Torchwork loads only tensors and plain values; "
            f"use a checkpoint written by Torchwork, or re-save a file you trust as a "
            f"state_dict of tensors") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated ({exc}): use an "
                              f"earlier checkpoint or start a new run") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Torchwork checkpoint (no '{FORMAT}' marker): "
                              f"resume needs a file written by a Torchwork run")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {state['version']}, newer "
                              f"than this Torchwork understands ({VERSION}): upgrade Torchwork")
    return state

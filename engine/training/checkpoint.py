"""Checkpoint files: written atomically, read back with ``weights_only=True``.

A checkpoint holds everything a run needs to continue exactly where it left
off: model, optimizer, schedule and scaler state, RNG states, progress and the
state of stateful handlers (early stopping). Only tensors and plain Python
values are stored, so loading never has to unpickle arbitrary objects; a file
that would need to is refused instead of run.
"""

from __future__ import annotations

import math
import pickle
import pickletools
import re
import reprlib
import warnings
import zipfile
from pathlib import Path

import torch

from engine.files import atomic_path
from engine.workspace.diskspace import disk_full_message, is_disk_full

from .rng import rng_state_problem

FORMAT = "torchwork-checkpoint"
VERSION = 1
RESUME = ("model", "optimizer", "scheduler", "scaler", "rng", "progress", "handlers", "config")
WEIGHTS = ("model", "progress")  # export, compression and a run teacher: weights and their step
SHARDS = "shards"  # a checkpoint of a process group: the folder of its DCP shards


class CheckpointError(Exception):
    """A checkpoint that cannot be written or loaded; the message says why and what to do."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: temporary file, flush, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    try:
        with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as fh:
            torch.save(payload, fh)
    except BaseException as exc:
        if is_disk_full(exc):  # torch says "unexpected pos ...", which helps nobody
            raise CheckpointError(disk_full_message(path.parent, f"{path.name} was not "
                                                    f"written; the previous one is kept")) from exc
        raise
    return path


def load_checkpoint(path: str | Path, map_location=None, need: tuple[str, ...] = RESUME, *,
                    lazy_shards: bool = False) -> dict:
    """The checkpoint at ``path``, with the parts ``need`` names checked (RESUME or WEIGHTS).

    A checkpoint of a run under a process group keeps its model and optimizer in a
    folder of DCP shards beside it (engine.training.sharded): its shards are checked
    too, and ``model`` holds the whole weights read from them, unless ``lazy_shards``
    (the Trainer, which loads them itself, each rank its part).

    Every caller (resume, export, compression, a run teacher) reads through
    here, so a damaged file gets the same one-line CheckpointError everywhere:
    bytes that are no PyTorch file are called that, a pickle that would run
    code is refused without running it, and a part that is missing or of the
    wrong shape is named before anything of it is used.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    wrong_bytes = _not_a_torch_file(path)
    if wrong_bytes:
        raise CheckpointError(wrong_bytes)
    try:
        with warnings.catch_warnings():  # the weights-only unpickler warns about pickle protocols
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} refused: loading it would unpickle arbitrary Python objects, "
            f"which can run code ({_refused_detail(exc)}). Torchwork loads only tensors and "
            f"plain values; use a checkpoint written by Torchwork, or re-save a file you trust "
            f"as a state_dict of tensors") from None
    except Exception as exc:  # torch raises many kinds for a damaged archive or stream
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated ({detail}): use an "
                              f"earlier checkpoint or start a new run") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Torchwork checkpoint (no '{FORMAT}' marker): "
                              f"resume needs a file written by a Torchwork run")
    version = state.get("version", 0)
    if not _whole(version, 0):
        raise CheckpointError(f"checkpoint {path} has a mangled format version ({_shown(version)})"
                              f": {_FIX}")
    if version > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}, newer "
                              f"than this Torchwork understands ({VERSION}): upgrade Torchwork")
    sharded = SHARDS in state
    if sharded:
        from .sharded import read_weights, shards_of

        shards_of(path, state)
    for part in need:
        if sharded and part in ("model", "optimizer"):
            continue
        what, check, optional = _PARTS[part]
        if part not in state:
            if optional:
                continue
            raise CheckpointError(f"checkpoint {path} lacks {part!r} ({what}): {_FIX}")
        problem = check(state[part])
        if problem is not None:
            key, text = problem
            where = f"{part}.{key}" if key else part
            raise CheckpointError(f"checkpoint {path} has a mangled {where!r} ({what}: {text}): "
                                  f"{_FIX}")
    if sharded and "model" in need and not lazy_shards:
        state["model"] = read_weights(path, state)
    return state


_FIX = ("the file was damaged or edited after Torchwork wrote it; use an earlier checkpoint or "
        "start the run again")


def _not_a_torch_file(path: Path) -> str | None:
    """The error for bytes at ``path`` that cannot be a torch.save file, or None.

    torch.save writes a zip archive holding a data.pkl (or, in its legacy format,
    a bare pickle stream). Anything else would reach the unpickler as garbage and
    be reported as a refused pickle. The opcodes are only parsed, never run.
    """
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return (f"checkpoint {path} is unreadable or truncated (a zip archive whose end is "
                f"missing: its write or copy was cut short): use an earlier checkpoint or "
                f"start the run again")
    why = None
    if not head:
        why = "the file is empty"
    elif zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            names, why = [], f"a damaged zip archive ({exc})"
        if why is None and not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            why = "a zip archive without the data.pkl torch.save writes"
    else:
        try:
            with path.open("rb") as fh:
                for _ in pickletools.genops(fh):
                    pass
        except Exception:  # pickletools raises ValueError and others on bytes that are no pickle
            why = f"neither a zip archive nor a pickle; it starts with {head!r}"
    if why is None:
        return None
    return (f"{path} is not a checkpoint (not a PyTorch file: {why}): resume, export and "
            f"distillation need the last.pt a Torchwork run writes; use an earlier checkpoint "
            f"or start the run again")


def _refused_detail(exc: pickle.UnpicklingError) -> str:
    """The part of torch's long refusal that says what the file wanted to load."""
    text = str(exc)
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return f"it names {named.group(1)}"
    if "Unsupported operand" in text:
        return "it uses pickle instructions that plain tensors and values never need"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _whole(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _finite(value, low: float = -math.inf) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= low)


def _shown(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {reprlib.repr(value)}"


def _check_weights(value):
    if not isinstance(value, dict):
        return "", f"expected a dict of tensors, got {_shown(value)}"
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            return str(key), f"expected a tensor, got {_shown(tensor)}"
    return None


def _check_optimizer(value):
    if not isinstance(value, dict):
        return "", f"expected a dict, got {_shown(value)}"
    if not isinstance(value.get("state"), dict):
        return "state", f"expected a dict, got {_shown(value.get('state'))}"
    groups = value.get("param_groups")
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        return "param_groups", f"expected a list of dicts with 'params', got {_shown(groups)}"
    return None


def _check_dict_or_none(value):
    if value is not None and not isinstance(value, dict):
        return "", f"expected a dict or None, got {_shown(value)}"
    return None


def _check_handlers(value):
    if not isinstance(value, dict):
        return "", f"expected a dict of handler states, got {_shown(value)}"
    for name, handler in value.items():
        if not isinstance(handler, dict):
            return str(name), f"expected a dict, got {_shown(handler)}"
    return None


def _check_config(value):
    if not isinstance(value, str):
        return "", f"expected the configuration as TOML text, got {_shown(value)}"
    return None


_PROGRESS = {  # key: (check, what it must be)
    "step": (lambda v: _whole(v, 0), "a whole number >= 0"),
    "epoch": (lambda v: _whole(v, 1), "a whole number >= 1"),
    "batch_in_epoch": (lambda v: _whole(v, 0), "a whole number >= 0"),
    "wall_s": (lambda v: _finite(v, 0.0), "a finite number of seconds >= 0"),
    "best_val": (lambda v: v is None or _finite(v), "a finite number or None"),
    "epoch_loss_sum": (_finite, "a finite number"),
    "epoch_steps": (lambda v: _whole(v, 0), "a whole number >= 0"),
}


def _check_progress(value):
    if not isinstance(value, dict):
        return "", f"expected a dict, got {_shown(value)}"
    for key, (ok, expected) in _PROGRESS.items():
        if key not in value:
            return key, "missing"
        if not ok(value[key]):
            return key, f"expected {expected}, got {_shown(value[key])}"
    return None


# part: (what it holds, its check, whether an older file may lack it)
_PARTS = {
    "model": ("the trained weights", _check_weights, False),
    "optimizer": ("the optimizer state resume continues with", _check_optimizer, False),
    "scheduler": ("the learning-rate schedule's state", _check_dict_or_none, True),
    "scaler": ("the mixed-precision scaler's state", _check_dict_or_none, True),
    "rng": ("the random-number states that make a resumed run draw the same numbers",
            rng_state_problem, False),
    "progress": ("where the run stopped", _check_progress, False),
    "handlers": ("the state of handlers such as early stopping", _check_handlers, False),
    "config": ("the configuration the run was trained with", _check_config, False),
}

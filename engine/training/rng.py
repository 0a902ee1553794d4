"""Seeding and the RNG states a checkpoint carries so that a resumed run draws the same numbers.

States are stored as tensors and plain values only, so checkpoints load with
``weights_only=True``. A state read back from a file is checked by
rng_state_problem before any of it is applied, so a damaged one is refused
whole instead of leaving the generators half set.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_as_tuples(state["python"]))
    np.random.set_state(("MT19937", state["numpy"].cpu().numpy().astype(np.uint32),
                         state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def rng_state_problem(state) -> tuple[str, str] | None:
    """What is wrong with ``state`` as set_rng_state's input: (its key, the problem), or None.

    Each part is tried on a throwaway generator of its own kind, so the libraries
    themselves judge sizes and values and the process's generators are untouched.
    """
    if not isinstance(state, dict):
        return "", f"expected a dict of generator states, got {type(state).__name__}"
    for key in ("torch", "python", "numpy", "numpy_pos"):
        if key not in state:
            return key, "missing"
    torch_state, numpy_state, pos = state["torch"], state["numpy"], state["numpy_pos"]
    if not isinstance(torch_state, torch.Tensor) or torch_state.dtype != torch.uint8:
        return "torch", f"expected a uint8 tensor, got {_kind(torch_state)}"
    try:
        torch.Generator().set_state(torch_state.cpu())
    except (RuntimeError, TypeError) as exc:
        return "torch", _first_line(exc)
    try:
        python = _as_tuples(state["python"])
        random.Random().setstate(python)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        return "python", f"not a Python random state ({_first_line(exc)})"
    if python[2] is not None and not isinstance(python[2], float):  # gauss's spare draw
        return "python", f"expected None or a float as its last item, got {_kind(python[2])}"
    if not isinstance(numpy_state, torch.Tensor) or numpy_state.dtype != torch.int64:
        return "numpy", f"expected an int64 tensor, got {_kind(numpy_state)}"
    if tuple(numpy_state.shape) != (624,):  # MT19937's key
        return "numpy", f"expected 624 values, got {_kind(numpy_state)}"
    if numpy_state.min() < 0 or numpy_state.max() >= 2**32:
        return "numpy", "values outside 0 .. 2**32 - 1"
    if not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos <= 624:
        return "numpy_pos", f"expected a whole number from 0 to 624, got {_kind(pos)} {pos!r:.20}"
    try:
        np.random.RandomState().set_state(
            ("MT19937", numpy_state.cpu().numpy().astype(np.uint32), pos, 0, 0.0))
    except (TypeError, ValueError, IndexError) as exc:
        return "numpy", f"not a numpy random state ({_first_line(exc)})"
    cuda = state.get("cuda", [])
    if not isinstance(cuda, (list, tuple)) or not all(
            isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in cuda):
        return "cuda", f"expected a list of uint8 tensors, got {_kind(cuda)}"
    return None


def _kind(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of {str(value.dtype).removeprefix('torch.')}, shape {tuple(value.shape)}"
    return type(value).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value

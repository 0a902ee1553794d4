"""Models from a user's Python file: ``model.arch = "custom:path/to/file.py"``.

Loading runs the file's code with the user's permissions, exactly like
importing it: only load files you trust. The file must define
``build_model(input_shape, num_outputs)`` returning a ``torch.nn.Module``.
It may also name the blocks FSDP2 shards one by one (``train.strategy='fsdp'``):
``FSDP_BLOCKS``, a tuple of module classes (``(torch.nn.TransformerEncoderLayer,)``)
or a function of the built model returning its block modules.
Every failure becomes a ModelError naming the arch value and what to fix,
because the author of the file is the one reading the message.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import weakref
from pathlib import Path
from types import ModuleType

from torch import nn

from engine.config import file_problem

from .errors import ModelError

PREFIX = "custom:"
_counter = itertools.count()
# model -> the FSDP_BLOCKS its file declared (the model object itself is left as built)
_declared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def build_custom(arch: str, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Load the file named after ``custom:`` (relative to the current directory) and build."""
    missing = file_problem("model.arch", arch)  # the message the form shows before a run
    if missing:
        raise ModelError(missing)
    path = Path(arch[len(PREFIX):]).expanduser().resolve()
    where = f"model.arch={arch!r}"
    module = _load(path, where)
    build = getattr(module, "build_model", None)
    if not callable(build):
        raise ModelError(f"{where}: {path} defines no build_model function: add "
                         f"'def build_model(input_shape, num_outputs)' returning a torch.nn.Module")
    try:
        model = build(tuple(input_shape), num_outputs)
    except Exception as exc:
        raise ModelError(f"{where}: build_model({tuple(input_shape)}, {num_outputs}) in {path} "
                         f"raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"{where}: build_model in {path} returned {type(model).__name__}, not "
                         f"a torch.nn.Module: return the model instance")
    blocks = getattr(module, "FSDP_BLOCKS", None)
    if blocks is not None:
        _declared[model] = (blocks, f"FSDP_BLOCKS in {path}")
    return model


def declared_blocks(model: nn.Module):
    """``(FSDP_BLOCKS, where it was declared)`` of a custom model's file, or None."""
    return _declared.get(model)


def _load(path: Path, where: str) -> ModuleType:
    """Import the file under a fresh module name, so loading two files never mixes them up."""
    name = f"torchwork_custom_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"{where}: cannot load {path} as Python: give a .py file")
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs, as a normal import is: dataclasses and pickling look it up.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to hide
            raise
        raise ModelError(f"{where}: loading {path} failed with {type(exc).__name__}: {exc}: "
                         f"fix the file") from exc
    return module

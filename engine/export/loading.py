"""Rebuild a trained model: from a workspace run, or from a safetensors export alone.

A run is rebuilt the way it was trained: its stored RunConfig builds the
architecture, the run's checkpoint gives the weights, and load_dataset gives
the same seeded split and preprocessing, so the held-out batch is rows the
model never trained on, scaled exactly as in training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.config import ConfigError, RunConfig
from engine.data import DataBundle, load_dataset, settle_task
from engine.models import ModelError, build_model
from engine.models.custom import PREFIX as CUSTOM
from engine.models.fit import META_KEY, fit_to_state, fold_masks
from engine.training import CheckpointError
from engine.training.checkpoint import WEIGHTS, load_checkpoint
from engine.training.setup import num_outputs
from engine.workspace import RunRecord, Workspace, WorkspaceError

from .report import ExportInputError

META_FORMAT = "torchwork-export"
EXAMPLE_ROWS = 64


@dataclass
class LoadedRun:
    """A run's trained model with what an export needs around it."""

    run: RunRecord
    config: RunConfig
    model: nn.Module  # on the CPU, eval mode, the weights of the run's checkpoint
    bundle: DataBundle  # the run's data: same seeded split and preprocessing as in training
    example: torch.Tensor  # up to EXAMPLE_ROWS rows of the validation split, preprocessed
    meta: dict  # JSON-ready: what rebuilds and feeds the model (see model_meta)
    step: int  # the optimizer step the checkpoint was written at


def load_run_model(workspace: Workspace | str | Path | None, run_ref: int | str) -> LoadedRun:
    """The trained model of a run (id or folder name, as `torchwork runs` shows).

    The weights are the checkpoint's model state. When early stopping ended a
    completed run, that state already holds the best epoch's weights: they are
    restored before the final checkpoint is written. Raises ExportInputError
    for an unknown run, a run without a checkpoint, or one that no longer builds.
    """
    run = _find_run(workspace, run_ref)
    checkpoint = _checkpoint_of(run)
    try:
        bundle = load_dataset(run.config)
    except ConfigError as exc:
        raise ExportInputError(f"cannot rebuild run {run.id} ({run.name}): {exc}") from None
    cfg = settle_task(run.config, bundle)
    model, step = rebuild_trained(run, cfg, bundle.input_shape, bundle.num_classes, checkpoint)
    outputs = num_outputs(cfg, bundle.num_classes)
    meta = model_meta(cfg, bundle, outputs, run=run, step=step)
    return LoadedRun(run=run, config=cfg, model=model, bundle=bundle,
                     example=bundle.x_val[:EXAMPLE_ROWS].clone(), meta=meta, step=step)


def find_run(workspace: Workspace | str | Path | None, run_ref: int | str) -> RunRecord:
    """The run ``run_ref`` (id or folder name) of ``workspace``; ExportInputError when none."""
    return _find_run(workspace, run_ref)


def _checkpoint_of(run: RunRecord) -> Path:
    checkpoint = run_checkpoint(run)
    if checkpoint is None:
        raise ExportInputError(f"run {run.id} ({run.name}) has no checkpoint yet (status "
                               f"{run.status}): train it first, or `torchwork resume {run.id}` "
                               f"if it was interrupted")
    return checkpoint


def rebuild_trained(run: RunRecord, cfg: RunConfig, input_shape, num_classes: int | None,
                    checkpoint: Path | None = None) -> tuple[nn.Module, int]:
    """(model in eval mode on the CPU with the weights of the run's checkpoint, its step),
    for ``cfg`` with its task settled and the data's input shape and class count."""
    label = f"run {run.id} ({run.name})"
    checkpoint = checkpoint or _checkpoint_of(run)
    try:
        outputs = num_outputs(cfg, num_classes)
        model = build_model(cfg, tuple(input_shape), outputs)
        state = load_checkpoint(checkpoint, map_location="cpu", need=WEIGHTS)
    except (ConfigError, ModelError, CheckpointError) as exc:
        raise ExportInputError(f"cannot rebuild {label}: {exc}") from None
    try:
        fit_to_state(model, state["model"])  # pruned layers take the checkpoint's sizes
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, ModelError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ExportInputError(f"checkpoint {checkpoint} of {label} does not fit the model its "
                               f"configuration builds ({first}): was the model file changed "
                               f"since the run?") from None
    fold_masks(model).eval()  # a run that kept pruned weights at zero: the zeros stay
    return model, state["progress"]["step"]


def run_checkpoint(run: RunRecord) -> Path | None:
    """The run's checkpoint file, or None: the recorded one (the workspace resolves it
    into its own folder, wherever the workspace was moved or copied), else the run
    folder's last.pt."""
    for path in (run.checkpoint, run.dir / "checkpoints" / "last.pt"):
        if path and Path(path).is_file():
            return Path(path)
    return None


def _find_run(workspace, run_ref) -> RunRecord:
    try:
        if isinstance(workspace, Workspace):
            return workspace.get_run(run_ref)
        with Workspace(workspace) as ws:
            return ws.get_run(run_ref)
    except (WorkspaceError, OSError) as exc:
        raise ExportInputError(str(exc)) from None


def model_meta(cfg: RunConfig, bundle: DataBundle, outputs: int, *, run: RunRecord | None = None,
               step: int | None = None) -> dict:
    """What travels with an export: the config that builds the model, the input it takes
    (shape, feature scaling, class names) and where it came from."""
    from engine import __version__

    meta = {"format": META_FORMAT, "version": 1, "torchwork": __version__,
            "config": cfg.to_toml(), "arch": cfg.model.arch,
            "input_shape": list(bundle.input_shape), "num_outputs": outputs, "task": bundle.task,
            "preprocessing": bundle.preprocessing}
    if run is not None:
        meta["run"] = {"id": run.id, "name": run.name, "step": step}
    return meta


class CustomCodeRefused(ExportInputError):
    """A file's metadata names a custom model file, and the caller did not name it as trusted."""

    def __init__(self, source: str | Path, named: Path):
        self.named = named
        super().__init__(
            f"{source} names the custom model file {named} in its metadata: building it would "
            f"run that file's Python code, and Torchwork never runs code that a file names; if "
            f"you trust that model file, name it yourself: rebuild_from_safetensors(path, "
            f"model_file='{named}')")


def named_model_file(meta: dict) -> Path | None:
    """The custom model file ``meta`` names (its config's model.arch or its "arch"), resolved
    the way build_model would resolve it; None for a built-in architecture."""
    archs = [meta.get("arch")]
    try:
        archs.insert(0, RunConfig.from_toml(meta["config"], validate=False).model.arch)
    except (KeyError, TypeError, ConfigError):
        pass  # build_from_meta reports a config it cannot read
    for arch in archs:
        if isinstance(arch, str) and arch.startswith(CUSTOM):
            return Path(arch[len(CUSTOM):]).expanduser().resolve()
    return None


def build_from_meta(meta: dict, *, model_file: str | Path | None = None,
                    source: str | Path = "the export") -> nn.Module:
    """A freshly initialised model of the architecture ``meta`` describes (no weights yet).

    A ``custom:`` architecture is Python code: it is built from ``model_file``,
    the file the caller trusts, never from the path the metadata names, which
    is refused (CustomCodeRefused) when no ``model_file`` is given. ``source``
    names the metadata's file in messages.
    """
    named = named_model_file(meta)
    if named is not None and model_file is None:
        raise CustomCodeRefused(source, named)
    try:
        cfg = RunConfig.from_toml(meta["config"], validate=False)
        if named is not None:
            cfg.model.arch = CUSTOM + str(Path(model_file).expanduser().resolve())
        return build_model(cfg, tuple(meta["input_shape"]), int(meta["num_outputs"]))
    except KeyError as exc:
        raise ExportInputError(f"export metadata lacks {exc}: it cannot be rebuilt from its "
                               f"config") from None
    except (ConfigError, ModelError) as exc:
        raise ExportInputError(f"cannot rebuild the model from its config: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ExportInputError(f"export metadata is damaged ({exc}): it cannot be rebuilt from "
                               f"its config") from None


def read_safetensors_meta(path: str | Path) -> dict:
    """The Torchwork metadata in a safetensors file's header ({} when there is none)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ExportInputError(f"cannot read {path} as safetensors ({exc}): the file is damaged "
                               f"or not a safetensors file") from None
    text = header.get(META_KEY)
    if text is None:
        return {}
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportInputError(f"{path} has damaged Torchwork metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise ExportInputError(f"{path} has damaged Torchwork metadata (a JSON "
                               f"{type(meta).__name__}, not an object)")
    return meta


def rebuild_from_safetensors(path: str | Path, *, model_file: str | Path | None = None
                             ) -> tuple[nn.Module, dict]:
    """The model a Torchwork safetensors export holds, in eval mode, and its metadata.

    Needs only the file: the header carries the config and input description;
    layers whose channels were pruned take the file's sizes. A ``custom:``
    architecture also needs its model file, which runs as Python: the caller
    names it as ``model_file`` (the header's path alone is refused, so opening
    a file never runs code it names). Exports whose weights do not fit what
    their config builds say so in ``meta["rebuild"]`` and are refused here:
    load them into the same module.
    """
    from safetensors.torch import load_file

    meta = read_safetensors_meta(path)
    if meta.get("rebuild") != "config":
        raise ExportInputError(f"{path} cannot be rebuilt from a config: "
                               + meta.get("rebuild_note", "it carries no Torchwork config")
                               + "; load its weights into the module it was exported from "
                                 "(safetensors.torch.load_model)")
    model = build_from_meta(meta, model_file=model_file, source=path)
    try:
        state = load_file(str(path))
        fit_to_state(model, state)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, ModelError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ExportInputError(f"the weights in {path} do not fit the model its config "
                               f"builds ({first})") from None
    return model.eval(), meta

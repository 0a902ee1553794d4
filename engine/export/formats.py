"""Write a model as safetensors, a torch.export program (.pt2) or ONNX, verified and atomic.

Every export is written into a hidden staging folder beside the target, with
the target's own file name (an ONNX file names its external-data file, so
the name must be final when it is written), verified there, and only then
moved into place. A failed write or a failed verification removes the staging
folder, so no half-written or unverified file is ever left at the target.

TorchScript is not offered: it is deprecated in PyTorch 2.13, and .pt2
(torch.export) is its successor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.files import follow_umask
from engine.models import ModelError
from engine.models.fit import fit_to_state

from .loading import META_KEY, build_from_meta, named_model_file
from .report import ExportError, ExportInputError, ExportReport
from .verification import verify

FORMATS = ("safetensors", "pt2", "onnx")
SUFFIXES = {"safetensors": ".safetensors", "pt2": ".pt2", "onnx": ".onnx"}
# Weights above this go to an external-data file beside the .onnx (protobuf caps a file
# at 2 GB); smaller models stay one self-contained file.
ONNX_EXTERNAL_DATA_BYTES = 1536 * 1024 * 1024


def export_model(model: nn.Module, example: torch.Tensor, fmt: str, out_path: str | Path, *,
                 meta: dict | None = None, overwrite: bool = False,
                 tolerance: float | None = None) -> ExportReport:
    """Write ``model`` as ``fmt`` to ``out_path``, verify it on ``example``, return the report.

    ``example`` is a held-out input batch (batch first); the batch dimension is
    exported dynamic. ``meta`` (JSON-ready, e.g. LoadedRun.meta) is stored in
    the file; with a Torchwork config in it, a safetensors file can be rebuilt
    by rebuild_from_safetensors. Works for any module whose forward takes one
    tensor and returns one. Raises ExportInputError for a bad format or an
    existing file without ``overwrite``, ExportError when writing fails and
    VerificationError when the written file does not reproduce the model.
    """
    if fmt not in FORMATS:
        raise ExportInputError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(out_path).expanduser().absolute()
    if out.is_dir():
        raise ExportInputError(f"{out} is a folder: give a file name, e.g. "
                               f"{out / ('model' + SUFFIXES[fmt])}")
    if out.exists() and not overwrite:
        raise ExportInputError(f"{out} already exists: choose another name or allow "
                               f"overwriting (--force)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial",
                                        dir=out.parent))
    except OSError as exc:
        raise ExportInputError(f"cannot write into {out.parent} ({exc.strerror or exc}): pick a "
                               f"writable folder") from None
    was_training = model.training
    model.eval()
    try:
        staged = staging / out.name
        meta, notes = _with_rebuild_info(model, fmt, dict(meta or {}))
        try:
            _WRITERS[fmt](model, example, staged, meta)
        except OSError as exc:
            raise ExportError(f"cannot write {out.name} ({exc.strerror or exc}): check free disk "
                              f"space and permissions") from None
        except ExportError:
            raise
        except Exception as exc:  # the exporters raise many kinds; each means "not exportable"
            raise ExportError(f"the model cannot be exported as {fmt} ({type(exc).__name__}: "
                              f"{_first_line(exc)}); "
                              + ("try safetensors, which needs no tracing" if fmt != "safetensors"
                                 else "its weights are not plain tensors")) from None
        checked = verify(staged, fmt, model, example, tolerance=tolerance,
                         model_file=named_model_file(meta))
        written = _move_into_place(staging, out)
    finally:
        model.train(was_training)
        shutil.rmtree(staging, ignore_errors=True)
    extras = [p for p in written if p != out]
    return ExportReport(path=out, format=fmt, size_bytes=sum(p.stat().st_size for p in written),
                        extra_files=extras, max_abs_diff=checked.max_abs_diff,
                        batch=checked.batch, tolerance=checked.tolerance,
                        notes=[*notes, *checked.notes])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _move_into_place(staging: Path, out: Path) -> list[Path]:
    """Move the verified files next to ``out``; the main file last, so it appears only
    when everything it refers to is already there. On failure none is left behind."""
    files = sorted((p for p in staging.iterdir() if p.name != out.name), key=lambda p: p.name)
    files.append(staging / out.name)
    moved: list[Path] = []
    try:
        for f in files:
            follow_umask(f)  # safetensors writes its file 0600 through a temporary of its own
            target = out.parent / f.name
            os.replace(f, target)
            moved.append(target)
    except OSError as exc:
        for target in moved:
            target.unlink(missing_ok=True)
        raise ExportError(f"cannot move the verified export into {out.parent} "
                          f"({exc.strerror or exc})") from None
    return moved


def _with_rebuild_info(model: nn.Module, fmt: str, meta: dict) -> tuple[dict, list[str]]:
    """Record whether the model can be rebuilt from the config in ``meta``.

    A pruned model's layers are narrower than its config builds; they are
    resized to the weights on rebuild (engine.models.fit). A model whose
    weights do not fit its config even so (other layers) says so in the
    metadata instead of pretending.
    """
    if fmt != "safetensors":
        return meta, []
    if "config" not in meta:
        meta.update(rebuild=None, rebuild_note="it was exported without a Torchwork config")
    else:
        try:  # the caller's own metadata: its custom model file is the one it trained with
            fresh = build_from_meta(meta, model_file=named_model_file(meta))
        except ExportInputError as exc:
            meta.update(rebuild=None, rebuild_note=str(exc))
        else:
            have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            try:
                fit_to_state(fresh, model.state_dict())
            except ModelError:
                pass  # the shapes below differ, which says so
            want = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
            if want == have:
                meta.update(rebuild="config", rebuild_note="")
            else:
                meta.update(rebuild=None, rebuild_note="its layers differ from what its config "
                                                       "builds (pruned or modified)")
    notes = []
    if str(meta.get("arch", "")).startswith("custom:") and meta["rebuild"] == "config":
        file = meta["arch"][len("custom:"):]
        notes.append(f"Rebuilding it needs the model file {file}, named by you: "
                     f"rebuild_from_safetensors(path, model_file={file!r}).")
    return meta, notes


def _trace_input(example: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Tracing input of at least 2 rows: torch.export specializes a dimension of size 1."""
    x = example if len(example) >= 2 else example.expand(2, *example.shape[1:]).clone()
    device = next((p.device for p in model.parameters()), x.device)
    return x.to(device)


def _dynamic_batch() -> tuple[dict, ...]:
    return ({0: torch.export.Dim("batch", min=1)},)


def _write_safetensors(model: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    from safetensors.torch import save_model

    save_model(model, str(path), metadata={META_KEY: json.dumps(meta)}, force_contiguous=True)


def _write_pt2(model: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    program = torch.export.export(model, (_trace_input(example, model),),
                                  dynamic_shapes=_dynamic_batch())
    torch.export.save(program, str(path), extra_files={f"{META_KEY}.json": json.dumps(meta)})


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    with _quiet_exporter():
        program = torch.onnx.export(model, (_trace_input(example, model),), dynamo=True,
                                    dynamic_shapes=_dynamic_batch(), input_names=["input"],
                                    output_names=["output"], verbose=False)
    program.model.metadata_props[META_KEY] = json.dumps(meta)
    weights = sum(t.numel() * t.element_size()
                  for t in (*model.parameters(), *model.buffers()))
    program.save(str(path), external_data=weights > ONNX_EXTERNAL_DATA_BYTES)


@contextlib.contextmanager
def _quiet_exporter():
    """The ONNX exporter logs notes (e.g. torchvision ops it skips) that are not the user's
    concern; real failures still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


_WRITERS = {"safetensors": _write_safetensors, "pt2": _write_pt2, "onnx": _write_onnx}


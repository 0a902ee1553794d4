"""Verification of a written export: reload it as a user would, run held-out rows, compare.

Each format is reloaded by the runtime that will serve it: safetensors into a
model rebuilt from the file's own metadata (so the file alone is proven to
suffice), .pt2 with torch.export.load, ONNX with an onnxruntime CPU session.
ONNX and .pt2 are also run at batch 1, which proves the batch dimension is
really dynamic and not frozen at the held-out batch's size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .loading import read_safetensors_meta, rebuild_from_safetensors
from .report import ExportError, ExportInputError, VerificationError

# Largest accepted |reloaded - original|, relative to max(1, max |original|): fp32 math
# reordered by another runtime (fused kernels, other BLAS) stays well inside 1e-4.
TOLERANCE = {"safetensors": 1e-6, "pt2": 1e-4, "onnx": 1e-4}


@dataclass(frozen=True)
class Verification:
    max_abs_diff: float
    tolerance: float  # the absolute bound applied (TOLERANCE scaled by the outputs' size)
    batch: int  # rows of the held-out batch
    notes: tuple[str, ...] = ()


def verify(path: str | Path, fmt: str, model: nn.Module, example: torch.Tensor, *,
           tolerance: float | None = None, model_file: str | Path | None = None
           ) -> Verification:
    """Reload ``path`` (written in format ``fmt``) and compare its outputs with ``model``'s.

    ``tolerance`` (relative, as TOLERANCE) may be loosened by callers that
    verify a quantized file against the float model. ``model_file`` is the custom
    model file a safetensors file of a ``custom:`` architecture is rebuilt with
    (see rebuild_from_safetensors); without it such a file fails verification,
    because its header alone never runs code. Raises VerificationError
    when the file cannot be reloaded, its outputs have another shape, or they
    differ by more than the tolerance.
    """
    path = Path(path)
    if fmt not in TOLERANCE:
        raise ExportInputError(f"unknown export format {fmt!r}: use one of "
                               f"{', '.join(TOLERANCE)}")
    if example.ndim < 1 or len(example) < 1:
        raise ExportInputError("verification needs a held-out batch of at least one row")
    batches = [example] if fmt == "safetensors" or len(example) == 1 else [example, example[:1]]
    expected = [_run_module(model, x) for x in batches]
    run, notes = _LOADERS[fmt](path, model, model_file)
    worst, scale = 0.0, 1.0
    for x, want in zip(batches, expected):
        try:
            got = run(x)
        except Exception as exc:
            raise VerificationError(f"{path.name} was reloaded but failed on a held-out batch of "
                                    f"{len(x)} ({type(exc).__name__}: {_first_line(exc)})"
                                    ) from None
        if tuple(got.shape) != tuple(want.shape):
            raise VerificationError(f"{path.name} gives outputs of shape {tuple(got.shape)} for a "
                                    f"held-out batch of {len(x)}, the model {tuple(want.shape)}: "
                                    f"the file holds another model")
        diff = (got.double() - want.double()).abs().max().item() if want.numel() else 0.0
        worst = diff if math.isnan(diff) else max(worst, diff)
        scale = max(scale, want.abs().max().item() if want.numel() else 0.0)
    bound = (TOLERANCE[fmt] if tolerance is None else tolerance) * scale
    if not worst <= bound:  # also catches NaN
        raise VerificationError(f"{path.name} does not reproduce the model: max abs difference "
                                f"{worst:.3g} on a held-out batch of {len(example)} exceeds the "
                                f"tolerance {bound:.3g}; the file holds other weights or the "
                                f"{fmt} conversion changed the computation")
    return Verification(worst, bound, len(example), tuple(notes))


def _run_module(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    device = next((p.device for p in module.parameters()), x.device)
    with torch.no_grad():
        out = module(x.to(device))
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"the model returned {type(out).__name__}; export needs a forward "
                          f"that returns one tensor")
    return out.detach().float().cpu()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


Runner = Callable[[torch.Tensor], torch.Tensor]


def _load_safetensors(path: Path, model: nn.Module, model_file=None) -> tuple[Runner, list[str]]:
    from safetensors.torch import load_model

    try:
        meta = read_safetensors_meta(path)
        if meta.get("rebuild") == "config":
            reloaded, _ = rebuild_from_safetensors(path, model_file=model_file)
            notes = []
        else:
            reloaded = copy.deepcopy(model).cpu()
            load_model(reloaded, str(path), strict=True)
            notes = ["Weights only: " + meta.get("rebuild_note", "no Torchwork config inside")
                     + "; load them into the same module (safetensors.torch.load_model)."]
    except ExportInputError as exc:
        raise VerificationError(str(exc)) from None
    except (RuntimeError, KeyError, OSError) as exc:
        raise VerificationError(f"the weights in {path.name} do not fit the model "
                                f"({_first_line(exc)})") from None
    reloaded.eval()
    return (lambda x: _run_module(reloaded, x)), notes


def _load_pt2(path: Path, model: nn.Module, model_file=None) -> tuple[Runner, list[str]]:
    try:
        module = torch.export.load(str(path)).module()
    except Exception as exc:  # torch raises many kinds for a damaged archive
        raise VerificationError(f"torch.export.load cannot read {path.name} ({type(exc).__name__}:"
                                f" {_first_line(exc)}): the file is damaged or not a .pt2 "
                                f"program") from None
    return (lambda x: _run_module(module, x)), []


def _load_onnx(path: Path, model: nn.Module, model_file=None) -> tuple[Runner, list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would land in the user's terminal
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise VerificationError(f"onnxruntime cannot load {path.name} ({type(exc).__name__}: "
                                f"{_first_line(exc)}): the file or its external data is damaged "
                                f"or missing") from None
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {name: x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out).float()

    return run, []


_LOADERS = {"safetensors": _load_safetensors, "pt2": _load_pt2, "onnx": _load_onnx}

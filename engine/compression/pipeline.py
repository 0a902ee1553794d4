"""One compression session: prune, fine-tune or distil, quantize, and measure every step.

The command line, the window's compression panel and bench/compression.py all
run this, so the three show the same table. Each pruning ratio (one, or
several for a sparsity sweep) gives a chain of candidates: the pruned model
(fine-tuned when asked), then its int8 forms. ONNX files go to ``out_dir``
(by default the run's own folder), exported and verified through engine.export.

Fine-tuning (and distillation) is an ordinary run: the pruned model is saved as
a safetensors file beside the ONNX files, and a config that starts from it
(``model.init``) goes to the caller's ``train``, which trains it as a run of
the workspace (`torchwork runs` lists it, it can be resumed) and returns the
trained model. The command line trains in its own process, the window in its
run process with live plots.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from engine.config import ConfigError, RunConfig
from engine.export import export_model
from engine.files import atomic_path
from engine.models.fit import KEEP_ZEROS, fold_masks

from .errors import CompressionError, FinetuneStopped
from .measure import Candidate, count_macs, measure_onnx, measure_torch
from .prune import METHODS, count_params, count_zeros, prune_model
from .quantize import TARGETS, quantize_onnx, quantize_torch

Progress = Callable[[str], None]
# Trains a fine-tuning config (named like the candidate) as a workspace run; returns its model.
Train = Callable[[RunConfig, str], nn.Module]


@dataclass(frozen=True)
class CompressOptions:
    prune: str | None = "structured"  # one of prune.METHODS, or None to keep every weight
    ratios: tuple[float, ...] = (0.5,)  # several: a sparsity sweep
    importance: str = "magnitude"
    exclude: tuple[str, ...] = ()
    quantize: str = "onnx"  # one of quantize.TARGETS
    finetune_epochs: int = 0
    distill_alpha: float = 0.7
    distill_temperature: float = 4.0
    repeats: int = 30  # timed repeats per latency figure

    def check(self) -> None:
        if self.prune is not None and self.prune not in METHODS:
            raise CompressionError(f"--prune must be one of {', '.join(METHODS)} or none "
                                   f"(got {self.prune!r})")
        if self.quantize not in TARGETS:
            raise CompressionError(f"--quantize must be one of {', '.join(TARGETS)} "
                                   f"(got {self.quantize!r})")
        if self.finetune_epochs < 0:
            raise CompressionError(f"--finetune-epochs must be >= 0 (got "
                                   f"{self.finetune_epochs})")
        if not self.ratios:
            raise CompressionError("give at least one pruning ratio")
        if len(set(self.ratios)) != len(self.ratios):
            raise CompressionError(f"each sweep ratio once, please (got "
                                   f"{', '.join(f'{r:g}' for r in self.ratios)})")
        if self.prune is None and len(self.ratios) > 1:
            raise CompressionError("a sparsity sweep needs a pruning method (--prune)")


@dataclass
class CompressionResult:
    candidates: list[Candidate] = field(default_factory=list)
    # candidate name -> the PyTorch module it was measured from (for ONNX rows: the
    # float module the file was exported from); engine tensors, never sent to a view
    models: dict[str, nn.Module] = field(default_factory=dict)
    finals: list[str] = field(default_factory=list)  # the last candidate of each ratio's chain
    example: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)  # the run's export metadata (LoadedRun.meta)

    def add(self, candidate: Candidate, model: nn.Module) -> Candidate:
        self.candidates.append(candidate)
        self.models[candidate.name] = model
        return candidate

    def get(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        raise CompressionError(f"no candidate named {name!r}")


def compress(loaded, options: CompressOptions, out_dir: str | Path, *,
             teacher: str | None = None, progress: Progress | None = None,
             train: Train | None = None) -> CompressionResult:
    """Measure the run's model, then each compressed chain; ``loaded`` is a LoadedRun.

    With finetune_epochs > 0 each pruned model trains that many epochs through
    ``train`` (engine.run_builder.workspace_train); ``teacher`` (a run id or a .safetensors
    export, as distill.teacher takes) makes that training distil from it.
    """
    options.check()
    if teacher and options.finetune_epochs == 0:
        raise CompressionError("distillation trains the student: give --finetune-epochs N")
    if options.finetune_epochs and train is None:
        raise CompressionError("fine-tuning needs a way to train runs "
                               "(engine.run_builder.workspace_train)")
    say = progress or (lambda text: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle, example = loaded.bundle, loaded.example
    data = {"x_val": bundle.x_val, "y_val": bundle.y_val, "task": bundle.task,
            "repeats": options.repeats}
    result = CompressionResult(example=example, meta=dict(loaded.meta))
    original = loaded.model.eval()
    macs = count_macs(original, example)
    say("measuring the original model")
    result.add(measure_torch("original", original, macs=macs, **data), original)
    if options.quantize == "onnx":
        result.add(_onnx_row("original (onnx)", original, example, out_dir / "original.onnx",
                             macs, 0.0, data), original)
    for ratio in options.ratios:
        model, name, keep_zeros = original, "original", ()
        if options.prune is not None:
            say(f"pruning {ratio:.0%} ({options.prune})")
            pruned = prune_model(original, options.prune, ratio, example=example,
                                 importance=options.importance, exclude=options.exclude,
                                 calibration=(bundle.x_train[:256], bundle.y_train[:256]),
                                 loss_fn=_task_loss(loaded.config))
            model, name = pruned.model, f"{options.prune} {ratio:.0%}"
            if options.prune != "structured":  # fine-tuning must not regrow the zeros
                keep_zeros = tuple(f"{layer}.weight" for layer in pruned.layers)
        if options.finetune_epochs:
            init = export_model(model, example, "safetensors",
                                out_dir / f"{_slug(name)}.init.safetensors", overwrite=True,
                                meta={**loaded.meta, KEEP_ZEROS: list(keep_zeros)}).path
            config = finetune_config(loaded.config, init, options.finetune_epochs,
                                     teacher=teacher, alpha=options.distill_alpha,
                                     temperature=options.distill_temperature)
            name += f" + {'kd' if teacher else 'ft'} {options.finetune_epochs} ep"
            say(f"{'distilling' if teacher else 'fine-tuning'} {name} as a run")
            model = fold_masks(train(config, f"{loaded.run.name} {name}")).eval()
        r = ratio if options.prune else 0.0
        last = name
        if model is not original:
            say(f"measuring {name}")
            model_macs = count_macs(model, example)
            result.add(measure_torch(name, model, macs=model_macs, ratio=r, **data), model)
        else:
            model_macs = macs
        if options.quantize == "torch":
            say(f"quantizing {name} (torchao int8)")
            last = f"{name} int8"
            quantized = quantize_torch(model)
            result.add(measure_torch(last, quantized, macs=model_macs, ratio=r,
                                     counts_from=model, **data), quantized)
        elif options.quantize == "onnx":
            stem = _slug(name)
            if model is not original:
                result.add(_onnx_row(f"{name} (onnx)", model, example, out_dir / f"{stem}.onnx",
                                     model_macs, r, data), model)
            say(f"quantizing {name} (ONNX Runtime int8)")
            fp32 = result.candidates[-1].path
            rows = []
            for ops, label in (("all", "int8 (onnx)"), ("linear", "int8 linear (onnx)")):
                path = quantize_onnx(fp32, out_dir / f"{stem}.int8-{ops}.onnx", ops)
                rows.append(result.add(measure_onnx(
                    f"{name} {label}", path, params=count_params(model),
                    nonzero=count_params(model) - count_zeros(model), macs=model_macs, ratio=r,
                    **data), model))
            last = min(rows, key=lambda c: c.latency_b64_ms).name  # the faster here
        result.finals.append(last)
    return result


def finetune_config(config: RunConfig, init: str | Path, epochs: int, *,
                    teacher: str | None = None, alpha: float = 0.7,
                    temperature: float = 4.0) -> RunConfig:
    """The run's config, set to train the model in ``init`` ``epochs`` more epochs.

    The run's own optimizer and schedule are used afresh; early stopping,
    max_steps and torch.compile are off; distillation only with ``teacher``.
    """
    overrides = [f"train.epochs={epochs}", "train.max_steps=0",
                 "regularization.early_stopping_patience=0", "precision.compile=false",
                 f"model.init={init}", f"distill.teacher={teacher or ''}"]
    if teacher:
        overrides += [f"distill.alpha={alpha}", f"distill.temperature={temperature}"]
    try:
        return config.with_overrides(overrides)
    except ConfigError as exc:
        raise CompressionError(f"cannot fine-tune this run: {exc}") from None


def check_finished(run_id: int, status: str, error: str | None = None,
                   steps: int | None = None) -> None:
    """Raise CompressionError unless fine-tuning run ``run_id`` completed (FinetuneStopped
    when it was stopped after ``steps`` steps)."""
    if status == "failed":
        raise CompressionError(f"fine-tuning run {run_id} failed: {error}")
    if status != "completed":
        where = f" at step {steps}" if steps is not None else ""
        why = f" ({error})" if error else ""
        raise FinetuneStopped(f"fine-tuning run {run_id} was {status}{where} before its last "
                              f"epoch{why}: resume it (`torchwork resume {run_id}`), then "
                              f"compress run {run_id} with --prune none to quantize and "
                              f"measure it")


def save_candidate(result: CompressionResult, name: str, fmt: str, out_path: str | Path, *,
                   overwrite: bool = False) -> Path:
    """Export one candidate: ONNX candidates copy the file the table measured (validation
    metric included); PyTorch ones go through engine.export, which verifies what it writes."""
    candidate = result.get(name)
    out_path = Path(out_path)
    if candidate.path is not None and fmt != "onnx":
        raise CompressionError(f"{name} is an ONNX file: export it as onnx, or pick the "
                               f"PyTorch candidate it was made from for {fmt}")
    if candidate.path is not None:
        if out_path.exists() and not overwrite:
            raise CompressionError(f"{out_path} exists: choose another name or allow overwrite")
        _atomic_copy(Path(candidate.path), out_path)
        return out_path
    report = export_model(result.models[name], result.example, fmt, out_path,
                          meta=result.meta, overwrite=overwrite)
    return report.path


def _onnx_row(name, model, example, path, macs, ratio, data) -> Candidate:
    report = export_model(model, example, "onnx", path, overwrite=True)
    return measure_onnx(name, report.path, params=count_params(model),
                        nonzero=count_params(model) - count_zeros(model), macs=macs,
                        ratio=ratio, extra_files=tuple(map(str, report.extra_files)), **data)


def _task_loss(config: RunConfig) -> nn.Module:
    from engine.training.setup import build_loss

    return build_loss(config)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _atomic_copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


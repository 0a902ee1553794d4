"""Find the teacher ``distill.teacher`` names and check it can teach the run being built.

The teacher is a trained run of the workspace (id or name, as `torchwork runs`
shows) or a Torchwork safetensors export. Its inputs must be the student's:
the same dataset and feature scaling, and the same classes out.

An export's header may name a custom model file (``custom:file.py``), which
is Python code. Such a teacher is built only when that file is the one the
user configured for the student (``model.arch``): a file handed over as a
teacher never runs code of its own choosing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.config import ConfigError, RunConfig, file_problem
from engine.export import ExportInputError, load_run_model, rebuild_from_safetensors
from engine.export.loading import CustomCodeRefused, named_model_file, read_safetensors_meta
from engine.models.custom import PREFIX as CUSTOM
from engine.training.setup import num_outputs

from .distill import Distillation

# What decides the features a model sees; the split seed and fraction only move the scaler a bit.
INPUT_KEYS = ("data.dataset", "data.standardize")
GENERATED_KEYS = ("data.n_features", "data.n_classes")  # only generated data has these


def attach_distillation(trainer, workspace=None) -> Distillation:
    """Make ``trainer`` (a Trainer built for a config with distill.teacher) a student: its
    loss provider becomes the teacher's; ``workspace`` resolves a teacher's run id."""
    cfg = trainer.config
    hook = distillation_for(cfg, workspace, tuple(trainer.data.input_shape),
                            num_outputs(cfg, trainer.data.num_classes))
    trainer.loss_hook = hook
    return hook


def distillation_for(config: RunConfig, workspace, input_shape: tuple[int, ...],
                     outputs: int) -> Distillation:
    """The Trainer's loss hook for ``config.distill``; ``workspace`` resolves run ids.

    One forward pass of a zero batch checks that the teacher takes the run's
    input and predicts its classes, so a mismatch fails before training starts.
    """
    d = config.distill
    teacher, teacher_cfg = load_teacher(d.teacher, workspace, student_arch=config.model.arch)
    if teacher_cfg is not None:
        keys = INPUT_KEYS + (GENERATED_KEYS if config.data.dataset == "synthetic" else ())
        differ = [k for k in keys if teacher_cfg.get(k) != config.get(k)]
        if differ:
            pairs = ", ".join(f"{k}={teacher_cfg.get(k)!r} (this run: {config.get(k)!r})"
                              for k in differ)
            raise ConfigError(f"distill.teacher={d.teacher!r} was trained on other inputs: "
                              f"{pairs}; the student must see the same data")
    try:
        with torch.no_grad():
            out = teacher(torch.zeros(2, *input_shape))
    except Exception as exc:
        raise ConfigError(f"distill.teacher={d.teacher!r} cannot take this run's input of shape "
                          f"{tuple(input_shape)} ({type(exc).__name__}: {exc})") from None
    if tuple(out.shape) != (2, outputs):
        raise ConfigError(f"distill.teacher={d.teacher!r} predicts {out.shape[-1]} outputs but "
                          f"this run {outputs}: both must predict the same classes")
    return Distillation(teacher, d.alpha, d.temperature)


def load_teacher(ref: str, workspace=None, *, student_arch: str = ""
                 ) -> tuple[nn.Module, RunConfig | None]:
    """The teacher model (CPU, eval, frozen) and the config it was trained with, if known.

    ``student_arch`` is the student's model.arch: the one custom model file an
    exported teacher may be built with.
    """
    try:
        if ref.endswith(".safetensors"):
            missing = file_problem("distill.teacher", ref)  # as the form shows it
            if missing:
                raise ConfigError(missing)
            path = Path(ref).expanduser()
            model, meta = _rebuild_export(ref, path, student_arch)
            cfg = RunConfig.from_toml(meta["config"], validate=False) if "config" in meta \
                else None
        else:
            loaded = load_run_model(workspace, ref)
            model, cfg = loaded.model, loaded.config
    except ExportInputError as exc:
        raise ConfigError(f"distill.teacher={ref!r}: {exc}") from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), cfg


def _rebuild_export(ref: str, path: Path, student_arch: str) -> tuple[nn.Module, dict]:
    own = (Path(student_arch[len(CUSTOM):]).expanduser().resolve()
           if student_arch.startswith(CUSTOM) else None)
    named = named_model_file(read_safetensors_meta(path))
    try:
        return rebuild_from_safetensors(path, model_file=own if named == own else None)
    except CustomCodeRefused as exc:
        raise ConfigError(
            f"distill.teacher={ref!r}: the export names the custom model file {exc.named} in "
            f"its header, and building it would run that file's Python code; Torchwork runs a "
            f"teacher's model file only when it is the student's own: set model.arch="
            f"'custom:{exc.named}' if the student shares that architecture and you trust the "
            f"file, or give the teacher as its run id in this workspace") from None

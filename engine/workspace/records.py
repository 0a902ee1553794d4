"""Plain values the workspace hands out: a run's row and a metric's series.

They hold no connection, so they can cross threads (to the app's views) and
stay valid after the workspace is closed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from engine.config import RunConfig


@dataclass
class RunRecord:
    id: int
    name: str
    dir: Path
    status: str  # engine.workspace.schema.STATUSES
    created_at: str
    started_at: str | None
    ended_at: str | None
    config_toml: str
    num_params: int | None = None
    device: str | None = None
    steps: int = 0
    epochs_completed: int = 0
    wall_s: float | None = None
    best_val: float | None = None
    best_metric: str | None = None
    error: str | None = None
    checkpoint: str | None = None
    kind: str = "train"  # train | profile (engine.workspace.schema.RUN_KINDS)
    run_group: str | None = None  # runs trained together, e.g. the folds of a cross-validation
    study: str | None = None  # the search study a trial run belongs to
    trial: int | None = None  # its trial number in that study
    notes: str | None = None
    trashed_at: str | None = None  # in the trash since then; emptying it deletes the run
    # the energy it used (engine.monitor.energy), all its sessions; None: see energy_note
    energy_j: float | None = None
    energy_per_epoch_j: float | None = None
    energy_per_1k_samples_j: float | None = None
    energy_source: str | None = None  # nvml | nvml-power | rapl
    energy_note: str | None = None  # why it is not available

    @property
    def config(self) -> RunConfig:
        """The config as it was stored; not re-validated, so an old run still opens
        after a Torchwork update tightened a rule."""
        return RunConfig.from_toml(self.config_toml, validate=False)


@dataclass(frozen=True)
class Series:
    """One epoch metric over a run, ready to plot: ``plot(s.epoch, s.value)``."""
    epoch: np.ndarray  # int64
    step: np.ndarray  # int64, the optimizer step the epoch ended at
    value: np.ndarray  # float64, NaN where nothing was recorded


def now_iso() -> str:
    """Local time with its UTC offset: readable in a listing, unambiguous when compared."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def slug(text: str, max_len: int = 48) -> str:
    """A folder-safe form of a run name: lower case, [a-z0-9._-] only."""
    cleaned = re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-.")
    return cleaned[:max_len].rstrip("-.") or "run"


def default_run_name(config: RunConfig) -> str:
    """``dataset-arch``; a custom model, and a dataset from files (``images:FOLDER``), are
    named after their file or folder."""
    arch = config.model.arch
    if arch.startswith("custom:"):
        arch = slug(Path(arch.removeprefix("custom:")).stem)
    dataset = config.data.dataset
    kind, sep, path = dataset.partition(":")
    if sep and path:
        dataset = slug(Path(path).stem) or kind
    return f"{dataset}-{arch}"


def relative_to_workspace(root: Path, path: str | Path) -> str:
    """A path as the database stores it: relative to the workspace root when inside it,
    so a moved workspace still finds its files and a copy uses its own, not the original's."""
    try:
        return Path(os.path.abspath(path)).relative_to(root).as_posix()
    except ValueError:
        return str(path)  # outside the workspace: kept as given


def path_in_workspace(root: Path, stored: str | None, run_dir: str) -> str | None:
    """A run's stored file path (its checkpoint) as a path in the workspace at ``root``.

    Older workspaces stored it absolute, or relative to the folder the run was
    started from: a path into the run's own folder (``run_dir``, as stored),
    .../runs/NNNN-name/FILE..., is rebased onto ``root``, so a moved workspace
    resumes from its checkpoints and a copied one from its own copies.
    """
    if not stored:
        return stored
    parts, run_parts = Path(stored).parts, Path(run_dir).parts
    n = len(run_parts)
    for i in range(len(parts) - n - 1, -1, -1):
        if parts[i:i + n] == run_parts:
            return str(root.joinpath(*run_parts, *parts[i + n:]))
    path = Path(stored)
    return str(path if path.is_absolute() else root / path)

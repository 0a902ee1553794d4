"""Predict with a run's trained model on new files: a table or images in, one CSV row per input.

The run's model is rebuilt from its config and checkpoint, and the new rows go
through the preprocessing fitted on that run's training split, read from the JSON
the run stored in its folder (preprocessing.json), never fitted again:

* a table (.csv, .tsv, .parquet) is replayed through the run's stored JSON state
  (engine.export.feed.raw_inputs, the path an exported model is fed by); columns
  the run did not see are ignored with a note, a missing one is an error naming it;
* images (a folder, searched recursively, a single image file, or a .csv/.txt list
  of paths relative to the list's folder) are decoded and resized like the training
  cache, then normalized with the run's fitted per-channel mean and std; a file that
  cannot be decoded is skipped with a note.

The output CSV has, per input: an id (``row``: the table's data row, 1 for the first
row below the header; or ``path`` for an image), the target column as the file gave it
when present (a table with known answers can be compared at a glance), ``predicted``
(the class name, or the value in the target's original units), and for classification
one ``prob_<class>`` column per class. The file is written atomically: on any error
nothing is left at the output path.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from engine.config import ConfigError
from engine.data.image_bundle import pixel_affine
from engine.data.images import EXTENSIONS, decode_image
from engine.data.preprocess import ReplayError
from engine.data.tables import SUFFIXES, read_table
from engine.export import ExportInputError, load_run_model
from engine.export.feed import raw_inputs
from engine.export.loading import find_run, rebuild_trained
from engine.files import atomic_path
from engine.workspace.writer import PREPROCESSING_FILE

DEFAULT_BATCH = 256
Progress = Callable[[int, int], None]  # (inputs done, inputs in all)


class PredictError(ValueError):
    """Input that cannot be predicted on; the message names the file, the cause and the fix."""


@dataclass
class PredictReport:
    out: Path
    rows: int  # output rows written
    task: str
    run: dict  # id, name, step
    ignored_columns: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path (why)" of undecodable images

    def notes(self) -> list[str]:
        notes = []
        if self.ignored_columns:
            notes.append(f"ignored {len(self.ignored_columns)} column(s) the run did not see in "
                         f"training: {', '.join(self.ignored_columns)}")
        if self.skipped:
            shown = "; ".join(self.skipped[:5])
            more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            notes.append(f"skipped {len(self.skipped)} image(s) that cannot be decoded: "
                         f"{shown}{more}")
        return notes

    def to_dict(self) -> dict:
        return {"out": str(self.out), "rows": self.rows, "task": self.task, "run": self.run,
                "ignored_columns": self.ignored_columns, "skipped": self.skipped}


def predict_file(workspace, run_ref: int | str, data: str | Path, out: str | Path, *,
                 batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
                 ) -> PredictReport:
    """Predict with run ``run_ref`` of ``workspace`` on ``data``; write the CSV ``out``.

    Raises PredictError (bad input: unknown run, unreadable file, missing column)."""
    if batch_size < 1:
        raise PredictError(f"batch size {batch_size}: give a positive number of rows")
    data, out = Path(data).expanduser(), Path(out).expanduser()
    if not data.exists():
        raise PredictError(f"{data} not found: give a table file (.csv, .tsv, .parquet), an "
                           f"image folder or an image file list")
    try:
        model, meta = load_predictor(workspace, run_ref)
    except ExportInputError as exc:
        raise PredictError(str(exc)) from None
    pre = meta["preprocessing"]
    report = PredictReport(out=out, rows=0, task=meta["task"], run=meta["run"])
    if "image" in pre:
        ids, x = _image_inputs(pre["image"], data, report)
    else:
        ids, x = _table_inputs(meta, data, report)
    outputs = _infer(model, x, batch_size, progress)
    frame = pd.concat([ids, _decoded(meta, outputs)], axis=1)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    report.rows = len(frame)
    return report


def load_predictor(workspace, run_ref: int | str) -> tuple[torch.nn.Module, dict]:
    """(the run's trained model, {"preprocessing", "task", "run"}).

    The preprocessing is the JSON the run stored in its folder when it started
    (preprocessing.json): the training data are not read again, so a training folder
    that changed since cannot change how new inputs are scaled. A run recorded before
    that file existed is rebuilt with its data (load_run_model: same seeded split)."""
    run = find_run(workspace, run_ref)
    stored = run.dir / PREPROCESSING_FILE
    if not stored.is_file():
        loaded = load_run_model(workspace, run.id)
        return loaded.model, loaded.meta
    try:
        pre = json.loads(stored.read_text(encoding="utf-8"))
        task, shape = pre["task"], pre["input_shape"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PredictError(f"{stored} is damaged ({type(exc).__name__}: {exc}): restore it, "
                           f"or delete it to rebuild the preprocessing from the run's "
                           f"data") from None
    cfg = run.config
    if cfg.task != task:  # a table's data.task = 'auto', settled by its data
        cfg = cfg.copy()
        cfg.data.task = task
    classes = pre.get("class_names")
    model, step = rebuild_trained(run, cfg, shape, len(classes) if classes else None)
    return model, {"preprocessing": pre, "task": task,
                   "run": {"id": run.id, "name": run.name, "step": step}}


# --- inputs -------------------------------------------------------------------
def _table_inputs(meta: dict, data: Path, report: PredictReport
                  ) -> tuple[pd.DataFrame, torch.Tensor]:
    pre = meta["preprocessing"]
    if data.is_dir() or data.suffix.lower() not in SUFFIXES:
        raise PredictError(f"{data}: run {meta['run']['id']} was trained on a table, so it "
                           f"predicts on a table file ({', '.join(SUFFIXES)}), not "
                           f"{'a folder' if data.is_dir() else repr(data.suffix or data.name)}")
    try:
        frame = read_table(data)
    except ConfigError as exc:
        raise PredictError(str(exc)) from None
    target = pre.get("target")
    used = set(pre.get("columns") or pre.get("feature_names") or [])
    report.ignored_columns = [str(c) for c in frame.columns if c not in used and c != target]
    try:
        x = raw_inputs(meta, frame)
    except (ReplayError, KeyError) as exc:
        why = str(exc) if isinstance(exc, ReplayError) else f"the rows lack column {exc}"
        raise PredictError(f"{data}: {why}") from None
    ids = pd.DataFrame({"row": np.arange(1, len(frame) + 1)})
    if target is not None and target in frame.columns:
        ids[target] = frame[target].to_numpy()
    return ids, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _image_inputs(image: dict, data: Path, report: PredictReport
                  ) -> tuple[pd.DataFrame, torch.Tensor]:
    paths = _image_paths(data)
    size, channels = int(image["size"]), int(image["channels"])
    scale, offset = pixel_affine(image["mean"], image["std"])
    kept, rows = [], []
    for path in paths:
        try:
            pixels = decode_image(path, size, channels)
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors are OSError's kin
            why = "file not found" if isinstance(exc, FileNotFoundError) else \
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report.skipped.append(f"{path} ({why})")
            continue
        kept.append(str(path))
        rows.append(torch.addcmul(offset, torch.from_numpy(pixels.copy()).float(), scale))
    if not rows:
        raise PredictError(f"{data}: none of its {len(paths)} image(s) can be decoded "
                           f"({report.skipped[0] if report.skipped else ''}): give PNG, JPEG "
                           f"or BMP files")
    return pd.DataFrame({"path": kept}), torch.stack(rows)


def _image_paths(data: Path) -> list[Path]:
    if data.is_dir():
        paths = sorted(p for p in data.rglob("*") if p.suffix.lower() in EXTENSIONS
                       and p.is_file() and not p.name.startswith("."))
        if not paths:
            raise PredictError(f"{data} holds no image ({', '.join(EXTENSIONS)}): give a "
                               f"folder of images or a list of image paths")
        return paths
    if data.suffix.lower() in EXTENSIONS:
        return [data]
    if data.suffix.lower() in (".csv", ".txt"):
        return _listed_paths(data)
    raise PredictError(f"{data}: the run was trained on images: give an image folder, an "
                       f"image file ({', '.join(EXTENSIONS)}) or a .csv/.txt list of paths")


def _listed_paths(file: Path) -> list[Path]:
    """Paths from the first column of a CSV (a ``path`` header is skipped) or lines of a
    text file; relative paths start from the list's folder."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and r[0].strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PredictError(f"cannot read the image list {file}: {exc}") from None
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    if not rows:
        raise PredictError(f"the image list {file} names no file: put one image path per line")
    paths = [Path(r[0].strip()).expanduser() for r in rows]
    return [p if p.is_absolute() else file.parent / p for p in paths]


# --- inference and output -----------------------------------------------------
def _infer(model: torch.nn.Module, x: torch.Tensor, batch_size: int,
           progress: Progress | None) -> torch.Tensor:
    model.eval()
    parts, total = [], len(x)
    with torch.no_grad():
        for lo in range(0, total, batch_size):
            parts.append(model(x[lo:lo + batch_size]).float())
            if progress is not None:
                progress(min(lo + batch_size, total), total)
    return torch.cat(parts)


def probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Class probabilities from a classifier's outputs: softmax, or for one output (binary
    with BCE) the sigmoid as the second class's probability."""
    if outputs.shape[1] == 1:
        p = torch.sigmoid(outputs[:, 0])
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(outputs, dim=1)


def _decoded(meta: dict, outputs: torch.Tensor) -> pd.DataFrame:
    pre = meta["preprocessing"]
    if meta["task"] == "regression":
        values = outputs[:, 0].double().numpy() * pre["target_std"] + pre["target_mean"]
        return pd.DataFrame({"predicted": values})
    names = pre["class_names"]
    probs = probabilities(outputs).numpy()
    frame = pd.DataFrame({"predicted": [names[i] for i in probs.argmax(1)]})
    for i, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, i].astype(np.float64)
    return frame


def predict_to_queue(workspace, run_ref, data, out, batch_size: int, queue) -> None:
    """predict_file in a process of its own (the window's File ▸ Predict…): puts
    ("progress", done, total) as batches finish, then ("done", report dict, notes) or
    ("error", message) on ``queue``."""
    def progress(done: int, total: int) -> None:
        queue.put(("progress", done, total))

    try:
        report = predict_file(workspace, run_ref, data, out, batch_size=batch_size,
                              progress=progress)
    except PredictError as exc:
        queue.put(("error", str(exc)))
    except Exception as exc:  # a bug must reach the window as a message, not a hang
        queue.put(("error", f"unexpected {type(exc).__name__}: {exc}"))
    else:
        queue.put(("done", report.to_dict(), report.notes()))

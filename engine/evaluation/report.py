"""A run's evaluation report: the trained model's predictions on one split, judged.

The report is plain JSON stored in the run's folder (``evaluation/val.json``,
``evaluation/test.json``) beside its log and checkpoints, so it travels with
the run, `torchwork evaluate` and the window's Evaluation dock read the same
file, and no table migration is needed. Image runs also keep small uint8
thumbnails of the split's samples (``evaluation/val-thumbs.npy``) so the dock
shows the samples of a confusion-matrix cell without loading torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.files import atomic_path, write_text_atomic
from engine.workspace.records import now_iso

from . import metrics as m

FORMAT = "torchwork-evaluation"
SPLITS = ("val", "test")
SPLIT_NAMES = {"val": "validation", "test": "test"}
THUMB_MAX = 32  # thumbnails are at most this many pixels on a side
METRIC_KEYS = {
    "classification": ("accuracy", "balanced_accuracy", "per_class", "macro_f1", "weighted_f1",
                       "confusion_matrix", "roc_auc", "log_loss", "ece"),
    "regression": ("mse", "rmse", "mae", "r2"),
}


class EvaluationError(Exception):
    """A run or split that cannot be evaluated; the message says why and what to do."""


def report_path(run_dir: str | Path, split: str) -> Path:
    return Path(run_dir) / "evaluation" / f"{split}.json"


def thumbs_path(run_dir: str | Path, split: str) -> Path:
    return Path(run_dir) / "evaluation" / f"{split}-thumbs.npy"


def split_batches(bundle, split: str, batch: int = 1024):
    """(x, y) batches of ``split`` of a DataBundle, in order; EvaluationError (before any
    batch) when the run has no such split.

    A split is held as tensors (``x_val``/``y_val``, ``x_test``/``y_test``) or, for
    data streamed from disk, as a torch Dataset of (x, y) pairs (``val_dataset``,
    ``test_dataset``). A test split exists only where the data gives one
    (data.test_fraction or data.test_path); it is never used in training.
    """
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    x, y = getattr(bundle, f"x_{split}", None), getattr(bundle, f"y_{split}", None)
    dataset = getattr(bundle, f"{split}_dataset", None)
    if x is not None and y is not None and len(y):
        return ((x[i:i + batch], y[i:i + batch]) for i in range(0, len(y), batch))
    if dataset is not None and len(dataset):
        from torch.utils.data import DataLoader

        return iter(DataLoader(dataset, batch_size=batch, shuffle=False))
    if split == "test":
        raise EvaluationError("this run has no test split: set data.test_fraction (a share of "
                              "the data held out from training and selection) or "
                              "data.test_path for a table, then train again; or evaluate "
                              "--split val")
    raise EvaluationError("this run has no validation rows to evaluate on")


def model_outputs(model, batches, device=None, *, images: bool = False):
    """The model's raw outputs on (x, y) ``batches``, in eval mode and without gradients:
    float64 numpy (N, outputs), the targets (N,), and with ``images`` uint8 thumbnails
    of the inputs (else None). The model's training mode is restored after."""
    import torch

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs, targets, thumbs = [], [], []
    try:
        with torch.no_grad():
            for x, y in batches:
                outs.append(model(x.to(device)).float().cpu())
                targets.append(y.cpu())
                if images:
                    thumbs.append(thumbnails(x))
    finally:
        model.train(was_training)
    return (torch.cat(outs).double().numpy(), torch.cat(targets).numpy(),
            np.concatenate(thumbs) if images else None)


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from logits: softmax, or a sigmoid for one binary output."""
    if outputs.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-outputs[:, 0]))
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def build_report(outputs: np.ndarray, y: np.ndarray, bundle, *, split: str,
                 run=None, step: int | None = None, index: np.ndarray | None = None) -> dict:
    """The report of a split from the model's raw ``outputs`` and the split's targets ``y``
    as the DataBundle holds them (class indices, or standardized regression targets)."""
    n = len(y)
    index = np.arange(n) if index is None else np.asarray(index)
    report = {"format": FORMAT, "version": 1, "split": split, "task": bundle.task, "n": int(n),
              "created_at": now_iso(), "step": step,
              "run": None if run is None else {"id": run.id, "name": run.name},
              "class_names": bundle.class_names}
    if bundle.task == "classification":
        proba = probabilities(outputs)
        y = np.asarray(y, dtype=np.int64)
        names = list(bundle.class_names)
        calibration = m.reliability(y, proba)
        report.update(metrics=m.classification_metrics(y, proba, names),
                      curves=m.curves(y, proba, names), reliability=calibration["bins"],
                      samples={"index": index.tolist(), "true": y.tolist(),
                               "pred": proba.argmax(axis=1).tolist(),
                               "confidence": proba.max(axis=1).round(6).tolist()})
        return report
    true = np.asarray(y, dtype=np.float64) * bundle.target_std + bundle.target_mean
    pred = outputs[:, 0] * bundle.target_std + bundle.target_mean
    report.update(metrics=m.regression_metrics(true, pred), curves=None, reliability=None,
                  samples={"index": index.tolist(), "true": true.tolist(),
                           "pred": pred.tolist(), "residual": (true - pred).tolist()})
    return report


def evaluate_model(model, bundle, split: str, *, run=None, step=None, device=None) -> dict:
    """Run ``model`` on ``split`` of ``bundle`` and judge it (see build_report)."""
    images = len(tuple(bundle.input_shape)) == 3  # keep what the dock shows per sample
    outputs, y, thumbs = model_outputs(model, split_batches(bundle, split), device,
                                       images=images)
    report = build_report(outputs, y, bundle, split=split, run=run, step=step)
    if images:
        report["thumbnails"] = thumbs
    return report


def thumbnails(x) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, 3) images from preprocessed (N, C, H, W) tensors, each
    stretched to its own range (the model's input is standardized) and at most THUMB_MAX."""
    import torch

    x = x.float()
    h, w = x.shape[-2:]
    if max(h, w) > THUMB_MAX:
        scale = THUMB_MAX / max(h, w)
        x = torch.nn.functional.interpolate(x, size=(max(1, round(h * scale)),
                                                     max(1, round(w * scale))),
                                            mode="area")
    flat = x.reshape(len(x), -1)
    lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    x = (x - lo.view(-1, 1, 1, 1)) / span.view(-1, 1, 1, 1)
    images = (x * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    images = images.transpose(0, 2, 3, 1)  # (N, H, W, C)
    return images[..., 0] if images.shape[-1] == 1 else images[..., :3]


def save_report(run_dir: str | Path, report: dict) -> Path:
    """Write ``report`` as the run's report of its split (atomically; thumbnails beside it)."""
    split = report["split"]
    images = report.pop("thumbnails", None)
    if images is not None:
        with atomic_path(thumbs_path(run_dir, split)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, images)
    else:
        thumbs_path(run_dir, split).unlink(missing_ok=True)
    return write_text_atomic(report_path(run_dir, split), json.dumps(report))


def load_report(run_dir: str | Path, split: str = "val") -> dict | None:
    """The stored report of ``split`` (None when the run has none yet)."""
    path = report_path(run_dir, split)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read {path} ({exc}): evaluate the run again to "
                              f"rewrite it") from None
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise EvaluationError(f"{path} is not a Torchwork evaluation report: evaluate the run "
                              f"again to rewrite it")
    return report


def load_thumbnails(run_dir: str | Path, split: str) -> np.ndarray | None:
    """The split's sample thumbnails, read whole (a memory-mapped file could not be
    replaced by the next evaluation on Windows); None when there are none."""
    path = thumbs_path(run_dir, split)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def stored_splits(run_dir: str | Path) -> Iterator[str]:
    return (s for s in SPLITS if report_path(run_dir, s).is_file())


def headline(report: dict) -> dict:
    """The report's metrics with exactly the keys `torchwork evaluate --json` prints."""
    return {k: report["metrics"].get(k) for k in METRIC_KEYS[report["task"]]}

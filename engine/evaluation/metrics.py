"""Judging a model's predictions: scikit-learn's metrics over plain numpy arrays.

No torch here: these take true labels and predicted class probabilities (or
true and predicted values in the target's own units) and return JSON-ready
dicts, so the CLI, the stored report and the window read the same numbers.
Every fraction (accuracy, precision, recall, F1, ROC-AUC, ECE) lies in [0, 1].
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017 ("On calibration...")
CURVE_POINTS = 400  # at most this many points per stored ROC / PR curve


def classification_metrics(y_true, proba, class_names: list[str]) -> dict:
    """The headline numbers of a classifier, keyed as `torchwork evaluate --json` prints them.

    ``y_true``: (N,) class indices; ``proba``: (N, K) class probabilities (rows sum to 1).
    The confusion matrix has one row per true class and one column per predicted class,
    both in class order. ROC-AUC is the one-vs-rest macro average over the classes that
    have both positives and negatives in ``y_true`` (None when none has).
    """
    y, p = _labels(y_true), _probabilities(proba)
    k = len(class_names)
    labels = list(range(k))
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():  # a class absent from y_true: its recall is 0, not a warning
        warnings.simplefilter("ignore", (UndefinedMetricWarning, UserWarning, RuntimeWarning))
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y, pred, labels=labels, zero_division=0)
        balanced = skm.balanced_accuracy_score(y, pred)
    per_class = [{"class": name, "precision": float(precision[i]), "recall": float(recall[i]),
                  "f1": float(f1[i]), "support": int(support[i])}
                 for i, name in enumerate(class_names)]
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced),
        "per_class": per_class,
        "macro_f1": float(skm.f1_score(y, pred, labels=labels, average="macro",
                                       zero_division=0)),
        "weighted_f1": float(skm.f1_score(y, pred, labels=labels, average="weighted",
                                          zero_division=0)),
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        "roc_auc": roc_auc(y, p),
        "log_loss": float(skm.log_loss(y, p, labels=labels)),
        "ece": reliability(y, p)["ece"],
    }


def roc_auc(y_true, proba) -> float | None:
    """One-vs-rest ROC-AUC, macro-averaged over the classes sklearn can score.

    With every class present this is ``roc_auc_score(multi_class="ovr")``; a
    validation split can miss a rare class, where sklearn refuses the whole
    average: that class is left out instead (None when no class can be scored).
    """
    y, p = _labels(y_true), _probabilities(proba)
    if p.shape[1] == 2:
        return float(skm.roc_auc_score(y, p[:, 1])) if len(np.unique(y)) == 2 else None
    scores = [skm.roc_auc_score(y == c, p[:, c]) for c in range(p.shape[1])
              if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(scores)) if scores else None


def reliability(y_true, proba, bins: int = ECE_BINS) -> dict:
    """Expected calibration error of the top-class confidence, and the diagram's bins.

    Each prediction falls in the bin of its confidence (the largest probability;
    bins are (lower, upper], the first also holds 0). ECE is the mean over bins of
    |accuracy - mean confidence|, weighted by the share of predictions in the bin.
    """
    y, p = _labels(y_true), _probabilities(proba)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        acc = float(correct[inside].mean()) if count else None
        conf = float(confidence[inside].mean()) if count else None
        if count:
            ece += count / len(y) * abs(acc - conf)
        rows.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
                     "accuracy": acc, "confidence": conf})
    return {"ece": float(ece), "bins": rows}


def curves(y_true, proba, class_names: list[str]) -> dict:
    """Per-class one-vs-rest ROC and precision-recall curves, thinned to CURVE_POINTS.

    A binary task gives the curves of its second (positive) class only. A class
    with no positives or no negatives in ``y_true`` has no curve.
    """
    y, p = _labels(y_true), _probabilities(proba)
    classes = [1] if p.shape[1] == 2 else range(p.shape[1])
    roc, pr = [], []
    for c in classes:
        positive = y == c
        if not 0 < positive.sum() < len(y):
            continue
        fpr, tpr, _ = skm.roc_curve(positive, p[:, c])
        precision, recall, _ = skm.precision_recall_curve(positive, p[:, c])
        roc.append({"class": class_names[c], "fpr": _thin(fpr), "tpr": _thin(tpr),
                    "auc": float(skm.auc(fpr, tpr))})
        pr.append({"class": class_names[c], "recall": _thin(recall),
                   "precision": _thin(precision),
                   "average_precision": float(skm.average_precision_score(positive, p[:, c]))})
    return {"roc": roc, "pr": pr}


def regression_metrics(y_true, y_pred) -> dict:
    """MSE, RMSE, MAE and R² in the target's own units (None where a value is not finite)."""
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if not np.all(np.isfinite(p)):
        return {"mse": None, "rmse": None, "mae": None, "r2": None}
    mse = float(skm.mean_squared_error(t, p))
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(skm.mean_absolute_error(t, p)),
            "r2": float(skm.r2_score(t, p)) if len(t) > 1 else None}


def _labels(y) -> np.ndarray:
    return np.asarray(y, dtype=np.int64).ravel()


def _probabilities(proba) -> np.ndarray:
    """(N, K) float64 rows that sum to 1 (float32 softmax rows are off by ~1e-7)."""
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"class probabilities must be (samples, classes), got shape {p.shape}")
    return p / p.sum(axis=1, keepdims=True)


def _thin(values: np.ndarray) -> list[float]:
    if len(values) > CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(values) - 1, CURVE_POINTS).round().astype(int))
        values = values[keep]
    return [float(v) for v in values]

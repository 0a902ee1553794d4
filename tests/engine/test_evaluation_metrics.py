"""Every evaluation metric against a small case worked out by hand (engine.evaluation)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.evaluation import metrics as m
from engine.evaluation.report import (
    EvaluationError,
    build_report,
    evaluate_model,
    probabilities,
    split_batches,
)


def one_hot_ish(pred, confidence, k):
    """Probability rows whose top class is ``pred`` with ``confidence``, the rest spread."""
    rows = np.full((len(pred), k), 0.0)
    for i, (p, c) in enumerate(zip(pred, confidence)):
        rows[i, :] = (1 - c) / (k - 1)
        rows[i, p] = c
    return rows


def test_three_classes_by_hand():
    # true:  0 0 1 1 2 2      predicted: 0 1 1 1 2 0
    y = [0, 0, 1, 1, 2, 2]
    proba = one_hot_ish([0, 1, 1, 1, 2, 0], [0.8] * 6, 3)
    r = m.classification_metrics(y, proba, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    # rows = true class in class order, columns = predicted
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    a, b, c = r["per_class"]
    assert a == {"class": "a", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (c["precision"], c["recall"], c["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert r["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert r["weighted_f1"] == pytest.approx(r["macro_f1"])  # equal supports
    assert r["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    # each sample's true class has 0.8 when right, 0.1 when wrong
    assert r["log_loss"] == pytest.approx(-(4 * math.log(0.8) + 2 * math.log(0.1)) / 6)


def test_imbalanced_binary_by_hand():
    # supports 4 and 2: balanced accuracy is the mean of the recalls, 3/4 and 1/2
    y = [0, 0, 0, 0, 1, 1]
    proba = one_hot_ish([0, 0, 0, 1, 1, 0], [0.9] * 6, 2)
    r = m.classification_metrics(y, proba, ["no", "yes"])
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["balanced_accuracy"] == pytest.approx(0.625)
    f1 = [c["f1"] for c in r["per_class"]]  # class 0: p 3/4 r 3/4; class 1: p 1/2 r 1/2
    assert f1 == pytest.approx([0.75, 0.5])
    assert r["weighted_f1"] == pytest.approx((4 * 0.75 + 2 * 0.5) / 6)
    assert r["macro_f1"] == pytest.approx(0.625)


def test_roc_auc_counts_ranked_pairs():
    # positives score 0.9 and 0.4, negatives 0.6 and 0.1: 3 of 4 pairs ranked right
    y = [1, 1, 0, 0]
    pos = np.array([0.9, 0.4, 0.6, 0.1])
    proba = np.stack([1 - pos, pos], axis=1)
    assert m.roc_auc(y, proba) == pytest.approx(0.75)
    curve = m.curves(y, proba, ["neg", "pos"])
    (roc,), (pr,) = curve["roc"], curve["pr"]
    assert roc["class"] == "pos" and roc["auc"] == pytest.approx(0.75)
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    # precision-recall: the top score is a positive (precision 1 at recall 1/2)
    assert any(p == 1.0 and r == 0.5 for p, r in zip(pr["precision"], pr["recall"]))


def test_roc_auc_one_vs_rest_leaves_out_a_class_missing_from_the_split():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 10)
    proba = rng.dirichlet(np.ones(3), size=30)
    from sklearn.metrics import roc_auc_score
    assert m.roc_auc(y, proba) == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"))
    keep = y != 2  # class 2 never occurs: sklearn refuses; the two others are averaged
    expected = np.mean([roc_auc_score(y[keep] == c, proba[keep, c]) for c in (0, 1)])
    assert m.roc_auc(y[keep], proba[keep]) == pytest.approx(expected)


def test_expected_calibration_error_by_hand():
    # confidence 0.9: one right one wrong (|0.5 - 0.9|); 0.6: both right (|1 - 0.6|)
    y = [0, 1, 0, 1]
    proba = one_hot_ish([0, 0, 0, 1], [0.9, 0.9, 0.6, 0.6], 2)
    r = m.reliability(y, proba)
    assert r["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    filled = [b for b in r["bins"] if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in filled] == [(2, 1.0), (2, 0.5)]
    assert [b["confidence"] for b in filled] == pytest.approx([0.6, 0.9])
    assert len(r["bins"]) == m.ECE_BINS and r["bins"][-1]["upper"] == 1.0
    assert m.classification_metrics(y, proba, ["0", "1"])["ece"] == pytest.approx(0.4)


def test_perfectly_calibrated_predictions_have_zero_ece():
    y = [0, 0, 0, 1]  # confidence 0.75 for class 0 everywhere, right 3 times in 4
    proba = np.tile([0.75, 0.25], (4, 1))
    assert m.reliability(y, proba)["ece"] == pytest.approx(0.0)


def test_regression_by_hand():
    r = m.regression_metrics([1, 2, 3, 4], [1, 3, 2, 6])  # errors 0, 1, -1, 2
    assert r["mse"] == pytest.approx(6 / 4)
    assert r["rmse"] == pytest.approx(math.sqrt(1.5))
    assert r["mae"] == pytest.approx(1.0)
    assert r["r2"] == pytest.approx(1 - 6 / 5)  # residual 6, total 5 around the mean 2.5
    assert m.regression_metrics([1, 2], [np.nan, 1]) == {"mse": None, "rmse": None,
                                                         "mae": None, "r2": None}


def test_probabilities_from_logits():
    p = probabilities(np.array([[0.0, 0.0], [math.log(3), 0.0]]))
    assert p == pytest.approx(np.array([[0.5, 0.5], [0.75, 0.25]]))
    one = probabilities(np.array([[0.0], [math.log(3)]]))  # one BCE output: sigmoid
    assert one == pytest.approx(np.array([[0.5, 0.5], [0.25, 0.75]]))


def regression_bundle():
    return SimpleNamespace(task="regression", class_names=None, target_mean=100.0,
                           target_std=10.0, input_shape=(1,))


def test_regression_report_is_in_the_targets_units():
    # standardized targets 0 and 1 are 100 and 110; outputs 0.5 and 1 predict 105 and 110
    report = build_report(np.array([[0.5], [1.0]]), np.array([0.0, 1.0]), regression_bundle(),
                          split="val")
    assert report["metrics"]["mae"] == pytest.approx(2.5)
    assert report["metrics"]["mse"] == pytest.approx(12.5)
    assert report["samples"]["true"] == pytest.approx([100.0, 110.0])
    assert report["samples"]["residual"] == pytest.approx([-5.0, 0.0])


def test_test_split_is_evaluated_when_the_data_has_one_and_named_when_not():
    model = torch.nn.Linear(2, 3)
    x = torch.randn(12, 2)
    bundle = SimpleNamespace(task="classification", class_names=["a", "b", "c"],
                             input_shape=(2,), x_val=x, y_val=torch.arange(12) % 3)
    with pytest.raises(EvaluationError, match="this run has no test split"):
        split_batches(bundle, "test")
    bundle.x_test, bundle.y_test = x[:6], torch.tensor([0, 1, 2, 0, 1, 2])
    report = evaluate_model(model, bundle, "test")
    expected = model(x[:6]).argmax(1).tolist()
    assert report["split"] == "test" and report["n"] == 6
    assert report["samples"]["pred"] == expected
    assert sum(map(sum, report["metrics"]["confusion_matrix"])) == 6


def test_image_reports_keep_thumbnails_of_their_samples():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 2))
    x = torch.randn(5, 1, 64, 64)
    bundle = SimpleNamespace(task="classification", class_names=["a", "b"],
                             input_shape=(1, 64, 64), x_val=x, y_val=torch.tensor([0, 1] * 2 + [0]))
    thumbs = evaluate_model(model, bundle, "val")["thumbnails"]
    assert thumbs.dtype == np.uint8 and thumbs.shape == (5, 32, 32)
    assert thumbs.min() == 0 and thumbs.max() == 255  # each stretched to its own range


def test_a_split_streamed_as_a_dataset_is_evaluated_in_order():
    """Image folders larger than memory hold their splits as torch Datasets, not tensors."""
    from torch.utils.data import TensorDataset

    model = torch.nn.Linear(2, 3)
    x, y = torch.randn(7, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    bundle = SimpleNamespace(task="classification", class_names=["a", "b", "c"],
                             input_shape=(2,), x_val=None, y_val=None,
                             val_dataset=TensorDataset(x, y))
    report = evaluate_model(model, bundle, "val")
    assert report["samples"]["true"] == y.tolist()
    assert report["samples"]["pred"] == model(x).argmax(1).tolist()

"""Classification metrics in plain NumPy (no scikit-learn in the training stack).

`classification_metrics` turns true labels and predicted probabilities into the JSON-ready
dict that metrics.json, the report and the plots all read, so they can never disagree.
Conventions follow scikit-learn's classification report: confusion matrix rows are true
classes and columns predicted ones; a class never predicted has precision 0, a class with no
support has recall 0; macro = unweighted mean over classes, weighted = mean by support.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
# Keras clips probabilities to [EPSILON, 1 - EPSILON] before the log; so do we, so our loss
# matches model.evaluate on the same images.
EPSILON = 1e-7
CALIBRATION_BINS = 10


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (better than p +- z*se at small n)."""
    if n <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, got {successes}")
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"label shapes differ: {y_true.shape} vs {y_pred.shape}")
    for name, labels in (("true", y_true), ("predicted", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels outside 0..{num_classes - 1}")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def per_class_scores(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Precision, recall, F1 and support per class, plus macro and weighted averages."""
    matrix = np.asarray(matrix)
    true_positives = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    per_class: dict[str, dict[str, float | int]] = {}
    for k, name in enumerate(class_names):
        precision = _ratio(true_positives[k], predicted[k])
        recall = _ratio(true_positives[k], support[k])
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": int(support[k]),
        }
    total = int(support.sum())
    keys = ("precision", "recall", "f1")
    macro = {key: float(np.mean([row[key] for row in per_class.values()])) for key in keys}
    weighted = {
        key: _ratio(sum(row[key] * row["support"] for row in per_class.values()), total)
        for key in keys
    }
    return {
        "per_class": per_class,
        "macro_avg": {**macro, "support": total},
        "weighted_avg": {**weighted, "support": total},
    }


def cross_entropy(probabilities: np.ndarray, y_true: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy of predicted probabilities, clipped like Keras."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    rows = probabilities / probabilities.sum(axis=1, keepdims=True)
    picked = rows[np.arange(len(rows)), np.asarray(y_true, dtype=np.int64)]
    return float(-np.log(np.clip(picked, EPSILON, 1.0 - EPSILON)).mean())


def confidence_bin(confidence: np.ndarray, bins: int = CALIBRATION_BINS) -> np.ndarray:
    """The index of each confidence's equal-width bin on [0, 1] (1.0 lands in the last)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    which = confidence_bin(confidence, bins)
    error = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def accuracy_summary(correct: np.ndarray) -> dict[str, Any]:
    """n, correct count, accuracy and its Wilson 95% interval for a boolean vector."""
    n = int(len(correct))
    hits = int(np.sum(correct))
    low, high = wilson_interval(hits, n)
    return {"n": n, "correct": hits, "accuracy": hits / n, "accuracy_ci95": [low, high]}


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Everything metrics.json records for one split, from labels and (N, C) probabilities."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    num_classes = len(class_names)
    if probabilities.ndim != 2 or probabilities.shape[1] != num_classes:
        raise ValueError(
            f"expected probabilities of shape (N, {num_classes}), got {probabilities.shape}"
        )
    if len(probabilities) != len(y_true):
        raise ValueError(f"{len(y_true)} labels for {len(probabilities)} predictions")
    if len(y_true) == 0:
        raise ValueError("no predictions to score")
    y_pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = y_pred == y_true
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    result: dict[str, Any] = {
        **accuracy_summary(correct),
        "loss": cross_entropy(probabilities, y_true),
        **per_class_scores(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
        "mean_confidence": float(confidence.mean()),
        "expected_calibration_error": expected_calibration_error(confidence, correct),
    }
    if num_classes > 2:
        top2 = np.argsort(-probabilities, axis=1)[:, :2]
        result["top2_accuracy"] = float((top2 == y_true[:, None]).any(axis=1).mean())
    return result


def history_summary(history: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """Epoch count, final values and best validation epochs (1-based) of a Keras history."""
    lengths = [len(v) for v in history.values() if isinstance(v, Sequence) and len(v)]
    summary: dict[str, Any] = {"epochs": max(lengths, default=0)}
    for key in ("accuracy", "val_accuracy", "loss", "val_loss"):
        values = history.get(key)
        if values:
            summary[f"final_{key}"] = float(values[-1])
    for key, pick in (("val_accuracy", np.argmax), ("val_loss", np.argmin)):
        values = history.get(key)
        if values:
            best = int(pick(np.asarray(values, dtype=np.float64)))
            summary[f"best_{key}"] = float(values[best])
            summary[f"best_{key}_epoch"] = best + 1
    return summary

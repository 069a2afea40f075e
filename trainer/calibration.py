"""Calibration and open-set numbers, in NumPy: the temperature that makes probabilities
honest, how honest they are (expected calibration error), and how well a score separates
known items from unknown ones (AUROC, and the threshold that keeps a promised rate of known
items wrongly rejected). Used by the open-set benchmark and by `ewaste-convert open-set`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from desktop.core.prediction_loop import softmax
from trainer import metrics

ECE_BINS = 15  # finer than the report's 10: the open-set study has 300 images per split
# Above the highest score when nothing is rejected: many float32 steps, so that the app's
# own computation of that score stays under it.
_THRESHOLD_MARGIN = 1e-5


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes at `temperature`."""
    probabilities = softmax(logits, temperature)
    return float(-np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-12)).mean())


# The grid's top. A fit that ends there found the flattest probabilities best: a model whose
# confident answers are wrong as often as not on validation (trained too little).
MAX_TEMPERATURE = 20.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the NLL: a log-spaced grid, then a finer one around the
    best (the NLL is smooth and has one minimum in T, so no optimiser library is needed)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(MAX_TEMPERATURE), 241))
    best = min(grid, key=lambda t: nll(logits, labels, t))
    fine = np.exp(np.linspace(np.log(best) - 0.03, np.log(best) + 0.03, 61))
    return float(min(fine, key=lambda t: nll(logits, labels, t)))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """The report's ECE (`trainer.metrics`) of these probabilities against the labels."""
    correct = probabilities.argmax(axis=1) == labels
    return metrics.expected_calibration_error(probabilities.max(axis=1), correct, bins)


def reliability(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per non-empty bin: the reliability diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = metrics.confidence_bin(confidence, bins)
    return [
        (
            float(confidence[which == b].mean()),
            float(correct[which == b].mean()),
            int((which == b).sum()),
        )
        for b in range(bins)
        if (which == b).any()
    ]


def auroc(known_scores: np.ndarray, unknown_scores: np.ndarray) -> float:
    """The chance that an unknown item scores higher than a known one (ties count half)."""
    known = np.asarray(known_scores, dtype=np.float64)
    unknown = np.asarray(unknown_scores, dtype=np.float64)
    everything = np.concatenate([known, unknown])
    order = everything.argsort(kind="mergesort")
    ranks = np.empty(len(everything))
    ranks[order] = np.arange(1, len(everything) + 1)
    for value in np.unique(everything):  # average ranks over ties
        tied = everything == value
        ranks[tied] = ranks[tied].mean()
    unknown_rank_sum = ranks[len(known) :].sum()
    return float(
        (unknown_rank_sum - len(unknown) * (len(unknown) + 1) / 2) / (len(known) * len(unknown))
    )


def binomial_upper_bound(failures: int, trials: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen as `failures` in `trials`: the
    largest rate under which seeing so few failures still has a 1 - `confidence` chance."""
    if failures >= trials:
        return 1.0

    def at_most_failures(rate: float) -> float:  # P(X <= failures), X ~ Binomial(trials, rate)
        if rate <= 0.0:
            return 1.0
        logs = [
            math.lgamma(trials + 1)
            - math.lgamma(i + 1)
            - math.lgamma(trials - i + 1)
            + i * math.log(rate)
            + (trials - i) * math.log1p(-rate)
            for i in range(failures + 1)
        ]
        return sum(math.exp(value) for value in logs)

    low, high = 0.0, 1.0
    for _ in range(60):  # bisection: the probability falls as the rate grows
        middle = (low + high) / 2
        low, high = (middle, high) if at_most_failures(middle) > 1 - confidence else (low, middle)
    return high


@dataclass(frozen=True)
class PromisedThreshold:
    threshold: float  # scores above it are called unknown
    rejected: int  # validation items above it
    upper_bound: float  # the rate new known items may be rejected at, with `confidence`
    kept_promise: bool  # upper_bound <= the promised rate


def threshold_for_promise(
    known_scores: np.ndarray, promised_rate: float, confidence: float = 0.95
) -> PromisedThreshold:
    """The threshold that rejects the most known items while the rejection rate stays under
    `promised_rate` with `confidence`, judged from these scores (Clopper-Pearson). The
    bound assumes photos like these ones, each an independent trial.

    Setting it where the validation images' own rate equals the promise would break it for
    about half of all new sets of photos; the bound leaves the margin the sample size needs.
    The threshold lies halfway between the highest score kept and the lowest rejected, so
    that the app's float32 arithmetic cannot move a validation image across it. With too few
    images to promise anything, no validation item is rejected and `kept_promise` is False."""
    descending = np.sort(np.asarray(known_scores, dtype=np.float64))[::-1]
    total = len(descending)
    if total == 0:
        raise ValueError("no known-item scores to set a threshold on")
    rejected = 0
    while (
        rejected + 1 < total
        and binomial_upper_bound(rejected + 1, total, confidence) <= promised_rate
    ):
        rejected += 1
    while rejected > 0 and descending[rejected - 1] == descending[rejected]:
        rejected -= 1  # tied scores are kept or rejected together: keep them
    kept = descending[rejected]
    margin = max(abs(kept), 1.0) * _THRESHOLD_MARGIN
    threshold = float((kept + descending[rejected - 1]) / 2 if rejected else kept + margin)
    bound = binomial_upper_bound(rejected, total, confidence)
    return PromisedThreshold(threshold, rejected, bound, bound <= promised_rate)

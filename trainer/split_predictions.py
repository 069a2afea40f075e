"""The predictions of one dataset split, made by the station app's prediction loop.

Evaluation sends a split's files through `desktop.core.prediction_loop.classify_paths` with
a Keras or an ONNX predictor, so its figures are those of the app's own code path:
the same decoding, batching, flip averaging and handling of unreadable files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from desktop.core.prediction_loop import Outputs, Predictor, classify_paths, softmax
from desktop.core.preprocessing import DEFAULT_RESIZE
from trainer.dataset import Sample
from trainer.errors import TrainerError

# Files decode on this many threads while the previous batch is predicted.
DECODE_WORKERS = 2
# Tolerance for "these outputs already are probabilities" (float32 softmax rounding).
_PROBABILITY_TOLERANCE = 1e-3


class EvaluationError(TrainerError):
    """The model cannot be evaluated on this data; the message says why."""


def _as_probabilities(outputs: np.ndarray) -> tuple[np.ndarray, bool]:
    """The outputs as probabilities, and whether they had to be softmaxed (logits)."""
    in_range = (
        outputs.min() >= -_PROBABILITY_TOLERANCE and outputs.max() <= 1 + _PROBABILITY_TOLERANCE
    )
    sums_to_one = np.allclose(outputs.sum(axis=1), 1.0, atol=_PROBABILITY_TOLERANCE)
    if in_range and sums_to_one:
        return np.clip(outputs, 0.0, 1.0), False
    return softmax(outputs), True


class _ProbabilityOutputs:
    """`predict` with its class output made probabilities: a model that returns logits is
    still scored (and the report says so) instead of producing nonsense metrics."""

    def __init__(self, predict: Predictor):
        self._predict = predict
        self.were_logits = False

    def __call__(self, images: np.ndarray) -> Outputs:
        outputs = self._predict(images)
        probabilities, logits = _as_probabilities(outputs.probabilities)
        self.were_logits = self.were_logits or logits
        return outputs._replace(probabilities=probabilities)


@dataclass(frozen=True)
class SplitPredictions:
    """The probabilities of the readable samples of a split, and the unreadable ones."""

    probabilities: np.ndarray  # (len(kept), C)
    kept: list[Sample]
    skipped: list[tuple[Sample, str]]  # (sample, the reason it could not be predicted)
    were_logits: bool
    # Per kept sample, whether the model called it unknown; None without open-set detection.
    unknown: np.ndarray | None = None


def predict_samples(
    predict: Predictor,
    samples: Sequence[Sample],
    image_size: tuple[int, int],
    *,
    batch_size: int = 64,
    tta_flip: bool = False,
    resize: str = DEFAULT_RESIZE,
    unknown_threshold: float | None = None,
) -> SplitPredictions:
    """Run `samples` through the app's prediction loop (decoding, batching and flip
    averaging included), so these figures are the figures of the app's own code path."""
    if batch_size < 1:
        raise EvaluationError(f"batch size must be at least 1, got {batch_size}")
    checked = _ProbabilityOutputs(predict)
    batches = classify_paths(
        [sample.path for sample in samples],
        checked,
        image_size,
        resize,
        batch_size=batch_size,
        workers=DECODE_WORKERS,
        flip_average=tta_flip,
        unknown_threshold=unknown_threshold,
    )
    predictions = [prediction for batch in batches for prediction in batch]
    pairs = list(zip(samples, predictions, strict=True))
    kept = [sample for sample, prediction in pairs if prediction.ok]
    skipped = [(sample, str(prediction.error)) for sample, prediction in pairs if not prediction.ok]
    rows = [prediction.probabilities for prediction in predictions if prediction.ok]
    probabilities = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    flags = [bool(p.unknown) for p in predictions if p.ok and p.unknown is not None]
    unknown = np.array(flags) if unknown_threshold is not None and flags else None
    return SplitPredictions(probabilities, kept, skipped, checked.were_logits, unknown)

"""One classified file (`Prediction`) and how it is judged (`status_of`).

Kept apart from the engine so discovery, CSV export and the GUI can use results without
loading ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

# A prediction under this confidence is flagged for a person to check. Chosen on the shipped
# model's calibrated validation outputs (benchmarks/bench_open_set.py): calibrated,
# a confidence under 0.7 is a prediction the model gets wrong about one time in three or
# more. It flags 4.0 % of the validation items and catches 2 of their 9 mistakes; 0.8
# would nearly double the review work (7.3 %) to catch one more, 0.95 would triple it
# (13.7 %) to catch three more.
DEFAULT_REVIEW_THRESHOLD = 0.7

Status = Literal["ok", "review", "unknown", "error"]
# The status vocabulary, defined once: the CSV writes these words, the app shows the labels.
STATUS_OK: Status = "ok"
STATUS_REVIEW: Status = "review"
STATUS_UNKNOWN: Status = "unknown"  # probably none of the model's classes
STATUS_ERROR: Status = "error"
STATUSES: tuple[Status, ...] = (STATUS_OK, STATUS_REVIEW, STATUS_UNKNOWN, STATUS_ERROR)
STATUS_LABELS: dict[Status, str] = {
    STATUS_OK: "ok",
    STATUS_REVIEW: "needs review",
    STATUS_UNKNOWN: "unknown item",
    STATUS_ERROR: "error",
}


FileState = tuple[int, int]  # a file's size in bytes and modification time in ns
ModelId = tuple[str, str]  # a model file's name and SHA-256
# What an error row lists as its state: the photo is read again whenever it is added.
RETRY: FileState = (-1, -1)


@dataclass(frozen=True, eq=False)
class Prediction:
    """The result for one file: probabilities, or an error reason for the user.

    Exactly one of `probabilities` and `error` is set. The probabilities are a read-only
    float32 copy, so a Prediction can be shared between threads safely.

    `cam` is the class activation map of the predicted class (`top_index`): a small
    (h, w) float32 grid, raw scores before any ReLU or scaling (see `desktop.core.cam`), set
    only when the model has a CAM output. One class's map, not all of them, keeps a row at
    h * w floats (64 bytes at 4x4), so thousands of rows cost next to nothing.
    """

    path: str
    probabilities: np.ndarray | None
    error: str | None = None
    cam: np.ndarray | None = None
    # From a model with unknown-item detection: the score, and whether it passed the
    # model's threshold (the item is probably none of the classes); None otherwise.
    unknown_score: float | None = None
    unknown: bool | None = None
    # The file's size and modification time (ns) when it was read, where the caller keeps
    # them (the app, to tell the same photo dropped again from a changed one); else None.
    file_state: FileState | None = None
    # The model that made it, where the caller keeps it (the app, whose table may hold rows
    # of two models of the same classes: the batch summary names both); else None.
    model: ModelId | None = None

    def __post_init__(self) -> None:
        if (self.probabilities is None) == (self.error is None):
            raise ValueError(
                f"Prediction for {self.path!r} needs either probabilities or an error, not "
                f"{'both' if self.error is not None else 'neither'}"
            )
        if self.probabilities is not None:
            probs = np.array(self.probabilities, dtype=np.float32).reshape(-1)
            probs.setflags(write=False)
            object.__setattr__(self, "probabilities", probs)
        if self.cam is not None:
            if self.error is not None:
                raise ValueError(f"Prediction for {self.path!r} has an error and a CAM")
            # A copy, never a view: a view would keep the whole batch's maps alive.
            cam = np.array(self.cam, dtype=np.float32)
            if cam.ndim != 2 or cam.size == 0:
                raise ValueError(f"CAM for {self.path!r} must be a (h, w) grid, got {cam.shape}")
            cam.setflags(write=False)
            object.__setattr__(self, "cam", cam)

    @classmethod
    def failed(cls, path: str | object, reason: str) -> Prediction:
        return cls(path=str(path), probabilities=None, error=reason)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def top_index(self) -> int | None:
        return None if self.probabilities is None else int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float | None:
        return None if self.probabilities is None else float(np.max(self.probabilities))

    def top_k(self, k: int) -> list[tuple[int, float]]:
        """The k most probable classes as (class_index, probability), most probable first."""
        if self.probabilities is None:
            return []
        # Stable sort keeps the lower class index first on ties, so the order is repeatable.
        order = np.argsort(-self.probabilities, kind="stable")[: max(k, 0)]
        return [(int(i), float(self.probabilities[i])) for i in order]


# The CSV writes probabilities with this many significant digits, and the review threshold
# judges the confidence as written: a row reopened from its CSV keeps its status.
SIGNIFICANT_DIGITS = 6


def as_written(probability: float) -> float:
    """`probability` as the CSV writes it: a float32 0.7 (0.699999988) is 0.7."""
    return float(f"{probability:.{SIGNIFICANT_DIGITS}g}")


def status_of(prediction: Prediction, threshold: float = DEFAULT_REVIEW_THRESHOLD) -> Status:
    """ "error" when the file failed, "unknown" when the model's open-set score says the item
    is none of its classes, "review" when the top probability is under `threshold` (or is
    not a finite number: the engine makes such rows errors, but never call one "ok")."""
    if not prediction.ok:
        return STATUS_ERROR
    if prediction.unknown:
        return STATUS_UNKNOWN
    confidence = prediction.confidence
    if confidence is None or not math.isfinite(confidence) or as_written(confidence) < threshold:
        return STATUS_REVIEW
    return STATUS_OK


@dataclass(frozen=True)
class StatusCounts:
    ok: int = 0
    review: int = 0
    unknown: int = 0
    error: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.review + self.unknown + self.error


def count_statuses(
    predictions: Iterable[Prediction], threshold: float = DEFAULT_REVIEW_THRESHOLD
) -> StatusCounts:
    counts = dict.fromkeys(STATUSES, 0)
    for prediction in predictions:
        counts[status_of(prediction, threshold)] += 1
    return StatusCounts(**counts)

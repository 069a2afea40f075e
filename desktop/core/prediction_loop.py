"""The one prediction loop: files -> pixels -> batches -> a predictor -> Predictions.

The app's engine, the trainer's evaluation, the converter's parity check and the headless
benchmark all run files through `classify_paths`, so "the trainer's accuracy is the app's
accuracy" holds by construction: same decoding, same batching, same flip averaging, same
handling of unreadable files and of non-finite outputs.

A predictor is any callable taking (N, H, W, 3) float32 pixels 0-255 and returning
`Outputs`: the (N, C) probabilities, the (N, h, w, C) class activation maps or None, and
the (N,) unknown-item scores or None: `Engine.predict` for an ONNX file,
`trainer.keras_predictor` for a Keras model.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import NamedTuple

import numpy as np

from .model_info import ModelError
from .pixel_budget import Abandoned
from .preprocessing import ImageLoadError, load_rgb, mirror
from .results import Prediction
from .stop_signals import stop_signals_held


class Outputs(NamedTuple):
    """What a predictor returns for a batch of N images."""

    probabilities: np.ndarray  # (N, C)
    maps: np.ndarray | None = None  # (N, h, w, C) class activation maps
    unknown_scores: np.ndarray | None = None  # (N,): higher = less like the training images


Predictor = Callable[[np.ndarray], Outputs]
StopCheck = Callable[[], bool]
# A decoded file: the (H, W, 3) uint8 pixels, or the reason it could not be read; None
# when the decode was skipped because of a stop request.
Decoded = np.ndarray | str | None

# How often a wait for decodes looks at should_stop: cancel reacts within this delay.
STOP_POLL_SECONDS = 0.05
NON_FINITE_REASON = "model produced NaN/inf probabilities"
NON_FINITE_SCORE_REASON = "model produced a NaN/inf unknown-item score"
NOT_PROBABILITIES_REASON = "model output is not a probability vector"
CANCELLED_REASON = "cancelled"
# A probability row: values in [0, 1] summing to 1, within float32 and INT8 rounding.
PROBABILITY_TOLERANCE = 1e-2
# A model file is untrusted input: one that passed the load-time test on a blank image can
# still emit garbage on photos. Once at least MIN_ROWS_JUDGED rows are predicted and more
# than MAX_BAD_OUTPUT_SHARE of them were not probabilities, the run stops.
MIN_ROWS_JUDGED = 8
MAX_BAD_OUTPUT_SHARE = 0.5


class ModelOutputError(ModelError):
    """The model's outputs are not probabilities on most photos: the run cannot go on."""


def _never() -> bool:
    return False


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) per row, in float64 (the one definition: the engine's
    calibration, the trainer's temperature fit and its logits check all use it)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities whose confidence matches how often the model is right (the
    temperature is fitted on validation data), as float32 like every model output."""
    return softmax(logits, temperature).astype(np.float32)


def flip_averaged(predict: Predictor) -> Predictor:
    """`predict`, averaged over each image and its left-right mirror (test-time augmentation).

    Both views go through `predict` together (a batch of 2N). A mirrored image's map is
    mirrored back before averaging, so it lines up with the image shown.
    """

    def predict_both_views(images: np.ndarray) -> Outputs:
        count = images.shape[0]
        both = predict(np.concatenate([images, mirror(images)]))
        averaged = (both.probabilities[:count] + both.probabilities[count:]) / 2.0
        maps, scores = both.maps, both.unknown_scores
        if maps is not None:
            maps = (maps[:count] + mirror(maps[count:])) / 2.0
        if scores is not None:
            scores = (scores[:count] + scores[count:]) / 2.0
        return Outputs(averaged, maps, scores)

    return predict_both_views


def decode(
    path: str | os.PathLike[str],
    size: tuple[int, int],
    resize: str,
    abandon: Callable[[], bool] | None = None,
) -> Decoded:
    """The (H, W, 3) uint8 pixels of `path`, or the reason it cannot be read; None when
    `abandon()` turned true while it waited to decode a large image. Never raises."""
    try:
        return load_rgb(path, size, resize, abandon)
    except Abandoned:
        return None
    except ImageLoadError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001 - a bad file must never stop the batch
        return f"unexpected error while reading the file: {type(exc).__name__}: {exc}"


def decoded_batches(
    paths: Sequence[str | os.PathLike[str]],
    size: tuple[int, int],
    resize: str,
    *,
    batch_size: int,
    workers: int,
    should_stop: StopCheck | None = None,
) -> Iterator[tuple[list[str], list[Decoded]]]:
    """Yield (paths, decoded files) per batch, in input order, decoding one batch ahead.

    The next batch's files decode on a pool of `workers` threads while the caller works on
    the current one. `should_stop` is polled by the consuming thread only (every
    STOP_POLL_SECONDS while waiting, and after each batch); once it returns True no further
    batch is yielded and queued decodes are dropped.
    """
    if batch_size < 1:  # checked here, at the call, not at the first next()
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    items = [str(path) for path in paths]
    batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    return _decode_ahead(batches, size, resize, workers, should_stop or _never)


def _decode_ahead(
    batches: list[list[str]], size: tuple[int, int], resize: str, workers: int, stop: StopCheck
) -> Iterator[tuple[list[str], list[Decoded]]]:
    if not batches:
        return
    cancelled = threading.Event()

    def decode_unless_cancelled(path: str) -> Decoded:
        return None if cancelled.is_set() else decode(path, size, resize, cancelled.is_set)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ewaste-decode")
    try:
        upcoming = [pool.submit(decode_unless_cancelled, path) for path in batches[0]]
        for index, batch in enumerate(batches):
            current = upcoming
            following = batches[index + 1] if index + 1 < len(batches) else []
            upcoming = [pool.submit(decode_unless_cancelled, path) for path in following]
            if not _wait_unless_stopped(current, stop):
                return
            yield batch, [future.result() for future in current]
            if stop():
                return
    finally:
        # Also runs when the consumer abandons the generator: drop queued decodes and let
        # the few running ones finish in the background instead of waiting.
        cancelled.set()
        pool.shutdown(wait=False, cancel_futures=True)


def stack_decoded(decoded: Sequence[Decoded]) -> tuple[list[int], np.ndarray | None]:
    """The indices of the files that decoded, and their pixels as one float32 batch."""
    good = [i for i, item in enumerate(decoded) if isinstance(item, np.ndarray)]
    if not good:
        return good, None
    return good, np.stack([decoded[i] for i in good]).astype(np.float32)


# A frame of one flat colour shows no item (a lens cap, a misfire, a white sheet): the model
# would still name its nearest class, a black frame as a confident Television. Its grey
# levels vary by under 1 (of 255, as a standard deviation) at the model's input size, sensor
# noise averaged away; the dataset's 3,000 images vary by 11 at least, and the 2,100
# station-style variants of validation (cut-outs, dimmed, blurred ...) by 3.3. Judged on the
# whole input, as the model sees it: the white bars of a letterbox model make a non-square
# blank frame vary, so there it catches square ones only.
BLANK_FRAME_STD = 1.0


def is_blank(image: np.ndarray) -> bool:
    """Whether a model input (H, W, 3, values 0-255) is one flat colour."""
    return float(image.mean(axis=-1).std()) < BLANK_FRAME_STD


def predictions_for(
    paths: Sequence[str],
    decoded: Sequence[Decoded],
    predict: Predictor,
    unknown_threshold: float | None = None,
) -> list[Prediction]:
    """One Prediction per path: the predictor's output, or the reason the file failed.
    With `unknown_threshold` (a model that detects unknown items), a row whose unknown score
    is over it is marked unknown, and so is a blank frame."""
    good, batch = stack_decoded(decoded)
    rows: dict[int, int] = {index: row for row, index in enumerate(good)}
    probabilities = maps = scores = None
    if batch is not None:
        probabilities, maps, scores = predict(batch)
    predictions = []
    for i, path in enumerate(paths):
        row = rows.get(i)
        if row is None:
            reason = decoded[i] if isinstance(decoded[i], str) else CANCELLED_REASON
            predictions.append(Prediction.failed(path, reason))
            continue
        assert probabilities is not None and batch is not None  # rows: only when predicted
        score = None if scores is None else float(scores[row])
        problem = output_problem(probabilities[row])
        if problem is None and score is not None and not math.isfinite(score):
            problem = NON_FINITE_SCORE_REASON  # NaN > threshold: an unknown item taken for known
        if problem is not None:
            # Never an "ok" row with a confidence of 2680 %, never a CAM.
            predictions.append(Prediction.failed(path, problem))
            continue
        top = int(probabilities[row].argmax())
        # Only the predicted class's map is kept (Prediction copies it).
        cam = None if maps is None else maps[row, :, :, top]
        unknown = None
        if score is not None and unknown_threshold is not None:
            unknown = score > unknown_threshold or is_blank(batch[row])
        predictions.append(
            Prediction(path, probabilities[row], cam=cam, unknown_score=score, unknown=unknown)
        )
    return predictions


def output_problem(row: np.ndarray) -> str | None:
    """Why one output row is not a probability vector, or None when it is one."""
    if not np.isfinite(row).all():
        return NON_FINITE_REASON
    low, high, total = float(row.min()), float(row.max()), float(row.sum())
    tolerance = PROBABILITY_TOLERANCE
    if low < -tolerance or high > 1 + tolerance or abs(total - 1) > tolerance:
        return f"{NOT_PROBABILITIES_REASON} (values {low:.3g} to {high:.3g}, sum {total:.3g})"
    return None


def _is_output_problem(prediction: Prediction) -> bool:
    error = prediction.error or ""
    return error in (NON_FINITE_REASON, NON_FINITE_SCORE_REASON) or error.startswith(
        NOT_PROBABILITIES_REASON
    )


def _stop_on_a_broken_model(batches: Iterator[list[Prediction]]) -> Iterator[list[Prediction]]:
    """Yield `batches`; raise ModelOutputError once most rows so far were not probabilities.

    The batch that tips the balance is yielded first, so its rows are kept."""
    predicted = bad = 0
    for batch in batches:
        yield batch
        predicted += sum(p.ok or _is_output_problem(p) for p in batch)
        bad += sum(_is_output_problem(p) for p in batch)
        if predicted >= MIN_ROWS_JUDGED and bad > MAX_BAD_OUTPUT_SHARE * predicted:
            raise ModelOutputError(
                f"the model's outputs were not probabilities for {bad} of {predicted} "
                "photos: it is not a usable classifier, so the run stopped"
            )


def classify_paths(
    paths: Sequence[str | os.PathLike[str]],
    predict: Predictor,
    size: tuple[int, int],
    resize: str,
    *,
    batch_size: int = 32,
    workers: int = 1,
    should_stop: StopCheck | None = None,
    flip_average: bool = False,
    unknown_threshold: float | None = None,
) -> Iterator[list[Prediction]]:
    """Yield one list of Predictions per batch of `paths`, in input order. Bad files never
    raise; see `decoded_batches` for decoding ahead and stopping. Rows whose output is not
    a probability vector become error rows, and a model that fails on most rows raises
    ModelOutputError (after yielding the rows so far)."""
    batches = decoded_batches(
        paths, size, resize, batch_size=batch_size, workers=workers, should_stop=should_stop
    )
    predict = flip_averaged(predict) if flip_average else predict
    predicted = (
        predictions_for(batch_paths, decoded, predict, unknown_threshold)
        for batch_paths, decoded in batches
    )
    return _stop_on_a_broken_model(predicted)


def _wait_unless_stopped(futures: list[Future[Decoded]], stop: StopCheck) -> bool:
    """Wait for all `futures`; False as soon as `stop()` says so (checked every poll).

    Stop signals are held meanwhile and raised after (`stop_signals_held`): one raised
    inside the wait, while it held a future's lock, left the lock taken; the decode thread
    that then finished that future blocked on it for ever, and the stopped command hung at
    exit, joining that thread.
    """
    if stop():  # asked before any wait: decodes already done are not yielded either
        return False
    with stop_signals_held() as arrived:
        for future in futures:
            while not future.done():
                if stop() or arrived:
                    return False
                with contextlib.suppress(FuturesTimeout, CancelledError):
                    future.exception(timeout=STOP_POLL_SECONDS)
    return True

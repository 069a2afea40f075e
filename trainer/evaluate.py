"""Evaluate a Keras model on one split and write metrics.json, pictures, predictions and report.

Images go through `desktop.core.preprocessing.load_model_input`, the function the station app
uses, so the accuracy reported here is the accuracy of the pixels the app will feed. Every
artefact (metrics.json, report.md, the pictures) comes from one metrics dict.

Artefacts in the run folder (for a split other than test, names get a `_<split>` suffix):
  metrics.json          {"<split>": {...}, "training": {...}} (other keys already there are kept)
  predictions.csv       path, true, predicted, confidence, correct, true_probability
  confusion_matrix.png  training_curves.png (when a history exists)  misclassified.png
  report.md
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from desktop.core.preprocessing import DEFAULT_RESIZE, ImageLoadError, load_model_input, mirror
from trainer import plots
from trainer.audit import DEFAULT_HASH_DISTANCE, paths_without_duplicates, run_audit
from trainer.config import recorded_resize
from trainer.dataset import Dataset, Sample, load_dataset
from trainer.errors import TrainerError
from trainer.files import write_json_atomic, write_text_atomic
from trainer.metrics import accuracy_summary, classification_metrics, cross_entropy, history_summary
from trainer.report import write_report

METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
HISTORY_FILE = "history.json"
MAX_MISCLASSIFIED_SHOWN = 36
# Tolerance for "these outputs already are probabilities" (float32 softmax rounding).
_PROBABILITY_TOLERANCE = 1e-3


class EvaluationError(TrainerError):
    """The model cannot be evaluated on this data; the message says why."""


# ---------------------------------------------------------------------------------------------
# Model helpers


def model_input_size(model: Any) -> tuple[int, int]:
    """(height, width) of a Keras image model's single NHWC RGB input."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise EvaluationError(f"the model has {len(shape)} inputs; expected one image input")
        shape = shape[0]
    shape = tuple(shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] != 3:
        raise EvaluationError(
            f"model input shape {shape} is not (batch, height, width, 3) with a fixed size"
        )
    return int(shape[1]), int(shape[2])


def _probability_output(raw: Any) -> np.ndarray:
    """The (N, C) class output of a model that may also have other outputs (e.g. a CAM)."""
    if isinstance(raw, Mapping):
        raw = raw["probabilities"] if "probabilities" in raw else list(raw.values())
    if isinstance(raw, (list, tuple)):
        matrices = [np.asarray(v) for v in raw if np.asarray(v).ndim == 2]
        if not matrices:
            raise EvaluationError("the model has no (batch, classes) output")
        raw = matrices[0]
    return np.asarray(raw, dtype=np.float64)


def _as_probabilities(outputs: np.ndarray) -> tuple[np.ndarray, bool]:
    """The outputs as probabilities, and whether they had to be softmaxed (logits)."""
    in_range = (
        outputs.min() >= -_PROBABILITY_TOLERANCE and outputs.max() <= 1 + _PROBABILITY_TOLERANCE
    )
    sums_to_one = np.allclose(outputs.sum(axis=1), 1.0, atol=_PROBABILITY_TOLERANCE)
    if in_range and sums_to_one:
        return np.clip(outputs, 0.0, 1.0), False
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True), True


def predict_samples(
    model: Any,
    samples: Sequence[Sample],
    image_size: tuple[int, int],
    *,
    batch_size: int = 64,
    tta_flip: bool = False,
    resize: str = DEFAULT_RESIZE,
) -> tuple[np.ndarray, list[Sample], list[tuple[Sample, str]], bool]:
    """Predict class probabilities for readable samples, in batches.

    Returns (probabilities for the kept samples, kept samples, skipped samples with the
    reason, whether the model returned logits). With `tta_flip` each image is also
    predicted mirrored left-right and the two probability vectors are averaged.
    """
    if batch_size < 1:
        raise EvaluationError(f"batch size must be at least 1, got {batch_size}")
    kept: list[Sample] = []
    skipped: list[tuple[Sample, str]] = []
    chunks: list[np.ndarray] = []
    were_logits = False
    for start in range(0, len(samples), batch_size):
        pixels = []
        for sample in samples[start : start + batch_size]:
            try:
                pixels.append(load_model_input(sample.path, image_size, resize))
                kept.append(sample)
            except ImageLoadError as exc:
                skipped.append((sample, exc.reason))
        if not pixels:
            continue
        batch = np.stack(pixels)
        probabilities, logits = _as_probabilities(
            _probability_output(model.predict_on_batch(batch))
        )
        if tta_flip:
            flipped, _ = _as_probabilities(
                _probability_output(model.predict_on_batch(mirror(batch)))
            )
            probabilities = (probabilities + flipped) / 2.0
        were_logits = were_logits or logits
        chunks.append(probabilities)
    if not chunks:
        return np.zeros((0, 0)), kept, skipped, were_logits
    return np.concatenate(chunks), kept, skipped, were_logits


# ---------------------------------------------------------------------------------------------
# Metrics dict


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _dedup_metrics(
    audit: Mapping[str, Any],
    split: str,
    paths: Sequence[str],
    y_true: np.ndarray,
    probabilities: np.ndarray,
) -> dict[str, Any]:
    """Accuracy on the images of `split` that have no duplicate in an earlier split."""
    known = set(audit.get("usable_images", {}).get(split, []))
    known |= {
        u["path"] for u in audit.get("unreadable", {}).get("files", []) if u["split"] == split
    }
    unknown = [p for p in paths if p not in known]
    if unknown:
        raise EvaluationError(
            f"the audit does not describe this dataset: {len(unknown)} {split} image(s) are not "
            f"in it (first: {unknown[0]}); re-run the audit on this dataset"
        )
    keep = paths_without_duplicates(dict(audit), split)
    mask = np.array([p in keep for p in paths], dtype=bool)
    result: dict[str, Any] = {
        "hash_threshold": audit.get("hashing", {}).get("near_threshold"),
        "excluded": int((~mask).sum()),
        "excluded_paths": [p for p, k in zip(paths, mask, strict=True) if not k],
    }
    if not mask.any():
        return {
            "n": 0,
            "correct": 0,
            "accuracy": None,
            "accuracy_ci95": None,
            "loss": None,
            **result,
        }
    correct = probabilities[mask].argmax(axis=1) == y_true[mask]
    return {
        **accuracy_summary(correct),
        "loss": cross_entropy(probabilities[mask], y_true[mask]),
        **result,
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"cannot read {path}: {exc}") from exc
    return value if isinstance(value, dict) else None


def artefact_name(name: str, split: str) -> str:
    """The file name of a report artefact for `split` (test keeps the plain name)."""
    stem, dot, suffix = name.partition(".")
    return name if split == "test" else f"{stem}_{split}{dot}{suffix}"


def _write_predictions(
    path: Path,
    paths: Sequence[str],
    y_true: np.ndarray,
    probabilities: np.ndarray,
    names: Sequence[str],
) -> None:
    y_pred = probabilities.argmax(axis=1)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["path", "true", "predicted", "confidence", "correct", "true_probability"])
    for rel, t, p, row in zip(paths, y_true, y_pred, probabilities, strict=True):
        writer.writerow([rel, names[t], names[p], f"{row[p]:.6f}", int(t == p), f"{row[t]:.6f}"])
    write_text_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# Entry points


def evaluate_model(
    model: Any,
    dataset: Dataset,
    *,
    run_dir: str | Path,
    split: str = "test",
    image_size: tuple[int, int] | None = None,
    resize: str = DEFAULT_RESIZE,
    audit: Mapping[str, Any] | None = None,
    history: Mapping[str, Sequence[float]] | None = None,
    tta_flip: bool = False,
    batch_size: int = 64,
    run_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on `dataset.splits[split]`; write every artefact into `run_dir`.

    image_size: (height, width); default: the model's input size.
    resize: the model's resize mode (desktop.core.preprocessing.RESIZE_MODES).
    audit: a `trainer.audit.run_audit` result for this dataset; adds the accuracy without
        images that have duplicates in earlier splits (test: train/val; val: train).
    history: Keras History.history-style dict; default: run_dir/history.json if present.
    run_config: shown in the report; default: run_dir/run.json if present.
    Returns the whole metrics.json dict. Raises EvaluationError when nothing can be scored.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if split not in dataset.splits:
        raise EvaluationError(f"the dataset has no {split!r} split")
    image_size = tuple(image_size) if image_size else model_input_size(model)
    names = list(dataset.class_names)

    probabilities, kept, skipped, were_logits = predict_samples(
        model,
        dataset.splits[split].samples,
        image_size,
        batch_size=batch_size,
        tta_flip=tta_flip,
        resize=resize,
    )
    if not kept:
        raise EvaluationError(f"no readable images in the {split} split")
    if probabilities.shape[1] != len(names):
        raise EvaluationError(
            f"the model predicts {probabilities.shape[1]} classes but the dataset has "
            f"{len(names)}: {', '.join(names)}"
        )
    root = dataset.root
    paths = [_relative(s.path, root) for s in kept]
    y_true = np.array([s.label for s in kept], dtype=np.int64)

    result = classification_metrics(y_true, probabilities, names)
    y_pred = probabilities.argmax(axis=1)
    wrong = [
        {
            "path": paths[i],
            "true": names[y_true[i]],
            "predicted": names[y_pred[i]],
            "confidence": float(probabilities[i, y_pred[i]]),
        }
        for i in np.flatnonzero(y_pred != y_true)
    ]
    result["misclassified"] = sorted(wrong, key=lambda x: (-x["confidence"], x["path"]))
    if audit is not None and split in ("val", "test"):
        result["dedup"] = _dedup_metrics(audit, split, paths, y_true, probabilities)
    result["evaluation"] = {
        "split": split,
        "dataset_root": str(Path(root).resolve()),
        "image_size": list(image_size),
        "preprocessing": "desktop.core.preprocessing.load_model_input",
        "resize": resize,
        "tta_flip": tta_flip,
        "batch_size": batch_size,
        "outputs_were_logits": were_logits,
        "skipped": [{"path": _relative(s.path, root), "reason": r} for s, r in skipped],
    }

    if history is None:
        history = _read_json(run_dir / HISTORY_FILE)
    if run_config is None:
        run_config = _read_json(run_dir / RUN_FILE)
    metrics = _read_json(run_dir / METRICS_FILE) or {}
    metrics[split] = result
    if history:
        metrics["training"] = history_summary(history)
    write_json_atomic(run_dir / METRICS_FILE, metrics)

    _write_predictions(
        run_dir / artefact_name("predictions.csv", split), paths, y_true, probabilities, names
    )
    pictures = {
        "confusion_matrix": plots.confusion_matrix(
            result["confusion_matrix"],
            names,
            run_dir / artefact_name("confusion_matrix.png", split),
        ).name,
        "misclassified": plots.misclassified_grid(
            result["misclassified"][:MAX_MISCLASSIFIED_SHOWN],
            root,
            run_dir / artefact_name("misclassified.png", split),
            total=len(result["misclassified"]),
        ).name,
    }
    if history:
        pictures["training_curves"] = plots.training_curves(
            history, run_dir / "training_curves.png"
        ).name
    write_report(
        run_dir / artefact_name("report.md", split),
        metrics,
        split,
        pictures=pictures,
        run_config=run_config,
    )
    return metrics


def _class_names_from_run(run_config: Mapping[str, Any] | None) -> list[str] | None:
    if not run_config:
        return None
    for holder in (run_config, run_config.get("dataset"), run_config.get("data")):
        if isinstance(holder, Mapping) and isinstance(holder.get("class_names"), list):
            return [str(n) for n in holder["class_names"]]
    return None


def _keras_model(model_path: Path) -> Any:
    import keras  # only here: metrics and reports need no TensorFlow

    try:
        # compile=False: evaluation needs neither the optimizer nor the training loss.
        return keras.saving.load_model(model_path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise EvaluationError(f"cannot load the Keras model {model_path}: {exc}") from exc


class _OnnxModel:
    """An exported file run by the station app's own engine, seen through the few Keras
    attributes evaluation uses: the figures are those of the file that ships."""

    def __init__(self, engine: Any):
        self.engine = engine
        height, width = engine.input_size
        self.input_shape = (None, height, width, 3)
        self.output_shape = (None, len(engine.class_names))

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.predict_batch(batch)


def _onnx_model(model_path: Path) -> tuple[_OnnxModel, str]:
    from desktop.core.engine import Engine
    from desktop.core.model_info import ModelError

    try:
        engine = Engine(model_path)
    except ModelError as exc:
        raise EvaluationError(str(exc)) from exc
    return _OnnxModel(engine), engine.info.resize


def evaluate_saved_model(
    model_path: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test",
    tta_flip: bool = False,
    batch_size: int = 64,
    audit: bool = True,
    hash_distance: int = DEFAULT_HASH_DISTANCE,
) -> dict[str, Any]:
    """`ewaste-train evaluate MODEL --data DIR`: evaluate a saved .keras model, or an
    exported .onnx file through the app's engine (its metadata gives size and resize).

    The input size comes from the model, the class names from run.json next to the model
    when present (else from the dataset), and must match the dataset's classes and the
    model's output width. With `audit`, the dataset is audited into out_dir/audit first so
    the report includes the de-duplicated accuracy. history.json next to the model, when
    present, gives the training curves.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise EvaluationError(f"model file not found: {model_path}")
    if model_path.suffix.lower() == ".onnx":
        model, resize = _onnx_model(model_path)
    else:
        model, resize = _keras_model(model_path), None

    dataset = load_dataset(data_dir)
    run_config = _read_json(model_path.parent / RUN_FILE)
    if isinstance(model, _OnnxModel):  # the file names its classes itself
        trained = list(model.engine.class_names)
    else:
        trained = _class_names_from_run(run_config)
    if trained is not None and trained != list(dataset.class_names):
        raise EvaluationError(
            f"the model was trained on classes {trained} but the dataset has "
            f"{list(dataset.class_names)}"
        )
    names = trained or list(dataset.class_names)
    output_shape = model.output_shape
    if isinstance(output_shape, Mapping):
        output_shape = output_shape.get("probabilities", next(iter(output_shape.values())))
    if isinstance(output_shape, list):
        output_shape = output_shape[0]
    if output_shape[-1] != len(names):
        raise EvaluationError(
            f"the model outputs {output_shape[-1]} classes but there are {len(names)}: "
            f"{', '.join(names)}"
        )

    out = Path(out_dir)
    audit_result = run_audit(data_dir, out / "audit", hash_distance) if audit else None
    return evaluate_model(
        model,
        dataset,
        run_dir=out,
        split=split,
        image_size=model_input_size(model),
        resize=resize or recorded_resize(run_config),
        audit=audit_result,
        history=_read_json(model_path.parent / HISTORY_FILE),
        tta_flip=tta_flip,
        batch_size=batch_size,
        run_config=run_config,
    )

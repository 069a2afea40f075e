"""Evaluate a Keras model on one split and write metrics.json, pictures, predictions and report.

Images go through the station app's own prediction loop (`desktop.core.prediction_loop`,
see `trainer.split_predictions`), so the accuracy reported here is the accuracy of the
pixels the app will feed. Every artefact (metrics.json, report.md, the pictures) comes from
one metrics record (`trainer.run_folder.Metrics`).

Artefacts in the run folder (for a split other than test, names get a `_<split>` suffix):
  metrics.json          {"<split>": {...}, "training": {...}} (other keys already there are kept)
  predictions.csv       path, true, predicted, confidence, correct, true_probability
  confusion_matrix.png  training_curves.png (when a history exists)  misclassified.png
  report.md
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from desktop.core.csv_export import text_cell
from desktop.core.hashing import file_sha256
from desktop.core.prediction_loop import Predictor
from desktop.core.preprocessing import DEFAULT_RESIZE
from trainer import plots
from trainer.audit import DEFAULT_HASH_DISTANCE, run_audit
from trainer.dataset import Dataset, load_dataset
from trainer.files import write_text_atomic
from trainer.metrics import accuracy_summary, classification_metrics, cross_entropy, history_summary
from trainer.report import artefact_name, write_report
from trainer.run_folder import (
    Audit,
    Metrics,
    RunRecord,
    audit_folder,
    read_history,
    read_metrics,
    read_run,
    relative_data_dir,
    write_metrics,
)
from trainer.saved_model import load_saved_model
from trainer.split_predictions import EvaluationError, SplitPredictions, predict_samples

MAX_MISCLASSIFIED_SHOWN = 36


# ---------------------------------------------------------------------------------------------
# Metrics dict


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _dedup_metrics(
    audit: Audit,
    split: str,
    paths: Sequence[str],
    y_true: np.ndarray,
    probabilities: np.ndarray,
) -> dict[str, Any]:
    """Accuracy on the images of `split` that have no duplicate in an earlier split."""
    known = audit.known_paths(split)
    unknown = [p for p in paths if p not in known]
    if unknown:
        raise EvaluationError(
            f"the audit does not describe this dataset: {len(unknown)} {split} image(s) are not "
            f"in it (first: {unknown[0]}); re-run the audit on this dataset"
        )
    keep = audit.paths_without_duplicates(split)
    mask = np.array([p in keep for p in paths], dtype=bool)
    result: dict[str, Any] = {
        "hash_threshold": audit.near_threshold,
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
        # Names as cells, never formulas: a folder may be called "=HYPERLINK(...)".
        cells = [text_cell(rel), text_cell(names[t]), text_cell(names[p])]
        writer.writerow([*cells, f"{row[p]:.6f}", int(t == p), f"{row[t]:.6f}"])
    write_text_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# Entry points


def evaluate_model(
    predict: Predictor,
    dataset: Dataset,
    *,
    run_dir: str | Path,
    image_size: tuple[int, int],
    split: str = "val",  # the test split only when asked: it is read once
    resize: str = DEFAULT_RESIZE,
    audit: Audit | None = None,
    history: Mapping[str, Sequence[float]] | None = None,
    tta_flip: bool = False,
    batch_size: int = 64,
    run: RunRecord | None = None,
    unknown_threshold: float | None = None,
    model_file: Path | None = None,
) -> dict[str, Any]:
    """Evaluate a model on `dataset.splits[split]`; write every artefact into `run_dir`.

    predict: a `desktop.core.prediction_loop.Predictor`: `KerasPredictor(model)` or an
        `Engine.predict`.
    image_size: (height, width) of the model input; resize: its resize mode.
    audit: a `trainer.audit.run_audit` result for this dataset; adds the accuracy without
        images that have duplicates in earlier splits (test: train/val; val: train).
    history: Keras History.history-style dict; default: run_dir/history.json if present.
    run: shown in the report; default: run_dir/run.json if present.
    model_file: the file scored, named in the report by its name and SHA-256.
    Returns the whole metrics.json dict. Raises EvaluationError when nothing can be scored.
    """
    if split not in dataset.splits:
        raise EvaluationError(f"the dataset has no {split!r} split")
    predicted = predict_samples(
        predict,
        dataset.splits[split].samples,
        image_size,
        batch_size=batch_size,
        tta_flip=tta_flip,
        resize=resize,
        unknown_threshold=unknown_threshold,
    )
    result = split_result(predicted, dataset, split, audit)
    result["evaluation"] = {
        "split": split,
        "dataset_root": relative_data_dir(dataset.root, run_dir),
        "image_size": list(image_size),
        "preprocessing": "desktop.core.prediction_loop.classify_paths",
        "resize": resize,
        "tta_flip": tta_flip,
        "batch_size": batch_size,
        "model": None
        if model_file is None
        else {"file": model_file.name, "sha256": file_sha256(model_file)},
        "outputs_were_logits": predicted.were_logits,
        "skipped": [
            {"path": _relative(sample.path, dataset.root), "reason": reason}
            for sample, reason in predicted.skipped
        ],
    }
    return _write_evaluation(
        Path(run_dir), dataset, split, predicted, result, history=history, run=run
    )


def split_result(
    predicted: SplitPredictions,
    dataset: Dataset,
    split: str,
    audit: Audit | None,
) -> dict[str, Any]:
    """The metrics of one split: accuracy, loss, per class, confusion, mistakes, dedup."""
    names = list(dataset.class_names)
    probabilities = predicted.probabilities
    if not predicted.kept:
        raise EvaluationError(f"no readable images in the {split} split")
    if probabilities.shape[1] != len(names):
        raise EvaluationError(
            f"the model predicts {probabilities.shape[1]} classes but the dataset has "
            f"{len(names)}: {', '.join(names)}"
        )
    paths = [_relative(sample.path, dataset.root) for sample in predicted.kept]
    y_true = np.array([sample.label for sample in predicted.kept], dtype=np.int64)
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
    if predicted.unknown is not None:
        result["open_set"] = _open_set_metrics(predicted.unknown, y_pred == y_true)
    return result


def _open_set_metrics(unknown: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """How many known items the model called unknown, and its accuracy on the rest."""
    accepted = ~unknown
    return {
        "rejected": int(unknown.sum()),
        "rejected_rate": float(unknown.mean()),
        "accepted": int(accepted.sum()),
        "accuracy_on_accepted": float(correct[accepted].mean()) if accepted.any() else None,
    }


def _write_evaluation(
    run_dir: Path,
    dataset: Dataset,
    split: str,
    predicted: SplitPredictions,
    result: dict[str, Any],
    *,
    history: Mapping[str, Sequence[float]] | None,
    run: RunRecord | None,
) -> dict[str, Any]:
    """Merge `result` into metrics.json and write the split's CSV, pictures and report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    names = list(dataset.class_names)
    if history is None:
        recorded = read_history(run_dir)
        history = recorded.series if recorded else None
    if run is None:
        run = read_run(run_dir)
    record = (read_metrics(run_dir) or Metrics()).with_split(split, result)
    if history:
        record = replace(record, training=history_summary(history))
    write_metrics(run_dir, record)
    metrics = record.to_json()

    paths = [_relative(sample.path, dataset.root) for sample in predicted.kept]
    y_true = np.array([sample.label for sample in predicted.kept], dtype=np.int64)
    _write_predictions(
        run_dir / artefact_name("predictions.csv", split),
        paths,
        y_true,
        predicted.probabilities,
        names,
    )
    pictures = {
        "confusion_matrix": plots.confusion_matrix(
            result["confusion_matrix"],
            names,
            run_dir / artefact_name("confusion_matrix.png", split),
        ).name,
        "misclassified": plots.misclassified_grid(
            result["misclassified"][:MAX_MISCLASSIFIED_SHOWN],
            dataset.root,
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
        run_config=run.to_json() if run else None,
    )
    return metrics


def _resize_to_use(model_path: Path, recorded: str | None, given: str | None) -> str:
    """The resize the model's file or run.json records, or the one given for a model that
    records none."""
    if recorded and given and given != recorded:
        raise EvaluationError(f"{model_path} was trained with --resize {recorded}, not {given}")
    if recorded or given:
        return recorded or given
    raise EvaluationError(
        f"there is no run.json next to {model_path} to say how its images were resized: "
        "pass --resize stretch or --resize letterbox"
    )


def evaluate_saved_model(
    model_path: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "val",  # the test split only when asked: it is read once
    tta_flip: bool = False,
    batch_size: int = 64,
    audit: bool = True,
    hash_distance: int = DEFAULT_HASH_DISTANCE,
    resize: str | None = None,
) -> dict[str, Any]:
    """`ewaste-train evaluate MODEL --data DIR`: evaluate a saved .keras model, or an
    exported .onnx file through the app's engine (its metadata gives size and resize).
    `resize`: how a .keras model with no run.json beside it was trained (else refused:
    images resized another way than in training give wrong figures without a sign).

    The input size comes from the model, the class names from the .onnx file or from
    run.json next to a .keras model when present (else from the dataset), and must match
    the dataset's classes and the model's output width. With `audit`, the dataset is
    audited into out_dir/audit first so the report includes the de-duplicated accuracy.
    history.json next to the model, when present, gives the training curves.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise EvaluationError(f"model file not found: {model_path}")
    model = load_saved_model(model_path)

    dataset = load_dataset(data_dir)
    run = read_run(model_path.parent)
    if run is not None:  # the report shows data_dir: relative, even from an older run
        run = run.moved(model_path.parent, to=model_path.parent)
    recorded_names = list(run.class_names) if run and run.class_names else None
    trained = model.class_names or recorded_names
    if trained is not None and trained != list(dataset.class_names):
        raise EvaluationError(
            f"the model was trained on classes {trained} but the dataset has "
            f"{list(dataset.class_names)}"
        )
    names = trained or list(dataset.class_names)
    if model.num_classes != len(names):
        raise EvaluationError(
            f"the model outputs {model.num_classes} classes but there are {len(names)}: "
            f"{', '.join(names)}"
        )

    out = Path(out_dir)
    resize = _resize_to_use(model_path, model.resize or (run and run.resize), resize)
    audit_result = run_audit(data_dir, audit_folder(out), hash_distance) if audit else None
    history = read_history(model_path.parent)
    return evaluate_model(
        model.predict,
        dataset,
        run_dir=out,
        split=split,
        image_size=model.input_size,
        resize=resize,
        audit=audit_result,
        history=history.series if history else None,
        tta_flip=tta_flip,
        batch_size=batch_size,
        run=run,
        unknown_threshold=model.unknown_threshold,
        model_file=model_path,
    )

"""Prove that the ONNX file computes what the Keras model computes.

Three comparisons, all against the Keras inference model at training=False:
  random    synthetic 0-255 tensors (black, white, noise, colour ramps), every output
  images    real files decoded by the app's prediction loop (desktop.core.prediction_loop),
            each batch run through Keras and ONNX Runtime, every output
  engine    the same files through the station app's `Engine.classify` (its own decoder
            threads, batching and session options) against the Keras probabilities
The ONNX side of `random` and `images` is the app's own Engine too: it validates the
metadata, uses the app's session options and pads static batches, so parity tests what
the app runs. The Keras side is `trainer.keras_predictor.KerasPredictor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from converter.keras_model import output_names, sample_inputs
from desktop.core.engine import Engine, ModelError
from desktop.core.model_info import CAM_OUTPUT, PROBABILITIES_OUTPUT
from desktop.core.prediction_loop import Outputs, decoded_batches, stack_decoded
from trainer.keras_predictor import KerasPredictor

# Any probability may differ by at most this between Keras and ONNX Runtime.
PROB_MAX_DIFF = 1e-5
# CAM_OUTPUT values are unbounded scores (sums over ~1280 channels): relative to their magnitude.
CAM_REL_DIFF = 1e-4
# The engine target, end to end from files (its own decoder threads, batching, session).
ENGINE_MAX_DIFF = 1e-4
BATCH_SIZE = 32
DECODE_WORKERS = 2
RANDOM_COUNT = 8
# The report lists at most this many individual disagreements per section.
MAX_LISTED = 50
NO_IMAGES_NOTE = (
    "no real images (no --check-images, and the validation split of run.json's data_dir is not on "
    "this machine): only random tensors were compared; the image-file checks (the trainer's "
    "decoding through ONNX Runtime, and the app's Engine end to end) were skipped"
)


def named_outputs(outputs: Outputs) -> dict[str, np.ndarray]:
    """A predictor's probabilities and maps keyed by the ONNX contract's output names."""
    named = {PROBABILITIES_OUTPUT: outputs.probabilities}
    if outputs.maps is not None:
        named[CAM_OUTPUT] = outputs.maps
    return named


@dataclass
class _OutputStats:
    max_abs_diff: float = 0.0
    abs_sum: float = 0.0
    count: int = 0
    max_abs_value: float = 0.0  # of the Keras output, to scale the CAM_OUTPUT tolerance

    def update(self, expected: np.ndarray, actual: np.ndarray) -> None:
        diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
        self.max_abs_diff = max(self.max_abs_diff, float(diff.max(initial=0.0)))
        self.abs_sum += float(diff.sum())
        self.count += diff.size
        self.max_abs_value = max(self.max_abs_value, float(np.abs(expected).max(initial=0.0)))

    def to_dict(self) -> dict[str, float]:
        return {
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.abs_sum / self.count if self.count else 0.0,
            "max_abs_keras_value": self.max_abs_value,
        }


@dataclass
class _Section:
    """Running comparison of one input source (random tensors, image files or the engine)."""

    name: str
    tolerance: float
    count: int = 0
    top1_agree: int = 0
    outputs: dict[str, _OutputStats] = field(default_factory=dict)
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    ties: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # shape or dtype mismatches

    def update(
        self,
        labels: Sequence[str],
        expected: dict[str, np.ndarray],
        actual: dict[str, np.ndarray],
    ) -> None:
        for name, value in expected.items():
            got = actual[name]
            if got.shape != value.shape or got.dtype != np.float32:
                problem = (
                    f"{self.name}: output '{name}' is {got.dtype}{list(got.shape)}, Keras gives "
                    f"{value.dtype}{list(value.shape)}"
                )
                if problem not in self.problems:
                    self.problems.append(problem)
                return
            self.outputs.setdefault(name, _OutputStats()).update(value, got)
        keras_probs, onnx_probs = expected[PROBABILITIES_OUTPUT], actual[PROBABILITIES_OUTPUT]
        keras_top, onnx_top = keras_probs.argmax(axis=1), onnx_probs.argmax(axis=1)
        self.count += len(labels)
        self.top1_agree += int((keras_top == onnx_top).sum())
        for row in np.flatnonzero(keras_top != onnx_top):
            entry = {
                "input": labels[row],
                "keras_top1": int(keras_top[row]),
                "keras_prob": float(keras_probs[row, keras_top[row]]),
                "onnx_top1": int(onnx_top[row]),
                "onnx_prob": float(onnx_probs[row, onnx_top[row]]),
            }
            # Two classes within the tolerance of each other are a tie, not a disagreement:
            # either answer is right to the precision that parity demands.
            margin = keras_probs[row, keras_top[row]] - keras_probs[row, onnx_top[row]]
            target = self.ties if margin <= self.tolerance else self.disagreements
            target.append(entry)

    def failures(self) -> list[str]:
        found = list(self.problems)
        probs = self.outputs.get(PROBABILITIES_OUTPUT)
        if probs is not None and probs.max_abs_diff > self.tolerance:
            found.append(
                f"{self.name}: max probability difference {probs.max_abs_diff:.3g} > "
                f"{self.tolerance:g}"
            )
        cam = self.outputs.get(CAM_OUTPUT)
        if cam is not None:
            allowed = CAM_REL_DIFF * max(1.0, cam.max_abs_value)
            if cam.max_abs_diff > allowed:
                found.append(
                    f"{self.name}: max CAM_OUTPUT difference {cam.max_abs_diff:.3g} > {allowed:.3g}"
                )
        if self.disagreements:
            found.append(
                f"{self.name}: top-1 differs for {len(self.disagreements)} of {self.count}"
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "top1_agreement": self.top1_agree / self.count if self.count else None,
            "top1_disagreements": len(self.disagreements),
            "outputs": {name: stats.to_dict() for name, stats in self.outputs.items()},
            "disagreements": self.disagreements[:MAX_LISTED],
            "ties_within_tolerance": self.ties[:MAX_LISTED],
        }


@dataclass
class ParityReport:
    keras_model: str
    onnx_model: str
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "keras_model": self.keras_model,
            "onnx_model": self.onnx_model,
            "thresholds": {
                "probability_max_abs_diff": PROB_MAX_DIFF,
                "cam_max_abs_diff_relative": CAM_REL_DIFF,
                "engine_probability_max_abs_diff": ENGINE_MAX_DIFF,
                "top1": "identical (a difference between classes tied within the threshold "
                "is listed as a tie, not a failure)",
            },
            "failures": self.failures,
            "notes": self.notes,
            **self.sections,
        }

    def summary(self) -> str:
        parts = []
        for name in ("random", "images", "engine"):
            section = self.sections.get(name)
            if not section or not section.get("count"):
                continue
            probs = section["outputs"].get(PROBABILITIES_OUTPUT, {})
            parts.append(
                f"{name} n={section['count']}: max diff {probs.get('max_abs_diff', 0):.2e}, "
                f"mean {probs.get('mean_abs_diff', 0):.2e}, "
                f"top-1 agreement {section['top1_agreement']:.2%}"
            )
        return "; ".join(parts)


def check_parity(
    inference_model: keras.Model,
    keras_path: Path,
    onnx_path: Path,
    size: tuple[int, int],
    image_paths: Sequence[Path],
    image_source: str | None,
    run_engine: bool = True,
    log=print,
    onnx_file: Path | None = None,
) -> ParityReport:
    """Compare Keras and ONNX Runtime on random tensors and on `image_paths`.

    `onnx_file` is the file actually opened when it is not yet at `onnx_path` (export
    checks a temporary file before moving it into place).
    """
    report = ParityReport(keras_model=str(keras_path), onnx_model=str(onnx_path))
    try:
        engine = Engine(onnx_file or onnx_path)
    except ModelError as exc:
        report.failures.append(f"the app cannot load the model: {exc}")
        return report
    keras_predict = KerasPredictor(inference_model)
    names = output_names(inference_model)
    if CAM_OUTPUT in names and engine.info.cam_output is None:
        report.failures.append(f"the ONNX model has no '{CAM_OUTPUT}' output, the Keras model has")
        return report

    random = _Section("random", PROB_MAX_DIFF)
    batch = sample_inputs(size, RANDOM_COUNT)
    random.update(
        [f"random[{i}]" for i in range(len(batch))],
        named_outputs(keras_predict(batch)),
        named_outputs(engine.predict(batch)),
    )
    report.sections["random"] = random.to_dict()
    report.failures += random.failures()

    if not image_paths:
        report.notes.append(NO_IMAGES_NOTE)
        report.sections["images"] = {"source": None, "count": 0}
        report.sections["engine"] = {"status": "skipped", "count": 0}
        return report
    log(f"parity: comparing Keras and ONNX Runtime on {len(image_paths)} images ({image_source})")
    keras_probs = _image_parity(keras_predict, engine, image_paths, image_source, report)
    if run_engine and keras_probs:
        report.sections["engine"] = _engine_parity(engine, keras_probs, report)
    return report


def _image_parity(
    keras_predict: KerasPredictor,
    engine: Engine,
    image_paths: Sequence[Path],
    image_source: str | None,
    report: ParityReport,
) -> dict[str, np.ndarray]:
    """Keras and ONNX Runtime on the same decoded batches; returns Keras's probabilities
    of each file, for the end-to-end comparison."""
    images = _Section("images", PROB_MAX_DIFF)
    keras_probs: dict[str, np.ndarray] = {}
    skipped: list[dict[str, str]] = []
    # Decoded as the model's metadata says, which is how the app will decode them.
    size = engine.input_size
    batches = decoded_batches(
        image_paths, size, engine.info.resize, batch_size=BATCH_SIZE, workers=DECODE_WORKERS
    )
    for paths, decoded in batches:
        good, batch = stack_decoded(decoded)
        skipped += [
            {"path": path, "reason": str(item)}
            for path, item in zip(paths, decoded, strict=True)
            if not isinstance(item, np.ndarray)
        ]
        if batch is None:
            continue
        labels = [paths[i] for i in good]
        expected = named_outputs(keras_predict(batch))
        images.update(labels, expected, named_outputs(engine.predict(batch)))
        keras_probs.update(zip(labels, expected[PROBABILITIES_OUTPUT], strict=True))
    report.sections["images"] = {"source": image_source, **images.to_dict(), "skipped": skipped}
    report.failures += images.failures()
    return keras_probs


def skipped_report(keras_path: Path, onnx_path: Path) -> dict[str, Any]:
    """MODEL.parity.json for an export with --no-parity: says nothing was checked."""
    return {
        "passed": None,
        "skipped": True,
        "keras_model": str(keras_path),
        "onnx_model": str(onnx_path),
        "failures": [],
        "notes": [
            "parity was not checked (--no-parity): nothing shows that this ONNX model "
            "computes what the Keras model computes"
        ],
    }


def _engine_parity(
    engine: Engine, keras_probs: dict[str, np.ndarray], report: ParityReport
) -> dict[str, Any]:
    """End to end: the app's Engine on the files vs Keras on load_model_input's pixels."""
    section = _Section("engine", ENGINE_MAX_DIFF)
    errors: list[dict[str, str]] = []
    for predictions in engine.classify(list(keras_probs), batch_size=BATCH_SIZE):
        for prediction in predictions:
            if prediction.probabilities is None:
                errors.append({"path": prediction.path, "error": str(prediction.error)})
                continue
            expected = keras_probs[prediction.path][None]
            actual = np.asarray(prediction.probabilities, dtype=np.float32)[None]
            section.update(
                [prediction.path], {PROBABILITIES_OUTPUT: expected}, {PROBABILITIES_OUTPUT: actual}
            )
    failures = section.failures()
    if errors:
        failures.append(f"engine: could not read {len(errors)} files Keras read")
    report.failures += failures
    return {"status": "failed" if failures else "passed", **section.to_dict(), "errors": errors}

"""A statically quantised INT8 copy, kept only if it is nearly as accurate as FP32.

Static (not dynamic) quantisation: convolutions dominate EfficientNet, and dynamic
quantisation would measure activation ranges again on every batch (ONNX Runtime's slow
ConvInteger path); static calibrates them once on training images. QDQ format with
per-channel weights is ONNX Runtime's recommended CPU setting; per-channel matters for
depthwise convolutions, whose channels have very different weight ranges.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from converter.errors import ConvertError
from converter.run_info import LabelledImages
from desktop.core.engine import Engine
from desktop.core.model_info import INPUT_NAME, encode_metadata
from desktop.core.preprocessing import ImageLoadError, load_model_input
from trainer.metrics import cross_entropy

# Keep the INT8 model only when it loses at most this much validation accuracy (0.5 points):
# decided on the validation split, so the test split stays unread until the model ships.
MAX_ACCURACY_DROP = 0.005
# uint8 activations with int8 weights (U8S8) is ONNX Runtime's fast x86 path: on a 2-core
# AVX-512 machine S8S8 ran at 0.6x the FP32 speed and U8S8 at 1.6x (EfficientNetV2B0, 128 px,
# batch 32). reduce_range (7-bit weights) avoids the U8S8 overflow of x86 CPUs without VNNI,
# so the accuracy measured here also holds on an older station PC.
ACTIVATION_TYPE = QuantType.QUInt8
WEIGHT_TYPE = QuantType.QInt8
REDUCE_RANGE = True
DEFAULT_CALIBRATION_IMAGES = 200
SPEED_BATCH = 32
SPEED_REPEATS = 7


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds training images, decoded exactly as for inference, `batch_size` at a time: 1
    for a model of dynamic batch, its own size for a static one (which takes no other).
    A last, short batch is filled up with repeats of its own images: MinMax calibration
    keeps each tensor's extremes, which repeated images do not change."""

    def __init__(
        self,
        input_name: str,
        paths: Sequence[Path],
        size: tuple[int, int],
        resize: str,
        batch_size: int = 1,
    ):
        self.input_name = input_name
        self.size = size
        self.resize = resize
        self.batch_size = batch_size
        self._paths = iter(paths)
        self.used = 0  # distinct images fed

    def get_next(self) -> dict[str, np.ndarray] | None:
        images: list[np.ndarray] = []
        for path in self._paths:
            try:
                images.append(load_model_input(path, self.size, self.resize))
            except ImageLoadError:
                continue
            if len(images) == self.batch_size:
                break
        if not images:
            return None
        self.used += len(images)
        images += [images[i % len(images)] for i in range(self.batch_size - len(images))]
        return {self.input_name: np.stack(images)}


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    size: tuple[int, int],
    calibration: LabelledImages,
    evaluation: LabelledImages,
    calibration_count: int = DEFAULT_CALIBRATION_IMAGES,
    log=print,
) -> dict[str, Any]:
    """Quantise `fp32_path`, compare accuracy and speed, keep `int8_path` only if good enough.

    Returns the report (also the decision); `int8_path` exists afterwards only when kept.
    """
    # Decoded as the model's metadata says, as the app will decode them.
    fp32_engine = Engine(fp32_path)
    resize = fp32_engine.info.resize
    chosen = list(calibration.paths)
    random.Random(0).shuffle(chosen)
    chosen = chosen[:calibration_count]
    with tempfile.TemporaryDirectory(dir=int8_path.parent, prefix=".int8-") as scratch:
        candidate = Path(scratch) / "int8.onnx"
        log(f"int8: calibrating on {len(chosen)} training images")
        started = time.perf_counter()
        batch = fp32_engine.static_batch or 1
        used = _quantize(fp32_path, candidate, Path(scratch), chosen, size, resize, batch)
        quantize_seconds = time.perf_counter() - started

        log(f"int8: measuring accuracy on {len(evaluation.paths)} images (fp32 and int8), "
            f"{evaluation.source}")  # fmt: skip
        # Both opened and run by the app's Engine: its session options, as on a station.
        int8_engine = Engine(candidate)
        scores = _accuracies(fp32_engine, int8_engine, evaluation, size, resize)
        rates = _throughput({"fp32": fp32_engine, "int8": int8_engine}, size)
        keep = scores["fp32_accuracy"] - scores["int8_accuracy"] <= MAX_ACCURACY_DROP
        if keep:
            # The app shows these: the INT8 model's own figures, not the FP32 model's.
            metrics = {"val_accuracy": scores["int8_accuracy"], "val_loss": scores["int8_loss"]}
            _set_metadata(candidate, {"metrics": metrics})
            os.replace(candidate, int8_path)
        elif int8_path.exists():
            # An INT8 file from an earlier export no longer matches the new FP32 model.
            int8_path.unlink()
    return _report(
        scores,
        rates,
        kept=int8_path if keep else None,
        calibration=(used, calibration.source),
        evaluation_source=evaluation.source,
        quantize_seconds=quantize_seconds,
        fp32_size_bytes=fp32_path.stat().st_size,
    )


def _quantize(
    fp32_path: Path,
    target: Path,
    scratch: Path,
    calibration: Sequence[Path],
    size: tuple[int, int],
    resize: str,
    batch_size: int = 1,
) -> int:
    """Write the statically quantised model to `target`; returns the images calibrated on."""
    prepared = scratch / "prepared.onnx"
    # Shape inference + graph clean-up first, as onnxruntime recommends before quantising:
    # it lets the quantiser see every tensor's shape. Symbolic shape inference (needs sympy)
    # is only for dynamic-shaped ops; this CNN's shapes are all known to ONNX's own.
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    reader = ImageCalibrationReader(INPUT_NAME, calibration, size, resize, batch_size)
    quantize_static(
        str(prepared),
        str(target),
        calibration_data_reader=reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=REDUCE_RANGE,
        activation_type=ACTIVATION_TYPE,
        weight_type=WEIGHT_TYPE,
        calibrate_method=CalibrationMethod.MinMax,
    )
    _finish_int8_model(fp32_path, target, calibration_images=reader.used)
    return reader.used


def _report(
    scores: dict[str, Any],
    rates: dict[str, float],
    *,
    kept: Path | None,
    calibration: tuple[int, str],  # images used, where they came from
    evaluation_source: str,
    quantize_seconds: float,
    fp32_size_bytes: int,
) -> dict[str, Any]:
    """The decision (`kept`: the INT8 file, None when discarded) and what it rests on."""
    drop = scores["fp32_accuracy"] - scores["int8_accuracy"]
    return {
        "kept": kept is not None,
        "int8_model": str(kept) if kept else None,
        "reason": (
            f"accuracy drop {drop * 100:.2f} points "
            f"{'<=' if kept else '>'} {MAX_ACCURACY_DROP * 100:.1f} allowed"
        ),
        "settings": {
            "format": "QDQ",
            "per_channel": True,
            "activations": ACTIVATION_TYPE.name,
            "weights": WEIGHT_TYPE.name,
            "reduce_range": REDUCE_RANGE,
            "calibration": "MinMax",
            "calibration_images": calibration[0],
            "calibration_source": calibration[1],
        },
        "evaluation_images": scores["images"],
        "evaluation_source": evaluation_source,
        "fp32_accuracy": scores["fp32_accuracy"],
        "int8_accuracy": scores["int8_accuracy"],
        "int8_loss": scores["int8_loss"],
        "accuracy_drop_points": drop * 100,
        "top1_agreement_fp32_int8": scores["agreement"],
        "speed": {
            "fp32_images_per_second": rates["fp32"],
            "int8_images_per_second": rates["int8"],
            "batch": SPEED_BATCH,
            "speedup": rates["int8"] / rates["fp32"],
        },
        "quantize_seconds": quantize_seconds,
        "fp32_size_bytes": fp32_size_bytes,
        "int8_size_bytes": kept.stat().st_size if kept else None,
    }


def _finish_int8_model(source: Path, target: Path, calibration_images: int) -> None:
    """Copy the metadata (the quantiser drops it), mark it INT8, drop unused opset imports.

    The FP32 metrics are not copied: they are not this model's (quantize_int8 writes
    the INT8 model's own once measured).

    quant_pre_process saves through ONNX Runtime, which declares every domain it knows
    (training, preview, aten, ...); an older runtime on a station need not know them all.
    """
    props = {
        p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props
    }
    export = json.loads(props.get("export", "{}"))
    export["quantization"] = {
        "format": "QDQ",
        "activations": ACTIVATION_TYPE.name,
        "weights": WEIGHT_TYPE.name,
        "per_channel": True,
        "reduce_range": REDUCE_RANGE,
        "calibration_images": calibration_images,
    }
    props["export"] = json.dumps(export, ensure_ascii=False)
    props.pop("metrics", None)
    props.update(encode_metadata({"quantized": "int8"}))
    model = onnx.load(str(target))
    used = {node.domain or "" for node in model.graph.node}
    kept = [o for o in model.opset_import if (o.domain or "") == "" or o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def _set_metadata(path: Path, values: dict[str, Any]) -> None:
    """Replace (or add) these metadata keys of the model file at `path`, in place."""
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(encode_metadata(values))
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _accuracies(
    fp32: Engine, int8: Engine, test: LabelledImages, size: tuple[int, int], resize: str
) -> dict[str, Any]:
    """Accuracy of both models, INT8 loss (as the trainer computes it), agreement."""
    fp32_right = int8_right = agree = 0
    int8_probs: list[np.ndarray] = []
    truth: list[int] = []
    paths, labels = list(test.paths), list(test.labels)
    for start in range(0, len(paths), SPEED_BATCH):
        arrays, batch_labels = [], []
        for path, label in zip(
            paths[start : start + SPEED_BATCH], labels[start : start + SPEED_BATCH], strict=True
        ):
            try:
                arrays.append(load_model_input(path, size, resize))
            except ImageLoadError:
                continue
            batch_labels.append(label)
        if not arrays:
            continue
        batch, expected = np.stack(arrays), np.asarray(batch_labels)
        probs = int8.predict_batch(batch)
        a, b = fp32.predict_batch(batch).argmax(axis=1), probs.argmax(axis=1)
        fp32_right += int((a == expected).sum())
        int8_right += int((b == expected).sum())
        agree += int((a == b).sum())
        int8_probs.append(probs)
        truth += batch_labels
    total = len(truth)
    if total == 0:
        raise ConvertError(f"--int8: no readable images in the {test.source}")
    return {
        "images": total,
        "fp32_accuracy": fp32_right / total,
        "int8_accuracy": int8_right / total,
        "int8_loss": cross_entropy(np.concatenate(int8_probs), np.asarray(truth)),
        "agreement": agree / total,
    }


def _throughput(engines: dict[str, Engine], size: tuple[int, int]) -> dict[str, float]:
    """Images per second of each engine at SPEED_BATCH, timed round-robin so that other
    load on the machine slows both models alike; the median of SPEED_REPEATS rounds."""
    batch = np.random.default_rng(0).uniform(0, 255, (SPEED_BATCH, *size, 3)).astype(np.float32)
    for engine in engines.values():
        engine.predict_batch(batch)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(SPEED_REPEATS):
        for name, engine in engines.items():
            started = time.perf_counter()
            engine.predict_batch(batch)
            samples[name].append(time.perf_counter() - started)
    return {name: SPEED_BATCH / statistics.median(times) for name, times in samples.items()}

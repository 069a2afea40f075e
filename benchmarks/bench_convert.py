"""Converter benchmark: export time, file size, load time, and inference speed side by side.

    python benchmarks/bench_convert.py [MODEL.keras] [--size 128] [--classes 10] [--repeats 20]

Without MODEL a random-weight EfficientNetV2B0 (the trainer's architecture) is built at
--size px with --classes classes. In one run it measures:
  * tf2onnx conversion time and file size, for a dynamic-batch and two static-batch models
  * ONNX Runtime session creation: the plain file with full optimisation (what the app
    does) vs files pre-optimised by ONNX Runtime and saved (basic / extended level)
  * inference latency at batch 1 and 32: ORT dynamic vs ORT static vs Keras predict_on_batch
This decides the converter's default batch mode (converter/export.py, DEFAULT_BATCH) and
whether saving an ORT-optimised model is worth it. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402

import desktop.core  # noqa: E402, F401  (first: importing it turns ONNX Runtime's telemetry off)

# isort: split
import onnxruntime as ort  # noqa: E402

from converter import keras_model, onnx_graph  # noqa: E402


def build_default_model(path: Path, size: int, classes: int) -> Path:
    """The trainer's architecture with random weights (no download)."""
    inputs = keras.Input(shape=(size, size, 3), name="image")
    backbone = keras.applications.EfficientNetV2B0(
        include_top=False, weights=None, input_shape=(size, size, 3), include_preprocessing=True
    )
    features = backbone(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    dropped = keras.layers.Dropout(0.2)(pooled)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(dropped)
    keras.Model(inputs, outputs).save(path)
    return path


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def latency(run: Callable[[], Any], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median and best seconds per call after warm-up."""
    return interleaved({"run": run}, repeats, warmup)["run"]


def interleaved(
    runs: dict[str, Callable[[], Any]], repeats: int, warmup: int = 3
) -> dict[str, dict[str, float]]:
    """Time several variants round-robin (rotating the order every round), so a busy or
    throttling CPU slows every variant alike instead of whichever happened to run last."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    names = list(runs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(timed(runs[name])[1])
    return {
        name: {"median_s": statistics.median(values), "min_s": min(values)}
        for name, values in samples.items()
    }


def session(path: Path, level: ort.GraphOptimizationLevel, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help=".keras model (default: built)")
    parser.add_argument("--size", type=int, default=128, help="input size of the built model")
    parser.add_argument("--classes", type=int, default=10, help="classes of the built model")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: auto)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "threads": args.threads or "auto"}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.model is None:
            print(f"building a random EfficientNetV2B0 ({args.size} px, {args.classes} classes)")
            model_path = build_default_model(folder / "model.keras", args.size, args.classes)
        else:
            model_path = args.model
        model = keras_model.load_keras_model(model_path)
        size = keras_model.input_size(model)
        inference = keras_model.build_inference_model(
            model, keras_model.find_head(model), cam=False
        )
        results["model"] = str(args.model or f"random EfficientNetV2B0 {size}")
        files = measure_conversion(inference, size, folder, results)
        results["load_s"] = measure_loading(files["dynamic"], folder, args.threads)
        results["speed"] = measure_speed(inference, size, files, args.threads, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def measure_conversion(
    inference: Any, size: tuple[int, int], folder: Path, results: dict[str, Any]
) -> dict[str, Path]:
    """Convert with a dynamic batch, static 1 and static 32; the files by name."""
    files: dict[str, Path] = {}
    for name, batch in (("dynamic", None), ("static1", 1), ("static32", 32)):
        proto, seconds = timed(lambda b=batch: onnx_graph.convert(inference, size, batch=b))
        files[name] = folder / f"{name}.onnx"
        onnx.save(proto, str(files[name]))
        results[f"convert_{name}_s"] = seconds
        results[f"size_{name}_bytes"] = files[name].stat().st_size
        print(f"convert {name:9s} {seconds:6.1f} s  {files[name].stat().st_size / 1e6:.2f} MB")
    return files


def measure_loading(dynamic: Path, folder: Path, threads: int) -> dict[str, float]:
    """Session creation: plain file + full optimisation (the app) vs a pre-optimised file."""
    load: dict[str, float] = {}
    levels = ort.GraphOptimizationLevel
    load["plain_file_enable_all"] = latency(
        lambda: session(dynamic, levels.ORT_ENABLE_ALL, threads), 5, 1
    )["median_s"]
    for label, level in (
        ("basic", levels.ORT_ENABLE_BASIC),
        ("extended", levels.ORT_ENABLE_EXTENDED),
    ):
        saved = folder / f"optimised_{label}.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.optimized_model_filepath = str(saved)
        options.log_severity_level = 3
        ort.InferenceSession(str(dynamic), options, providers=["CPUExecutionProvider"])
        load[f"preoptimised_{label}_enable_all"] = latency(
            lambda p=saved: session(p, levels.ORT_ENABLE_ALL, threads), 5, 1
        )["median_s"]
        load[f"preoptimised_{label}_disabled"] = latency(
            lambda p=saved: session(p, levels.ORT_DISABLE_ALL, threads), 5, 1
        )["median_s"]
    for name, seconds in load.items():
        print(f"load   {name:36s} {seconds * 1000:7.1f} ms")
    return load


def measure_speed(
    inference: Any, size: tuple[int, int], files: dict[str, Path], threads: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Inference speed, same inputs for every runtime. Besides the matching static model,
    the way the app would have to use a static model for the other case is timed too: a
    static-32 model padded for one photo, a static-1 model looped over 32 photos."""
    rng = np.random.default_rng(0)
    speed: dict[str, dict[str, float]] = {}
    levels = ort.GraphOptimizationLevel
    sessions = {name: session(path, levels.ORT_ENABLE_ALL, threads) for name, path in files.items()}

    def ort_run(name: str, x: np.ndarray) -> Callable[[], Any]:
        return lambda: sessions[name].run(None, {"image": x})

    for batch in (1, 32):
        images = rng.uniform(0, 255, (batch, *size, 3)).astype(np.float32)
        runs: dict[str, Callable[[], Any]] = {
            "ort_dynamic": ort_run("dynamic", images),
            "ort_static": ort_run("static1" if batch == 1 else "static32", images),
            "keras_predict_on_batch": lambda x=images: inference.predict_on_batch(x),
        }
        if batch == 1:
            padded = np.concatenate([images, np.zeros((31, *size, 3), np.float32)])
            runs["ort_static32_padded"] = ort_run("static32", padded)
        else:
            singles = [ort_run("static1", images[i : i + 1]) for i in range(batch)]
            runs["ort_static1_looped"] = lambda calls=singles: [call() for call in calls]
        for name, measured in interleaved(runs, repeats).items():
            measured["images_per_s"] = batch / measured["median_s"]
            speed[f"{name}_batch{batch}"] = measured
            median_ms, best_ms = measured["median_s"] * 1000, measured["min_s"] * 1000
            print(
                f"batch {batch:2d} {name:24s} {median_ms:8.2f} ms median  "
                f"{best_ms:8.2f} ms best  {measured['images_per_s']:8.1f} img/s"
            )
        ratio = (
            speed[f"ort_static_batch{batch}"]["median_s"]
            / speed[f"ort_dynamic_batch{batch}"]["median_s"]
        )
        print(f"batch {batch:2d} static / dynamic median time: {ratio:.3f}")
    return speed


if __name__ == "__main__":
    raise SystemExit(main())

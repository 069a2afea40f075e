"""End-to-end headless throughput: discover, decode + preprocess, infer, write the CSV.

Runs the station's ONNX Runtime pipeline (the same code as `ewaste-classify`) at several
batch sizes, and optionally, side by side in the same run, the .keras model through the
same prediction loop (`desktop.core.prediction_loop`: the same Pillow decode on a thread
pool that prefetches the next batch) with `trainer.keras_predictor.KerasPredictor`, and the
same CSV writer: only the inference runtime differs.

    python benchmarks/bench_headless.py [FOLDER] [--model M.onnx] [--batch-sizes 1,8,32,64]
        [--compare-model OTHER.onnx ...] [--keras-model model.keras] [--limit N]
        [--flip-average]

--compare-model runs other ONNX files (for example the model a new one replaces) through
the same pipeline, interleaved with --model batch size by batch size, and reports the
speed-up of --model over each.

Files are read once before timing so every pipeline starts from a warm page cache; model
loading and the first (warm-up) inference are excluded from the timed runs. The Keras part
needs TensorFlow (the `train` extra) and only runs when --keras-model is given; this script
may import TensorFlow because it is not part of the station app.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_common import (
    DEFAULT_DATASET,
    command_line,
    display_path,
    environment,
    markdown_table,
    positive_ints,
    refuse_a_test_split,
    warm_page_cache,
)

from desktop.core.csv_export import write_results_csv
from desktop.core.discovery import collect_images
from desktop.core.engine import Engine
from desktop.core.model_info import ModelError
from desktop.core.prediction_loop import classify_paths
from desktop.core.results import DEFAULT_REVIEW_THRESHOLD, Prediction


@dataclass(frozen=True)
class RunResult:
    model: str
    pipeline: str
    batch_size: int
    images: int
    errors: int
    seconds: float
    predictions: list[Prediction]

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        engine = Engine(args.model, threads=args.threads, decode_workers=args.decode_workers)
        others = [
            Engine(m, threads=args.threads, decode_workers=args.decode_workers)
            for m in args.compare_model
        ]
    except ModelError as exc:
        print(f"bench_headless: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"bench_headless: folder not found: {folder}", file=sys.stderr)
        return 2
    images = collect_images([folder]).images[: args.limit]
    if not images:
        print(f"bench_headless: no images in {folder}", file=sys.stderr)
        return 2
    warm_page_cache(images)

    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-headless-") as scratch:
        for batch_size in args.batch_sizes:
            for each in (engine, *others):
                results.append(
                    run_onnx(
                        each,
                        folder,
                        args.limit,
                        batch_size,
                        Path(scratch) / "ort.csv",
                        flip_average=args.flip_average,
                    )
                )
        if args.keras_model:
            keras_run = make_keras_pipeline(
                args.keras_model, engine, args.decode_workers, args.flip_average
            )
            results.append(keras_run(images, args.keras_batch, Path(scratch) / "keras.csv"))

    print(report(args, engine, folder, results))
    return 0


def run_onnx(
    engine: Engine,
    folder: Path,
    limit: int | None,
    batch_size: int,
    csv_path: Path,
    flip_average: bool = False,
) -> RunResult:
    """The `ewaste-classify` pipeline, timed from discovery to the CSV on disk."""
    started = time.perf_counter()
    collection = collect_images([folder])
    paths = collection.images[:limit]
    batches = engine.classify(paths, batch_size=batch_size, flip_average=flip_average)
    pipeline = f"ONNX Runtime ({engine.provider}, threads={engine.threads or 'auto'})"
    return finish_run(
        started,
        batches,
        csv_path,
        engine.class_names,
        model=model_label(engine.model_path),
        pipeline=pipeline + (", flip-average" if flip_average else ""),
        batch_size=batch_size,
    )


def finish_run(
    started: float,
    batches: Iterator[list[Prediction]],
    csv_path: Path,
    class_names: Sequence[str],
    *,
    model: str,
    pipeline: str,
    batch_size: int,
) -> RunResult:
    """Run the prediction loop to its end, write the CSV, stop the clock."""
    predictions = [prediction for batch in batches for prediction in batch]
    write_results_csv(csv_path, predictions, class_names, DEFAULT_REVIEW_THRESHOLD)
    return RunResult(
        model=model,
        pipeline=pipeline,
        batch_size=batch_size,
        images=len(predictions),
        errors=sum(not p.ok for p in predictions),
        seconds=time.perf_counter() - started,
        predictions=predictions,
    )


def make_keras_pipeline(
    model_path: str, engine: Engine, decode_workers: int | None, flip_average: bool = False
) -> Callable[[list[Path], int, Path], RunResult]:
    """Load the Keras model (untimed) and return the timed pipeline function.

    With `flip_average` it averages each image with its mirror, like the engine does.
    """
    import keras  # imported here: TensorFlow is optional and slow to import

    from trainer.keras_predictor import KerasPredictor

    predict = KerasPredictor(keras.models.load_model(model_path, compile=False))
    if predict.input_size != engine.input_size:
        raise SystemExit(
            f"bench_headless: Keras model input {predict.input_size} differs from the ONNX "
            f"model's {engine.input_size}; compare models of the same export"
        )
    predict(np.zeros((1, *predict.input_size, 3), np.float32))  # warm-up / trace
    workers = decode_workers or engine.decode_workers

    def run(paths: list[Path], batch_size: int, csv_path: Path) -> RunResult:
        started = time.perf_counter()
        batches = classify_paths(
            paths,
            predict,
            predict.input_size,
            engine.info.resize,  # decoded as the ONNX model's metadata says
            batch_size=batch_size,
            workers=workers,
            flip_average=flip_average,
        )
        return finish_run(
            started,
            batches,
            csv_path,
            engine.class_names,
            model=model_label(Path(model_path)),
            pipeline="Keras predict_on_batch (TensorFlow)"
            + (", flip-average" if flip_average else ""),
            batch_size=batch_size,
        )

    return run


def report(args: argparse.Namespace, engine: Engine, folder: Path, results: list[RunResult]) -> str:
    rows = [
        (
            r.model,
            r.pipeline,
            r.batch_size,
            r.images,
            r.errors,
            r.seconds,
            r.images_per_second,
            1000.0 * r.seconds / max(r.images, 1),
        )
        for r in results
    ]
    table = markdown_table(
        ["model", "pipeline", "batch", "images", "errors", "total s", "images/s", "ms/image"],
        rows,
    )
    lines = [
        "## Headless throughput (discover + decode + infer + CSV)",
        "",
        f"Command: `{command_line()}`",
        f"Folder: {display_path(folder)} | model: {model_label(engine.model_path)} | "
        f"{environment()}",
        "",
        table,
    ]
    name = model_label(engine.model_path)
    ours = {r.batch_size: r for r in results if r.model == name and "ONNX" in r.pipeline}
    for other in results:
        mine = ours.get(other.batch_size)
        if other.model != name and mine:
            lines.append(
                f"\nAt batch {other.batch_size}, {name} runs "
                f"{mine.images_per_second / other.images_per_second:.2f}x the speed of "
                f"{other.model} ({other.pipeline.split(' (')[0]})."
            )
    keras_runs = [r for r in results if r.pipeline.startswith("Keras")]
    if keras_runs and results[0].predictions:
        lines += ["", agreement(results[0], keras_runs[0])]
    return "\n".join(lines)


def model_label(path: Path) -> str:
    """The model's path relative to the working folder (as typed in the command), so two
    files of the same name stay apart and no absolute path of this machine is printed."""
    return os.path.relpath(path)


def agreement(onnx_run: RunResult, keras_run: RunResult) -> str:
    """Top-1 agreement and largest probability gap between the two pipelines."""
    pairs = [
        (a, b)
        for a, b in zip(onnx_run.predictions, keras_run.predictions, strict=True)
        if a.ok and b.ok
    ]
    if not pairs:
        return "Agreement: no image classified by both pipelines."
    same = sum(a.top_index == b.top_index for a, b in pairs)
    gap = max(float(np.abs(a.probabilities - b.probabilities).max()) for a, b in pairs)
    return (
        f"Agreement {onnx_run.model} (ONNX) vs {keras_run.model} (Keras): top-1 identical "
        f"on {same}/{len(pairs)} images, "
        f"largest probability difference {gap:.2e}."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", nargs="?", default=str(DEFAULT_DATASET), help="default: %(default)s"
    )
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--batch-sizes", type=positive_ints, default=[1, 8, 32, 64])
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    parser.add_argument("--decode-workers", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="use the first N images only")
    parser.add_argument(
        "--compare-model",
        action="append",
        default=[],
        help="another ONNX model to time side by side (repeatable)",
    )
    parser.add_argument("--keras-model", default=None, help="a .keras model to compare with")
    parser.add_argument("--keras-batch", type=int, default=32)
    parser.add_argument(
        "--flip-average", action="store_true", help="time ewaste-classify --flip-average"
    )
    args = parser.parse_args(argv)
    refuse_a_test_split(parser, Path(args.folder), "FOLDER")
    return args


if __name__ == "__main__":
    sys.exit(main())

"""Single-image latency (file -> probabilities) and ONNX Runtime batch behaviour.

    python benchmarks/bench_latency.py [--model M.onnx] [--image PHOTO.jpg] [--runs 50]
        [--threads N] [--batch 32]

Measures, each as median and 90th percentile over --runs timed runs (after warm-up runs):
  * a dataset image and a generated 4000x3000 camera-sized JPEG: the whole path
    `Engine.classify_file` and its decode + resize part alone (`load_rgb`), in each resize
    mode (the item crop decodes a JPEG at 4 times the input size);
  * inference alone (`Engine.predict_batch`) at batch 1 and at --batch;
  * a static-batch copy of the model against the dynamic one at the same batch sizes
    (needs the `onnx` package; the copies are written to a temporary folder).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from bench_common import (
    DEFAULT_DATASET,
    command_line,
    display_path,
    environment,
    markdown_table,
    median_p90_ms,
)
from PIL import Image

from desktop.core.discovery import collect_images
from desktop.core.engine import Engine
from desktop.core.model_info import ModelError
from desktop.core.preprocessing import RESIZE_MODES, load_rgb

WARMUP_RUNS = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        engine = Engine(args.model, threads=args.threads)
    except ModelError as exc:
        print(f"bench_latency: {exc}", file=sys.stderr)
        return 2
    image = Path(args.image) if args.image else first_dataset_image()
    if image is None or not image.is_file():
        print("bench_latency: no dataset image found; pass --image PHOTO.jpg", file=sys.stderr)
        return 2

    rows: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
        large = write_camera_jpeg(Path(scratch) / "camera_4000x3000.jpg")
        for label, path in ((f"dataset image {size_of(image)}", image), ("4000x3000 JPEG", large)):
            rows.append(
                row(
                    f"{label}: file -> probabilities",
                    1,
                    args.runs,
                    lambda p=path: engine.classify_file(p),
                )
            )
            for mode in RESIZE_MODES:  # the model's, and the others beside it
                own = " (the model's)" if mode == engine.info.resize else ""
                rows.append(
                    row(
                        f"{label}: decode + resize only, {mode}{own}",
                        1,
                        args.runs,
                        lambda p=path, m=mode: load_rgb(p, engine.input_size, m),
                    )
                )

        for batch in sorted({1, args.batch}):
            pixels = random_batch(batch, engine.input_size)
            rows.append(
                row(
                    f"inference only ({kind_of(engine)})",
                    batch,
                    args.runs,
                    lambda x=pixels: engine.predict_batch(x),
                )
            )

        static_rows, note = static_batch_rows(engine, args, Path(scratch))
        rows += static_rows

    headers = ["case", "batch", "median ms", "p90 ms", "median ms/image"]
    lines = [
        "## Latency (ONNX Runtime, CPU)",
        "",
        f"Command: `{command_line()}`",
        f"Model: {display_path(engine.model_path)} ({engine.provider}, "
        f"threads={engine.threads or 'auto'}) "
        f"| image: {display_path(image)} | {args.runs} runs after {WARMUP_RUNS} warm-up "
        f"| {environment()}",
        "",
        markdown_table(headers, rows),
    ]
    if note:
        lines += ["", note]
    print("\n".join(lines))
    return 0


def row(label: str, batch: int, runs: int, action: Callable[[], object]) -> tuple[object, ...]:
    median, p90 = median_p90_ms(time_runs(action, runs))
    return (label, batch, median, p90, median / batch)


def time_runs(action: Callable[[], object], runs: int) -> list[float]:
    for _ in range(WARMUP_RUNS):
        action()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return timings


def static_batch_rows(
    engine: Engine, args: argparse.Namespace, scratch: Path
) -> tuple[list[tuple[object, ...]], str | None]:
    """Rows for static-batch copies of the model, or a note saying why there are none."""
    if engine.static_batch is not None:
        return [], f"The model already has a static batch of {engine.static_batch}."
    try:
        import onnx  # only needed here; part of the `train` extra
    except ImportError:
        return [], "Static batch comparison skipped: the `onnx` package is not installed."
    rows = []
    for batch in sorted({1, args.batch}):
        model = onnx.load(str(engine.model_path))
        for value in [*model.graph.input, *model.graph.output]:
            first = value.type.tensor_type.shape.dim[0]
            first.ClearField("dim_param")
            first.dim_value = batch
        del model.graph.value_info[:]  # stale symbolic shapes; ORT infers them again
        path = scratch / f"static_batch_{batch}.onnx"
        onnx.save(model, str(path))
        static = Engine(path, threads=args.threads)
        pixels = random_batch(batch, engine.input_size)
        rows.append(
            row(
                "inference only (static batch)",
                batch,
                args.runs,
                lambda s=static, x=pixels: s.predict_batch(x),
            )
        )
    return rows, None


def write_camera_jpeg(path: Path, size: tuple[int, int] = (4000, 3000)) -> Path:
    """A photo-like 4000x3000 JPEG: smooth gradients plus sensor-like noise."""
    width, height = size
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 180, (x + y) / (width + height) * 220], -1)
    noisy = base + rng.normal(0, 8, base.shape).astype(np.float32)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)
    return path


def random_batch(batch: int, size: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.uniform(0, 255, (batch, *size, 3)).astype(np.float32)


def first_dataset_image() -> Path | None:
    if not DEFAULT_DATASET.is_dir():
        return None
    images = collect_images([DEFAULT_DATASET]).images
    return images[0] if images else None


def size_of(path: Path) -> str:
    with Image.open(path) as image:
        return f"{image.width}x{image.height}"


def kind_of(engine: Engine) -> str:
    return "dynamic batch" if engine.static_batch is None else f"static batch {engine.static_batch}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--image", default=None, help="photo to time (default: first of train)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    parser.add_argument("--batch", type=int, default=32, help="the larger batch size to compare")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())

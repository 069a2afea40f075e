"""Choosing Lite0's input size: validation accuracy and ONNX Runtime speed, per size.

    python benchmarks/bench_lite0_sizes.py [--data DATASET] [--sizes 128,160,192,224]

For each size: a linear classifier (softmax regression, its L2 strength picked on the
validation split) on the frozen ImageNet backbone's pooled features of the training split,
scored on the validation split; then the classifier (backbone + that head) exported with
the project's converter and timed with ONNX Runtime at batch 32 and batch 1, all sizes
interleaved round by round so a busy CPU slows each alike. Needs the `train` extra. Reads
only the train and validation splits: the size is a choice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402

import desktop.core  # noqa: E402, F401  (first: importing it turns ONNX Runtime's telemetry off)

# isort: split
import onnxruntime as ort  # noqa: E402
from bench_common import (  # noqa: E402
    DEFAULT_DATASET,
    command_line,
    environment,
    markdown_table,
    positive_ints,
)
from bench_convert import interleaved  # noqa: E402

from converter import keras_model, onnx_graph  # noqa: E402
from trainer import data  # noqa: E402
from trainer.config import PRESETS  # noqa: E402
from trainer.dataset import load_dataset  # noqa: E402
from trainer.model import build_model  # noqa: E402
from trainer.weights import resolve_weights  # noqa: E402

L2_STRENGTHS = (1e-4, 1e-3, 1e-2)
PROBE_EPOCHS = 60


def probe(model: keras.Model, train: data.SplitArrays, val: data.SplitArrays) -> dict:
    """Fit the head alone on frozen pooled features; the best validation accuracy over L2."""
    features = keras.Model(model.input, model.get_layer("avg_pool").output)
    train_x = features.predict(train.images.astype(np.float32), batch_size=32, verbose=0)
    val_x = features.predict(val.images.astype(np.float32), batch_size=32, verbose=0)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    best: dict = {}
    for l2 in L2_STRENGTHS:
        keras.utils.set_random_seed(0)
        head = keras.Sequential(
            [
                keras.Input((train_x.shape[1],)),
                keras.layers.Dense(10, "softmax", kernel_regularizer=keras.regularizers.l2(l2)),
            ]
        )
        head.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        head.fit(
            (train_x - mean) / std, train.labels, epochs=PROBE_EPOCHS, batch_size=64, verbose=0
        )
        loss, accuracy = head.evaluate((val_x - mean) / std, val.labels, verbose=0)
        if not best or accuracy > best["accuracy"]:
            best = {"accuracy": accuracy, "loss": loss, "l2": l2}
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATASET.parent)
    parser.add_argument("--sizes", type=positive_ints, default=[128, 160, 192, 224])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    dataset = load_dataset(args.data)
    weights = resolve_weights("imagenet", "efficientnet-lite0")
    rows: dict[int, dict] = {}
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            config = PRESETS["lite0-head"].replace(image_size=size)
            model = build_model(config, len(dataset.class_names), weights)
            train = data.load_split(dataset, "train", size, data.DEFAULT_CACHE_DIR)
            val = data.load_split(dataset, "val", size, data.DEFAULT_CACHE_DIR)
            rows[size] = probe(model, train, val)
            print(f"{size} px: linear probe {rows[size]}", flush=True)
            inference = keras_model.build_inference_model(
                model, keras_model.find_head(model), cam=False
            )
            path = Path(scratch) / f"lite0-{size}.onnx"
            proto = onnx_graph.convert(inference, (size, size))
            onnx.save(proto, str(path))
            rows[size]["mb"] = path.stat().st_size / 1e6
            ort_session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            batch32 = np.random.default_rng(0).uniform(0, 255, (32, size, size, 3))
            batch32 = batch32.astype(np.float32)
            runs[f"{size}-32"] = lambda s=ort_session, b=batch32: s.run(None, {"image": b})
            runs[f"{size}-1"] = lambda s=ort_session, b=batch32[:1]: s.run(None, {"image": b})
        timings = interleaved(runs, args.repeats)
    print("# Lite0 input size: linear-probe validation accuracy and ONNX Runtime speed\n")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}\n")
    table = []
    for size, row in rows.items():
        per_image = timings[f"{size}-32"]["median_s"] / 32
        table.append(
            [
                f"{size} px",
                f"{100 * row['accuracy']:.1f} %",
                f"{row['loss']:.3f}",
                f"{1 / per_image:.0f}",
                f"{1000 * timings[f'{size}-1']['median_s']:.1f}",
            ]
        )
    headers = ["size", "val accuracy (probe)", "val loss", "images/s, batch 32", "ms, batch 1"]
    print(markdown_table(headers, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())

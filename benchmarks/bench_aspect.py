"""Accuracy on non-square photos: stretch-to-square against letterbox-onto-white.

    python benchmarks/bench_aspect.py [--model M.onnx] [--data DATASET] [--split val]

Station photos are 4:3 or portrait, not the dataset's 150x150 squares. From every image of
the split this builds four variants and scores the model on each with both resize modes
of the preprocessing contract (desktop.core.preprocessing.RESIZE_MODES):
  pad 4:3 / pad 3:4    the whole item on a wider / taller white canvas (a product shot)
  crop 4:3 / crop 3:4  the centre cut to 4:3 / 3:4 (the item fills the frame, edges lost)
The original squares are scored too (both modes give the same pixels there). The variants
are written to a temporary folder as PNG, so the file path through `load_rgb` is the app's.
Run it on the validation split: the resize mode is a choice, and choices are not made on
the test split.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from bench_common import (
    add_split_arguments,
    command_line,
    environment,
    labelled_split,
    markdown_table,
)
from PIL import Image

from desktop.core.engine import Engine
from desktop.core.prediction_loop import classify_paths
from desktop.core.preprocessing import RESIZE_MODES

VARIANTS = ("square", "pad 4:3", "pad 3:4", "crop 4:3", "crop 3:4")
BATCH = 32


def make_variant(image: Image.Image, variant: str) -> Image.Image:
    width, height = image.size
    if variant == "square":
        return image
    wide = variant.endswith("4:3")
    if variant.startswith("pad"):
        size = (width * 4 // 3, height) if wide else (width, height * 4 // 3)
        canvas = Image.new("RGB", size, (255, 255, 255))
        canvas.paste(image, ((size[0] - width) // 2, (size[1] - height) // 2))
        return canvas
    size = (width, height * 3 // 4) if wide else (width * 3 // 4, height)
    left, top = (width - size[0]) // 2, (height - size[1]) // 2
    return image.crop((left, top, left + size[0], top + size[1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_split_arguments(parser)
    args = parser.parse_args(argv)
    items = labelled_split(parser, args)
    engine = Engine(args.model)
    names = list(engine.class_names)
    truth = np.array([names.index(label) for _, label in items])
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for variant in VARIANTS:
            paths = []
            for index, (path, _) in enumerate(items):
                with Image.open(path) as original:
                    out = (
                        Path(scratch) / f"{variant.replace(' ', '-').replace(':', '')}-{index}.png"
                    )
                    make_variant(original.convert("RGB"), variant).save(out)
                paths.append(out)
            row: list[object] = [variant]
            for mode in RESIZE_MODES:
                batches = classify_paths(
                    paths,
                    engine.predict,
                    engine.input_size,
                    mode,  # each resize mode, whatever the model's metadata says
                    batch_size=BATCH,
                    workers=engine.decode_workers,
                )
                predicted = np.array([p.top_index for batch in batches for p in batch])
                correct = int((predicted == truth).sum())
                row.append(f"{100 * correct / len(truth):.1f} % ({correct}/{len(truth)})")
            rows.append(row)
    print(f"# Non-square variants of the {args.split} split: stretch vs letterbox\n")
    print(f"Model: {engine.model_path.name} (trained with resize = {engine.info.resize})  ")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}\n")
    print(markdown_table(["variant", *RESIZE_MODES], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

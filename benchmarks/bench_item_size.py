"""How the model fares when the item does not fill the photo, and on an empty frame.

    python benchmarks/bench_item_size.py [--model M.onnx] [--data DATASET] [--split val]

A worker photographs an item lying on a table: the phone's 4:3 frame is often mostly table.
From every image of the split this builds 1600x1200 JPEG photos in which the image (the item
on its catalogue background) spans 100, 90, 70, 50 or 30 % of the frame's height, centred on
white with a camera's faint noise, and classifies them through the engine as the app does
(the status at the default review threshold). Beside each, the same photos cropped to the
item first by `cropped_to_item`, a prototype of a remedy that is not in the app. It also
classifies empty frames: grey, white and dark surfaces with the noise and a lens's
vignette, which should all be unknown items (the crop leaves them as they are).
Run it on the validation split: it measures a limit, and limits are not tuned on test.
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
from desktop.core.results import STATUS_OK, STATUS_UNKNOWN, status_of

FRAME = (1600, 1200)  # a phone photo's 4:3, small enough to keep the run short
SHARES = (1.0, 0.9, 0.7, 0.5, 0.3)  # of the frame's height
NOISE = 3.0  # standard deviation, in 0-255 levels
SURFACES = {"white": 235, "grey": 150, "dark": 60}  # empty frames' mean levels
VIGNETTE = 0.08  # how much darker the corners are than the centre
EMPTY_FRAMES_PER_SURFACE = 10
# The prototype crop: levels from the border's colour that mark the item, the margin kept
# around it (of its larger side, each way), and the side it is found at (for speed).
CROP_DIFFERENCE = 40
CROP_MARGIN = 0.08
CROP_SEARCH_SIDE = 400


def placed(image: Image.Image, share: float, rng: np.random.Generator) -> Image.Image:
    """`image` spanning `share` of the frame's height, centred on white, with noise."""
    width, height = FRAME
    side = round(height * share)
    canvas = Image.new("RGB", FRAME, (255, 255, 255))
    item = image.resize((side, side), Image.Resampling.BICUBIC)
    canvas.paste(item, ((width - side) // 2, (height - side) // 2))
    return noisy(np.asarray(canvas, dtype=np.float32), rng)


def empty_frame(level: float, rng: np.random.Generator) -> Image.Image:
    """A bare surface at `level`, darker towards the corners as through a lens."""
    width, height = FRAME
    y, x = np.mgrid[0:height, 0:width]
    radius = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2)) / np.sqrt(2)
    surface = level * (1 - VIGNETTE * radius**2)
    return noisy(np.repeat(surface[..., None], 3, axis=2), rng)


def cropped_to_item(photo: Image.Image) -> Image.Image:
    """The square around what differs from the border's colour (the item, on a plain
    background), with a margin, filled out with that colour where it passes the photo's
    edge; the photo as it is when nothing differs (an empty frame)."""
    small = photo.copy()
    small.thumbnail((CROP_SEARCH_SIDE, CROP_SEARCH_SIDE))
    pixels = np.asarray(small, dtype=np.int16)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    differs = np.abs(pixels - background).max(axis=2) > CROP_DIFFERENCE
    if not differs.any():
        return photo
    rows, columns = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    scale = photo.width / small.width
    centre_x = (columns[0] + columns[-1] + 1) / 2 * scale
    centre_y = (rows[0] + rows[-1] + 1) / 2 * scale
    extent = max(rows[-1] + 1 - rows[0], columns[-1] + 1 - columns[0]) * scale
    side = max(1, round(extent * (1 + 2 * CROP_MARGIN)))
    canvas = Image.new("RGB", (side, side), tuple(int(c) for c in background))
    canvas.paste(photo, (round(side / 2 - centre_x), round(side / 2 - centre_y)))
    return canvas


def scored(engine: Engine, paths: Sequence[Path], labels: Sequence[str]) -> tuple[str, str, str]:
    """Accuracy, the share called unknown and the wrong answers left "ok", as cells."""
    names = list(engine.class_names)
    predictions = [p for batch in engine.classify(paths, with_cam=False) for p in batch]
    statuses = [status_of(p) for p in predictions]
    right = [
        p.ok and names[p.top_index] == label for p, label in zip(predictions, labels, strict=True)
    ]
    wrong_ok = sum(s == STATUS_OK and not r for s, r in zip(statuses, right, strict=True))
    return (
        f"{100 * sum(right) / len(labels):.1f} %",
        f"{100 * statuses.count(STATUS_UNKNOWN) / len(labels):.1f} %",
        f"{wrong_ok} of {statuses.count(STATUS_OK)}",
    )


def noisy(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    pixels = pixels + rng.normal(0, NOISE, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_split_arguments(parser)
    args = parser.parse_args(argv)
    items = labelled_split(parser, args)
    engine = Engine(args.model)
    names = list(engine.class_names)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        labels = [label for _, label in items]
        for share in SHARES:
            paths, crops = [], []
            for index, (path, _) in enumerate(items):
                with Image.open(path) as original:
                    photo = placed(original.convert("RGB"), share, rng)
                paths.append(Path(scratch) / f"share{share:.2f}-{index}.jpg")
                photo.save(paths[-1], quality=90)
                with Image.open(paths[-1]) as saved:  # the photo as the station has it
                    crops.append(paths[-1].with_suffix(".crop.png"))
                    cropped_to_item(saved.convert("RGB")).save(crops[-1])
            plain, cropped = scored(engine, paths, labels), scored(engine, crops, labels)
            pairs = zip(plain, cropped, strict=True)
            rows.append([f"{share * 100:.0f} %", *(f"{a} / {b}" for a, b in pairs)])
        empty = []
        for surface, level in SURFACES.items():
            paths = []
            for index in range(EMPTY_FRAMES_PER_SURFACE):
                paths.append(Path(scratch) / f"empty-{surface}-{index}.jpg")
                empty_frame(level, rng).save(paths[-1], quality=90)
            predictions = [p for batch in engine.classify(paths, with_cam=False) for p in batch]
            called = [names[p.top_index] for p in predictions if status_of(p) == STATUS_OK]
            unknown = sum(status_of(p) == STATUS_UNKNOWN for p in predictions)
            said = ", ".join(f"{called.count(n)} {n}" for n in sorted(set(called))) or "none"
            empty.append([surface, f"{unknown} of {len(paths)}", said])
    print(f"# The item's share of the photo, on the {args.split} split\n")
    print(f"Model: {engine.model_path.name}  ")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}\n")
    headers = ["item's share of the frame's height", "accuracy", "called unknown", "wrong but ok"]
    print("Each cell: as photographed / cropped to the item first (`cropped_to_item`).\n")
    print(markdown_table(headers, rows))
    vignette = f"corners {VIGNETTE * 100:.0f} % darker"
    print(f"\n## Empty frames ({EMPTY_FRAMES_PER_SURFACE} a surface, {vignette})\n")
    print(markdown_table(["surface", "called unknown", "called a class, ok"], empty))
    return 0


if __name__ == "__main__":
    sys.exit(main())

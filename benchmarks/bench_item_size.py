"""How the model fares when the item does not fill the photo, by resize mode.

    python benchmarks/bench_item_size.py [--model M.onnx] [--data DATASET] [--split val]

A worker photographs an item lying on a table: the phone's 4:3 frame is often mostly table.
From every image of the split this builds 1600x1200 JPEG photos in which the image (the item
on its catalogue background) spans 100, 90, 70, 50 or 30 % of the frame's height, centred on
white with a camera's faint noise; the same at 50 % on a grey table and on a wood-grain one;
close-ups, the centre 60 % of each image, whose item crosses the frame's edges (where a
crop to the item can go wrong); the split's images as they are; and the item at 50 % on the
grey table lit from one side (180 to 120 levels across). It classifies each set
through the engine as the app does (the status at the default review threshold), twice:
the model resizing with "stretch" (the whole photo) and with "item" (the photo cropped to
the item first; see `desktop.core.preprocessing.item_frame`), one of them a copy of the
model with only that metadata changed (`converter.set_resize`). It also classifies empty
frames: grey, white and dark surfaces with the noise and a lens's vignette, which should
all be unknown items.
Run it on the validation split: it chooses a mode, and choices are not made on test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from bench_common import (
    add_split_arguments,
    command_line,
    environment,
    labelled_split,
    markdown_table,
)
from PIL import Image

from converter.model_files import write_model
from converter.set_resize import with_resize_mode
from desktop.core.assets import default_model_path
from desktop.core.engine import Engine
from desktop.core.results import STATUS_OK, STATUS_UNKNOWN, status_of

FRAME = (1600, 1200)  # a phone photo's 4:3, small enough to keep the run short
SHARES = (1.0, 0.9, 0.7, 0.5, 0.3)  # of the frame's height
NOISE = 3.0  # standard deviation, in 0-255 levels
GREY_TABLE = 150
CLOSE_UP = 0.6  # the share of the image's side a close-up keeps
SURFACES = {"white": 235, "grey": 150, "dark": 60}  # empty frames' mean levels
VIGNETTE = 0.08  # how much darker the corners are than the centre
EMPTY_FRAMES_PER_SURFACE = 10
MODES = ("stretch", "item")


def placed(image: Image.Image, share: float, table: np.ndarray) -> np.ndarray:
    """`image` spanning `share` of the frame's height, centred on `table` (H, W, 3)."""
    width, height = FRAME
    side = round(height * share)
    canvas = Image.fromarray(table)
    item = image.resize((side, side), Image.Resampling.BICUBIC)
    canvas.paste(item, ((width - side) // 2, (height - side) // 2))
    return np.asarray(canvas, dtype=np.float32)


def plain_table(level: float) -> np.ndarray:
    return np.full((FRAME[1], FRAME[0], 3), level, dtype=np.uint8)


def lit_table() -> np.ndarray:
    """The grey table lit from one side: 20 % brighter at the left edge, 20 % darker at the
    right (180 to 120 levels)."""
    light = GREY_TABLE * np.linspace(1.2, 0.8, FRAME[0])
    return np.repeat(np.repeat(light[None, :, None], FRAME[1], axis=0), 3, axis=2).astype(np.uint8)


def wood_table() -> np.ndarray:
    """Brown grain: stripes that wander, about 50 levels from dark to light."""
    y, x = np.mgrid[0 : FRAME[1], 0 : FRAME[0]]
    grain = 140 + 25 * np.sin(x / 9.0 + 3 * np.sin(y / 60.0))
    return np.stack([grain, grain * 0.75, grain * 0.5], axis=2).astype(np.uint8)


def close_up(image: Image.Image) -> np.ndarray:
    """The centre CLOSE_UP of `image`, at 600x600: the item crosses every edge."""
    side = round(image.width * CLOSE_UP)
    left = (image.width - side) // 2
    kept = image.crop((left, left, left + side, left + side))
    return np.asarray(kept.resize((600, 600), Image.Resampling.BICUBIC), dtype=np.float32)


def empty_frame(level: float) -> np.ndarray:
    """A bare surface at `level`, darker towards the corners as through a lens."""
    width, height = FRAME
    y, x = np.mgrid[0:height, 0:width]
    radius = np.hypot((x - width / 2) / (width / 2), (y - height / 2) / (height / 2)) / np.sqrt(2)
    surface = level * (1 - VIGNETTE * radius**2)
    return np.repeat(surface[..., None], 3, axis=2)


def noisy(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    pixels = pixels + rng.normal(0, NOISE, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def variants() -> dict[str, Callable[[Image.Image], np.ndarray] | None]:
    """Each variant's name and how it makes a photo from an image (None: the image itself)."""
    white, grey, wood = plain_table(255), plain_table(GREY_TABLE), wood_table()
    lamp_lit = lit_table()
    made: dict[str, Callable[[Image.Image], np.ndarray] | None] = {
        f"{share * 100:.0f} % on white": lambda im, s=share: placed(im, s, white)
        for share in SHARES
    }
    made["50 % on a grey table"] = lambda im: placed(im, 0.5, grey)
    made["50 % on wood grain"] = lambda im: placed(im, 0.5, wood)
    made[f"close-up (centre {CLOSE_UP * 100:.0f} %)"] = close_up
    made["the split's images"] = None
    # Last, so that the rows above keep the noise of the runs before it was added.
    made["50 %, a lamp on one side"] = lambda im: placed(im, 0.5, lamp_lit)
    return made


def engines_by_mode(model: Path, scratch: Path) -> dict[str, Engine]:
    """The model in each of MODES: itself in its own, a copy in the other."""
    own = Engine(model)
    engines = {own.info.resize: own}
    for mode in MODES:
        if mode not in engines:
            copy = scratch / f"{mode}.onnx"
            write_model(with_resize_mode(onnx.load(str(model)), mode, model.name), copy)
            engines[mode] = Engine(copy)
    return {mode: engines[mode] for mode in MODES}


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


def called(engine: Engine, paths: Sequence[Path]) -> str:
    """How many of `paths` (empty frames) were unknown, and what the rest were called "ok"."""
    names = list(engine.class_names)
    predictions = [p for batch in engine.classify(paths, with_cam=False) for p in batch]
    classes = [names[p.top_index] for p in predictions if status_of(p) == STATUS_OK]
    unknown = sum(status_of(p) == STATUS_UNKNOWN for p in predictions)
    said = ", ".join(f"{classes.count(n)} {n}" for n in sorted(set(classes)))
    return f"{unknown} of {len(paths)} unknown" + (f"; ok: {said}" if said else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_split_arguments(parser)
    args = parser.parse_args(argv)
    items = labelled_split(parser, args)
    labels = [label for _, label in items]
    model = args.model or default_model_path()
    rng = np.random.default_rng(0)
    rows, empty = [], []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        engines = engines_by_mode(model, scratch)
        for index, (name, make) in enumerate(variants().items()):
            paths = []
            for number, (path, _) in enumerate(items):
                if make is None:
                    paths.append(path)
                    continue
                with Image.open(path) as original:
                    photo = noisy(make(original.convert("RGB")), rng)
                paths.append(scratch / f"variant{index}-{number}.jpg")
                photo.save(paths[-1], quality=90)
            cells = [scored(engines[mode], paths, labels) for mode in MODES]
            rows.append([name, *(" / ".join(pair) for pair in zip(*cells, strict=True))])
        for surface, level in SURFACES.items():
            paths = []
            for number in range(EMPTY_FRAMES_PER_SURFACE):
                paths.append(scratch / f"empty-{surface}-{number}.jpg")
                noisy(empty_frame(level), rng).save(paths[-1], quality=90)
            empty.append([surface, *(called(engines[mode], paths) for mode in MODES)])
    print(f"# The item's share of the photo, by resize mode, on the {args.split} split\n")
    print(f"Model: {model.name} (resizes with {Engine(model).info.resize})  ")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}\n")
    headers = ["photos", "accuracy", "called unknown", "wrong but ok"]
    print(f"Each cell: resize {' / '.join(MODES)}.\n")
    print(markdown_table(headers, rows))
    vignette = f"corners {VIGNETTE * 100:.0f} % darker"
    print(f"\n## Empty frames ({EMPTY_FRAMES_PER_SURFACE} a surface, {vignette})\n")
    print(markdown_table(["surface", *(f"resize {mode}" for mode in MODES)], empty))
    return 0


if __name__ == "__main__":
    sys.exit(main())

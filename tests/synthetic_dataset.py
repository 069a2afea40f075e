"""A tiny synthetic e-waste-style dataset for tests: no network, no real photos.

`make_dataset` writes DATA/{train,val,test}/<class>/<class>_<n>.jpg. Each class has its own
colour, so a small model can learn it; each image has its own random texture, so no two
images are duplicates (exact or perceptual) unless a test plants one on purpose.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_CLASSES: tuple[str, ...] = ("alpha", "beta", "gamma")
DEFAULT_PER_SPLIT: Mapping[str, int] = {"train": 6, "val": 3, "test": 3}
# Coarse enough to survive JPEG and resizing, fine enough to give every image a distinct
# perceptual hash (its low DCT frequencies are random).
_TEXTURE_CELLS = 12


def class_colour(index: int, count: int) -> tuple[int, int, int]:
    """A saturated colour per class, evenly spread around the hue circle."""
    r, g, b = colorsys.hsv_to_rgb(index / max(1, count), 0.85, 0.95)
    return round(255 * r), round(255 * g), round(255 * b)


def synthetic_image(
    colour: Sequence[int], size: tuple[int, int], rng: np.random.Generator
) -> Image.Image:
    """One image: the class colour modulated by a random smooth texture, plus a little noise."""
    height, width = size
    cells = rng.uniform(0.3, 1.0, (_TEXTURE_CELLS, _TEXTURE_CELLS)).astype(np.float32)
    texture = Image.fromarray(cells, "F").resize((width, height), Image.Resampling.BILINEAR)
    shade = np.asarray(texture)[..., None]
    pixels = shade * np.asarray(colour, dtype=np.float32) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_dataset(
    root: str | Path,
    classes: Sequence[str] = DEFAULT_CLASSES,
    per_split: Mapping[str, int] | None = None,
    size: int | tuple[int, int] = 32,
    *,
    seed: int = 0,
    quality: int = 92,
) -> Path:
    """Write a dataset under `root` and return `root`.

    classes: class folder names (the same in every split).
    per_split: images per class in each split, e.g. {"train": 6, "val": 3, "test": 3}.
    size: image side, or (height, width).
    """
    root = Path(root)
    per_split = DEFAULT_PER_SPLIT if per_split is None else per_split
    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    for split, count in per_split.items():
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = class_colour(index, len(classes))
            for n in range(count):
                image = synthetic_image(colour, (height, width), rng)
                image.save(folder / f"{name}_{n}.jpg", quality=quality)
    return root

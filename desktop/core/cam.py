"""Class activation maps: where in the image the model found evidence for a class.

The converter's `--cam` output is the last convolutional feature map times the final Dense
kernel, one (h, w) grid of scores per class (4x4 for a 128-pixel input). The grid covers
the model's whole input: cell (i, j) is the region around ((i + 0.5) / h, (j + 0.5) / w) of
its height and width. A stretched image fills the input, whatever its aspect ratio; a
letterboxed one fills only its box in it, the rest being padding; the "item" mode's input
is a square around the item, often a small part of the photo. `preprocessing.input_rect`
says where the input lies over the photo, and the map is drawn there. NumPy only, so the
GUI, the web page and the tests share one definition.
"""

from __future__ import annotations

import numpy as np


def cam_heatmap(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A class's (h, w) map as a (height, width) float32 heatmap in 0..1.

    Upsampled bilinearly to `size` (height, width) with pixel centres aligned (like
    Pillow's and OpenCV's resize, edges clamped), then ReLU (negative evidence is not
    "looked here") and divided by the maximum. A map with nothing positive gives zeros.
    """
    grid = np.nan_to_num(np.asarray(cam, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"a CAM is a (h, w) grid, got shape {grid.shape}")
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"heatmap size must be positive, got {size}")
    # Separable bilinear interpolation as two small matrix products: rows, then columns.
    upsampled = (
        _interpolation(height, grid.shape[0]) @ grid @ _interpolation(width, grid.shape[1]).T
    )
    heat = np.maximum(upsampled, 0.0)
    peak = heat.max()
    if peak <= 0.0:
        return np.zeros((height, width), dtype=np.float32)
    return (heat / peak).astype(np.float32)


def cam_heatmap_over_image(
    cam: np.ndarray, image_size: tuple[int, int], rect: tuple[float, float, float, float]
) -> np.ndarray:
    """The (height, width) heatmap over an image shown at `image_size` (height, width),
    where the model's whole input covered `rect` of it (left, top, width, height, as
    fractions of the image: `preprocessing.input_rect`): the input's map drawn over that
    rect, cut to the image. Parts of the image outside the input (cropped away) get zero;
    scaled by the maximum over the whole input, as the app paints."""
    height, width = image_size
    left, top, rect_width, rect_height = rect
    x0, y0 = round(left * width), round(top * height)
    x1, y1 = round((left + rect_width) * width), round((top + rect_height) * height)
    whole = cam_heatmap(cam, (max(1, y1 - y0), max(1, x1 - x0)))
    heat = np.zeros((height, width), dtype=np.float32)
    # The part of the image the input covers (empty if none), and the same part of the map.
    top_row = min(max(0, y0), height)
    bottom_row = max(top_row, min(height, y1))
    left_column = min(max(0, x0), width)
    right_column = max(left_column, min(width, x1))
    heat[top_row:bottom_row, left_column:right_column] = whole[
        top_row - y0 : bottom_row - y0, left_column - x0 : right_column - x0
    ]
    return heat


def _interpolation(out_size: int, in_size: int) -> np.ndarray:
    """The (out_size, in_size) matrix of bilinear weights with half-pixel centres."""
    source = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    source = np.clip(source, 0.0, in_size - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    frac = source - low
    weights = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights

"""Class activation maps: where in the image the model found evidence for a class.

The converter's `--cam` output is the last convolutional feature map times the final Dense
kernel, one (h, w) grid of scores per class (4x4 for a 128-pixel input). The grid covers
the model's whole input: cell (i, j) is the region around ((i + 0.5) / h, (j + 0.5) / w) of
its height and width. A stretched image fills the input, whatever its aspect ratio; a
letterboxed one fills only its box in it (`preprocessing.image_box`), the rest being
padding, so its map is the part of the input's map over that box. NumPy only, so the GUI,
the web page and the tests share one definition.
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
    cam: np.ndarray,
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """The (height, width) heatmap over an image shown at `image_size` (height, width) that
    filled `box` (left, top, width, height; see `preprocessing.image_box`) of the model's
    input of `input_size` (height, width): the whole input's map drawn at the image's scale,
    then cut to the image. Scaled by the maximum over the whole input, as the app paints."""
    height, width = image_size
    left, top, box_width, box_height = box
    input_height, input_width = input_size
    scale_y, scale_x = height / box_height, width / box_width
    whole = cam_heatmap(cam, (round(input_height * scale_y), round(input_width * scale_x)))
    y0, x0 = round(top * scale_y), round(left * scale_x)
    cut = whole[y0 : y0 + height, x0 : x0 + width]
    if cut.shape != (height, width):  # rounding left a row or column short: repeat the edge
        cut = np.pad(cut, [(0, height - cut.shape[0]), (0, width - cut.shape[1])], mode="edge")
    return cut


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

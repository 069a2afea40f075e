"""Class activation maps: where in the image the model found evidence for a class.

The converter's `--cam` output is the last convolutional feature map times the final Dense
kernel, one (h, w) grid of scores per class (4x4 for a 128-pixel input). The model input is
the whole image resized without crop or padding, so the grid covers the whole image: cell
(i, j) is the region around ((i + 0.5) / h, (j + 0.5) / w) of the image's height and width,
whatever its aspect ratio. NumPy only, so the GUI and tests share one definition.
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

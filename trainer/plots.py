"""Pictures for the audit and the evaluation report (matplotlib, Agg, no pyplot state).

Every function draws from plain data (dicts and lists, the same values that go into the JSON
files) and returns the path it wrote. Figures are built with `Figure` + `FigureCanvasAgg`
directly, so nothing depends on a display or on pyplot's global figure list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from desktop.core.preprocessing import DECODED_FORMATS, ImageLoadError, load_rgb
from desktop.core.safe_files import replaced_whole

SPLIT_COLOURS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
_DPI = 100
_EXIF_ORIENTATION = 0x0112


def _new_figure(width: float, height: float) -> Figure:
    # Constrained layout keeps titles and captions clear of the images without guesswork.
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    """Write the picture whole or not at all: a run stopped mid-save keeps the previous
    picture, never a torn one that the report links to."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_whole(path, "wb") as handle:
        figure.savefig(handle, format=path.suffix.lstrip(".").lower(), bbox_inches="tight")
    return path


def _text_figure(path: Path, text: str) -> Path:
    figure = _new_figure(6, 1.5)
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=14)
    return _save(figure, path)


def thumbnail(path: Path, side: int = 150) -> np.ndarray:
    """The image as the shared loader decodes it, scaled to fit `side` keeping its aspect.

    An unreadable file becomes a grey square, so one bad file never breaks a picture.
    """
    try:
        with Image.open(path, formats=DECODED_FORMATS) as image:
            width, height = image.size
            if image.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                width, height = height, width  # load_rgb applies the rotation
        scale = side / max(width, height)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        return load_rgb(path, size)
    except (ImageLoadError, OSError, ValueError, SyntaxError):
        return np.full((side, side, 3), 128, dtype=np.uint8)


def _image_axis(axis, pixels: np.ndarray, caption: str, colour: str = "black", size: int = 8):
    axis.imshow(pixels)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(caption, fontsize=size, color=colour)


# ---------------------------------------------------------------------------------------------
# Audit pictures


def class_distribution(
    counts: Mapping[str, Mapping[str, int]], class_names: Sequence[str], path: Path
) -> Path:
    """Grouped bar chart: images per class, one bar per split, with the counts written on."""
    splits = list(counts)
    x = np.arange(len(class_names))
    width = 0.8 / max(1, len(splits))
    figure = _new_figure(max(8, 0.9 * len(class_names) + 2), 4.5)
    axis = figure.add_subplot()
    for n, split in enumerate(splits):
        values = [counts[split].get(name, 0) for name in class_names]
        bars = axis.bar(
            x + (n - (len(splits) - 1) / 2) * width,
            values,
            width,
            label=f"{split} ({sum(values)})",
            color=SPLIT_COLOURS.get(split),
        )
        axis.bar_label(bars, fontsize=7)
    axis.set_xticks(x, class_names, rotation=30, ha="right")
    top = max([max(c.values(), default=0) for c in counts.values()] + [1])
    axis.set_ylim(0, top * 1.25)  # headroom so the legend never hides a bar
    axis.set_ylabel("images")
    axis.set_title("Class distribution per split (readable images)")
    axis.legend(loc="upper center", ncol=max(1, len(splits)))
    return _save(figure, path)


def sample_grid(
    samples: Mapping[str, Sequence[str]], root: Path, path: Path, side: int = 96
) -> Path:
    """One row per class with a few of its images; `samples` maps class -> relative paths."""
    rows = [name for name in samples]
    columns = max([len(v) for v in samples.values()] + [1])
    figure = _new_figure(1.3 * columns + 1.2, 1.3 * len(rows) + 0.5)
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for r, name in enumerate(rows):
        for c in range(columns):
            axis = grid[r][c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c < len(samples[name]):
                axis.imshow(thumbnail(Path(root) / samples[name][c], side))
            else:
                axis.set_axis_off()
        grid[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    figure.suptitle("Sample images per class")
    return _save(figure, path)


def image_pairs(
    pairs: Sequence[Mapping[str, Any]],
    root: Path,
    path: Path,
    *,
    title: str,
    empty_text: str,
    pairs_per_row: int = 3,
    side: int = 150,
) -> Path:
    """Image pairs side by side; each pair has 'a', 'b' (paths), their captions and a title."""
    if not pairs:
        return _text_figure(path, empty_text)
    rows = math.ceil(len(pairs) / pairs_per_row)
    figure = _new_figure(2.1 * 2 * pairs_per_row, 2.5 * rows + 0.6)
    grid = figure.subplots(rows, 2 * pairs_per_row, squeeze=False)
    for axis in grid.flat:
        axis.set_axis_off()
    for n, pair in enumerate(pairs):
        r, c = divmod(n, pairs_per_row)
        alarming = any(flag in pair["title"] for flag in ("CONFLICT", "CROSS-SPLIT"))
        colour = "firebrick" if alarming else "black"
        for k, key in enumerate(("a", "b")):
            axis = grid[r][2 * c + k]
            axis.set_axis_on()
            caption = f"{pair[key + '_caption']}\n{Path(pair[key]).name}"
            if k == 0:
                caption = f"{pair['title']}\n{caption}"
            _image_axis(axis, thumbnail(Path(root) / pair[key], side), caption, colour, 7)
    figure.suptitle(title)
    return _save(figure, path)


# ---------------------------------------------------------------------------------------------
# Evaluation pictures


def confusion_matrix(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path
) -> Path:
    """Counts, rows = true class, columns = predicted class; colour = share of the true class."""
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    n = len(class_names)
    figure = _new_figure(max(6, 0.75 * n + 2.5), max(5, 0.7 * n + 2))
    axis = figure.add_subplot()
    image = axis.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if counts[i, j] or i == j:
                axis.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    axis.set_xticks(range(n), class_names, rotation=45, ha="right")
    axis.set_yticks(range(n), class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(f"Confusion matrix (counts, n = {int(counts.sum())})")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    return _save(figure, path)


def training_curves(history: Mapping[str, Sequence[float]], path: Path) -> Path:
    """Accuracy and loss per epoch, train vs validation (+ learning rate when recorded)."""
    panels = [("accuracy", "Accuracy"), ("loss", "Loss")]
    if history.get("learning_rate") or history.get("lr"):
        panels.append(("learning_rate" if history.get("learning_rate") else "lr", "Learning rate"))
    figure = _new_figure(5 * len(panels), 4)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (key, title) in zip(axes, panels, strict=True):
        drawn = False
        train_label = "learning rate" if key in ("learning_rate", "lr") else "train"
        for name, label, style in ((key, train_label, "-"), (f"val_{key}", "validation", "--")):
            values = history.get(name)
            if values:
                epochs = np.arange(1, len(values) + 1)
                axis.plot(epochs, values, style, marker="o", markersize=3, label=label)
                drawn = True
        if key in ("learning_rate", "lr"):
            axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if drawn:
            axis.legend()
        else:
            axis.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=axis.transAxes)
    return _save(figure, path)


def misclassified_grid(
    items: Sequence[Mapping[str, Any]],
    root: Path,
    path: Path,
    *,
    total: int,
    columns: int = 6,
    side: int = 128,
) -> Path:
    """Grid of wrong predictions: each item has 'path', 'true', 'predicted', 'confidence'."""
    if not items:
        return _text_figure(path, "No misclassified images")
    rows = math.ceil(len(items) / columns)
    figure = _new_figure(2.1 * columns, 2.5 * rows + 0.6)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axis in grid.flat:
        axis.set_axis_off()
    for n, item in enumerate(items):
        axis = grid[n // columns][n % columns]
        axis.set_axis_on()
        caption = (
            f"true: {item['true']}\npred: {item['predicted']} ({item['confidence']:.2f})"
            f"\n{Path(item['path']).name}"
        )
        _image_axis(axis, thumbnail(Path(root) / item["path"], side), caption, "firebrick", 7)
    shown = f"{len(items)} of {total}" if total > len(items) else f"all {total}"
    figure.suptitle(f"Misclassified images ({shown}, most confident mistakes first)")
    return _save(figure, path)


def reliability_diagram(
    curves: Mapping[str, Sequence[tuple[float, float, int]]], path: Path
) -> Path:
    """Accuracy against confidence per bin, one line per named curve (e.g. before and after
    calibration); a calibrated model lies on the diagonal."""
    figure = _new_figure(5, 5)
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for name, bins in curves.items():
        confidence, accuracy, _ = zip(*bins, strict=True) if bins else ((), (), ())
        axis.plot(confidence, accuracy, marker="o", markersize=4, label=name)
    axis.set_xlabel("confidence (top probability)")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left")
    axis.set_title("Reliability on validation")
    return _save(figure, path)

"""Small helpers shared by the benchmark scripts: reporting and environment facts."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import desktop.core  # noqa: F401  (first: importing it turns ONNX Runtime's telemetry off)

# isort: split
import onnxruntime as ort

from desktop.core.engine import Engine
from desktop.core.results import Prediction
from trainer.dataset import SPLIT_ALIASES

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "ewaste" / "train"
PHOTO_SUFFIXES = {".jpg", ".png"}


def refuse_a_test_split(parser: argparse.ArgumentParser, folder: Path, option: str) -> None:
    """A test split, or a dataset's root holding one, given to a benchmark is refused: the
    test split, read once for the shipped model, must not be run through anything again."""
    if (folder / "test").is_dir():
        parser.error(f"{option} {folder} holds a test split: give its train (or val) folder")
    here = folder.resolve()
    if is_test_split(here.name) or is_test_split(here.parent.name):  # the split, or a class
        parser.error(f"{option} {folder} is in a test split: give a train (or val) folder")


def is_test_split(name: str) -> bool:
    return SPLIT_ALIASES.get(name.lower()) == "test"


def add_photos_argument(parser: argparse.ArgumentParser) -> None:
    """--data: the folder of photos a benchmark times (`photos_to_time` refuses a test split)."""
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATASET,
        help="a folder of photos, such as the dataset's train/ (default: %(default)s)",
    )


def classified_copies(engine: Engine, images: Sequence[Path], folder: Path) -> list[Prediction]:
    """`images` copied into `folder` (made here; the sorts to time then move or link them
    there, never in the dataset), classified once with `engine`, in name order."""
    folder.mkdir()
    for index, path in enumerate(images):
        shutil.copy(path, folder / f"{index:05d}-{path.name}")
    files = sorted(folder.iterdir())
    return [p for batch in engine.classify(files, with_cam=False) for p in batch]


def photos_to_time(parser: argparse.ArgumentParser, folder: Path, option: str) -> list[Path]:
    """The JPEG and PNG photos under `folder` (not a dataset's root), for a script that
    copies, sorts or times them."""
    refuse_a_test_split(parser, folder, option)
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        parser.error(f"{option} {folder} holds no JPEG or PNG photo")
    return photos


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --data (a dataset's root) and --split, for a script that scores a model
    on variants of one labelled split (`labelled_split` refuses the test split)."""
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATASET.parent)
    parser.add_argument("--split", default="val", help="train or val (never test)")


def labelled_split(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list:
    """(path, class name) of every image of the split `args` names, in name order. The
    test split is refused: what these scripts measure are choices and limits, not made on
    test."""
    if is_test_split(args.split):
        parser.error("--split: give train or val; the test split is read once, for the model")
    split = split_folder(args.data, args.split)
    items = sorted(
        (path, folder.name)
        for folder in (split.iterdir() if split.is_dir() else [])
        if folder.is_dir()
        for path in folder.iterdir()
        if path.is_file()
    )
    if not items:
        parser.error(f"--data: no images in {split}")
    return items


def split_folder(root: Path, split: str) -> Path:
    """`root`'s folder of `split` under any name the trainer takes (val or validation)."""
    wanted = SPLIT_ALIASES.get(split, split)
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and SPLIT_ALIASES.get(child.name.lower()) == wanted:
            return child
    return root / split


def command_line() -> str:
    """The command that produced this report, ready to paste into a shell."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def environment() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, ONNX Runtime {ort.__version__}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(r) for r in cells[1:])])


def median_p90_ms(seconds: Sequence[float]) -> tuple[float, float]:
    samples = np.asarray(seconds, dtype=np.float64) * 1000.0
    return float(np.median(samples)), float(np.percentile(samples, 90))


def positive_ints(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise ValueError(f"expected comma-separated positive integers, got {text!r}")
    return values


def warm_page_cache(paths: Sequence[Path]) -> int:
    """Read every file once so all pipelines start from the same (cached) disk state."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # the pipelines report unreadable files
            total += len(path.read_bytes())
    return total


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def display_path(path: Path) -> str:
    """`path` relative to the repository when inside it, else to its parent folder when
    inside that (reports must not carry this machine's absolute paths), else its name."""
    resolved = Path(path).resolve()
    for root in (REPO_ROOT, REPO_ROOT.parent):
        if resolved.is_relative_to(root):
            return str(resolved.relative_to(root))
    return resolved.name

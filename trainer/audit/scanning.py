"""Reading every image of a dataset once: its bytes' hash, its pHash and its header."""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from desktop.core.preprocessing import DECODED_FORMATS, ImageLoadError, load_rgb
from trainer.audit.hashing import HASH_SOURCE, phash
from trainer.dataset import SPLITS, Dataset, Sample
from trainer.run_folder import UnreadableFile


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One readable image: where it is, what it is, and its fingerprints."""

    path: str  # relative to the dataset root, POSIX
    split: str
    label: str
    sha256: str
    phash: np.ndarray  # (HASH_BITS,) bool
    width: int
    height: int
    mode: str
    format: str


def relative_path(path: Path, root: Path) -> str:
    """`path` as audit.json names it: POSIX, relative to the dataset root."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def inspect(sample: Sample, split: str, label: str, root: Path) -> ImageRecord | UnreadableFile:
    """Read one file once: hash its bytes, decode it with the shared loader, read its header."""
    rel = relative_path(sample.path, root)
    try:
        data = sample.path.read_bytes()
    except OSError as exc:
        return UnreadableFile(rel, split, label, f"cannot read file: {exc.strerror or exc}")
    try:
        rgb = load_rgb(sample.path, (HASH_SOURCE, HASH_SOURCE))
        # Header only (no decode): the file's own size, mode and format, before conversion.
        with Image.open(io.BytesIO(data), formats=DECODED_FORMATS) as image:
            width, height, mode, fmt = image.width, image.height, image.mode, image.format
    except ImageLoadError as exc:
        return UnreadableFile(rel, split, label, exc.reason)
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the audit
        return UnreadableFile(rel, split, label, f"{type(exc).__name__}: {exc}")
    return ImageRecord(
        path=rel,
        split=split,
        label=label,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(rgb),
        width=width,
        height=height,
        mode=mode,
        format=fmt or "unknown",
    )


def scan(
    dataset: Dataset, workers: int | None = None
) -> tuple[list[ImageRecord], list[UnreadableFile]]:
    """Inspect every indexed image; readable ones become records, the rest are listed."""
    jobs = [
        (sample, split, dataset.class_names[sample.label])
        for split in SPLITS
        for sample in dataset.splits[split].samples
    ]
    workers = workers or min(4, os.cpu_count() or 1)
    # Threads suffice: file reads, hashlib and Pillow's decoder release the GIL.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: inspect(*job, dataset.root), jobs))
    records = [r for r in results if isinstance(r, ImageRecord)]
    unreadable = [r for r in results if isinstance(r, UnreadableFile)]
    return records, unreadable

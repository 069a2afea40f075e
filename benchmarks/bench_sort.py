"""Sorting classified photos into class folders: seconds for copy, move and undo.

    python benchmarks/bench_sort.py [--data DATASET/train] [--model M.onnx]

Copies every image of the training split (2,400 for the e-waste set; never the test
split, read once, for the shipped model) into a temporary folder, classifies them once
(untimed), then times `desktop.core.sorting.sort_into` with copy, with
move, and `undo_sort`, each from the same starting state. A copy always copies the bytes
(fsync, compare SHA-256, then the name); a move on the same file system is a hard link and
a delete, and "another disk" times a move to a FAT stick or another disk, forced by making
hard links fail.
"""

from __future__ import annotations

import argparse
import errno
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_common import (
    add_photos_argument,
    classified_copies,
    command_line,
    environment,
    markdown_table,
    photos_to_time,
)

import desktop.core.sort_undo as sort_undo
import desktop.core.sorting as sorting
from desktop.core.engine import Engine
from desktop.core.results import DEFAULT_REVIEW_THRESHOLD


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_photos_argument(parser)
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    args = parser.parse_args(argv)
    images = photos_to_time(parser, args.data, "--data")
    engine = Engine(args.model)
    names = list(engine.class_names)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        predictions = classified_copies(engine, images, Path(scratch) / "photos")
        for label, move, hard_links in (
            ("copy", False, True),
            ("move (same file system)", True, True),
            ("move (another disk: byte copy)", True, False),
        ):
            dest = Path(scratch) / f"sorted-{len(rows)}"
            real_link = os.link
            if not hard_links:
                os.link = _refuse_link  # type: ignore[assignment]
            try:
                started = time.perf_counter()
                report = sorting.sort_into(
                    predictions, dest, names, DEFAULT_REVIEW_THRESHOLD, move=move
                )
                seconds = time.perf_counter() - started
                started = time.perf_counter()
                undone = sort_undo.undo_sort(dest)
                undo_seconds = time.perf_counter() - started
            finally:
                os.link = real_link
            assert len(report.filed) == len(predictions) and not undone.failed
            rows.append([label, len(report.filed), f"{seconds:.2f} s", f"{undo_seconds:.2f} s"])
    print("# Sorting classified photos into class folders\n")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}\n")
    print(markdown_table(["sort", "photos", "sort", "undo"], rows))
    return 0


def _refuse_link(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


if __name__ == "__main__":
    raise SystemExit(main())

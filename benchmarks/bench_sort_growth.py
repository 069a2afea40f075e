"""Sorting one more photo into a destination that already holds many: seconds per photo.

    python benchmarks/bench_sort_growth.py [--data DATASET/train] [--sizes 1000,5000,10000,20000]

A sorting watch (`ewaste-classify --watch CAMERA --sort-into DEST`) files each batch with
`desktop.core.sorting.sort_into`, which reads DEST's whole manifest first: this measures
how that grows with the photos filed there. Classifies the photos of --data once
(untimed; never the test split), fills DEST with hard links to them under new names,
sorted in large batches (untimed), and at each size times sorting a single photo (the
median of three).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench_common import (
    add_photos_argument,
    classified_copies,
    command_line,
    environment,
    markdown_table,
    photos_to_time,
    positive_ints,
)

import desktop.core.sorting as sorting
from desktop.core.engine import Engine
from desktop.core.results import DEFAULT_REVIEW_THRESHOLD, Prediction

TIMED_PHOTOS = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_photos_argument(parser)
    parser.add_argument(
        "--sizes",
        type=positive_ints,
        default=[1_000, 5_000, 10_000, 20_000],
        help="photos already in DEST when one more is timed (default: 1000,5000,10000,20000)",
    )
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    args = parser.parse_args(argv)
    images = photos_to_time(parser, args.data, "--data")
    engine = Engine(args.model)
    names = list(engine.class_names)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        # Copied beside the links made to them below: one file system.
        classified = classified_copies(engine, images, Path(scratch) / "originals")
        photos, dest = Path(scratch) / "photos", Path(scratch) / "sorted"
        photos.mkdir()
        made = 0

        def new_photos(count: int) -> list[Prediction]:
            """`count` photos under names of their own (hard links: no bytes copied)."""
            nonlocal made
            batch = []
            for _ in range(count):
                source = classified[made % len(classified)]
                path = photos / f"{made:06d}{Path(source.path).suffix}"
                os.link(source.path, path)
                batch.append(replace(source, path=str(path)))
                made += 1
            return batch

        filed = 0
        for size in sorted(args.sizes):
            more = new_photos(max(0, size - filed))
            sorting.sort_into(more, dest, names, DEFAULT_REVIEW_THRESHOLD)
            seconds = []
            for one in new_photos(TIMED_PHOTOS):
                started = time.perf_counter()
                sorting.sort_into([one], dest, names, DEFAULT_REVIEW_THRESHOLD)
                seconds.append(time.perf_counter() - started)
            filed = size + TIMED_PHOTOS
            rows.append([size, f"{statistics.median(seconds):.2f} s"])
    print("# Sorting one more photo into a destination that holds many\n")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}\n")
    print(markdown_table(["photos in DEST", "one more photo"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

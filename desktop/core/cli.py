"""`ewaste-classify`: classify files and folders without the GUI and write a CSV.

    ewaste-classify PHOTOS/ more.jpg --csv results.csv [--batch 32] [--threads N]
                    [--model MODEL.onnx] [--review-threshold 0.6] [--flip-average]

Exit status: 0 when the run completed (files that could not be read are error rows in the
CSV, they do not fail the run); 2 for a usage error or an unusable model; 1 when the CSV
cannot be written; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .argtypes import positive_int, probability
from .csv_export import write_results_csv
from .discovery import Collection, collect_images
from .engine import Engine
from .model_info import ModelError
from .results import DEFAULT_REVIEW_THRESHOLD, Prediction, count_statuses

PROG = "ewaste-classify"
EXIT_OK = 0
EXIT_WRITE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with the command line the user can fix; the message says how."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code or 0)
    try:
        output = _checked_output_path(args.csv)
        engine = Engine(args.model, threads=args.threads)
    except (UsageError, ModelError) as exc:
        _error(str(exc))
        return EXIT_USAGE

    predictions: list[Prediction] = []
    collection: Collection | None = None
    try:
        collection = collect_images(args.paths)
        print(
            f"{len(collection.images)} images to classify with {engine.model_path.name} "
            f"({engine.provider})",
            file=sys.stderr,
        )
        progress = Progress(len(collection.images), sys.stderr)
        batches = engine.classify(
            collection.images, batch_size=args.batch, flip_average=args.flip_average
        )
        for batch in batches:
            predictions.extend(batch)
            progress.update(len(predictions))
        progress.finish()
    except KeyboardInterrupt:
        if sys.stderr.isatty():
            print(file=sys.stderr)  # end the progress line redrawn in place
        # Keep the work done: the finished rows go to the CSV, and the message and the
        # exit status say the run is incomplete.
        total = len(collection.images) if collection else 0
        _error(
            f"interrupted after {len(predictions)} of {total} images; "
            f"writing the {len(predictions)} finished rows"
        )
        if _write_csv(output, predictions, engine.class_names, args.review_threshold):
            print(f"wrote {len(predictions)} rows (incomplete run) to {output}")
        return EXIT_INTERRUPTED

    rows = predictions + collection.problems
    if not _write_csv(output, rows, engine.class_names, args.review_threshold):
        return EXIT_WRITE_FAILED

    counts = count_statuses(rows, args.review_threshold)
    print(f"wrote {len(rows)} rows to {output}")
    print(
        f"{counts.ok} ok, {counts.review} to review (confidence under "
        f"{args.review_threshold:g}), {counts.error} errors; "
        f"{collection.skipped} non-image file{'' if collection.skipped == 1 else 's'} skipped"
    )
    return EXIT_OK


def _write_csv(output: Path, rows: list[Prediction], class_names, threshold: float) -> bool:
    """Write the CSV; on failure say why and return False."""
    try:
        write_results_csv(output, rows, class_names, threshold)
    except OSError as exc:
        _error(f"cannot write {output}: {exc.strerror or exc}")
        return False
    except ValueError as exc:  # rows the CSV cannot hold; the message says which
        _error(f"cannot write {output}: {exc}")
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Classify e-waste photos (files and folders, recursively) into a CSV.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--csv", required=True, metavar="OUT", help="CSV file to write")
    parser.add_argument(
        "--batch", type=positive_int, default=32, help="images per inference batch (32)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="ONNX Runtime threads (default: one per physical core)",
    )
    parser.add_argument(
        "--model", default=None, metavar="MODEL.onnx", help="model file (default: shipped)"
    )
    parser.add_argument(
        "--review-threshold",
        type=probability,
        default=DEFAULT_REVIEW_THRESHOLD,
        metavar="P",
        help=f"flag predictions under this confidence for review ({DEFAULT_REVIEW_THRESHOLD})",
    )
    parser.add_argument(
        "--flip-average",
        action="store_true",
        help="also classify each image mirrored and average the two: can be a little "
        "more accurate, at half the speed",
    )
    return parser


class Progress:
    """done/total and images per second: redrawn in place on a terminal, else a line
    every few seconds (so a log file does not get one line per batch)."""

    LOG_INTERVAL_SECONDS = 5.0

    def __init__(self, total: int, stream: TextIO) -> None:
        self._total = total
        self._stream = stream
        self._interactive = stream.isatty()
        self._start = time.perf_counter()
        self._last_line = float("-inf")
        self._done = 0

    def update(self, done: int) -> None:
        self._done = done
        now = time.perf_counter()
        if self._interactive:
            self._stream.write("\r" + self._text(now))
            self._stream.flush()
        elif now - self._last_line >= self.LOG_INTERVAL_SECONDS:
            self._last_line = now
            self._stream.write(self._text(now) + "\n")

    def finish(self) -> None:
        prefix = "\r" if self._interactive else ""
        self._stream.write(prefix + self._text(time.perf_counter()) + "\n")
        self._stream.flush()

    def _text(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = self._done / elapsed
        return f"classified {self._done}/{self._total} ({rate:.1f} images/s)"


def _checked_output_path(raw: str) -> Path:
    """The CSV path, checked before any work: an existing, writable folder is required."""
    output = Path(raw)
    if output.is_dir():
        raise UsageError(f"--csv {raw} is a folder; give a file name such as {raw}/results.csv")
    folder = output.parent
    if not folder.is_dir():
        raise UsageError(f"output folder does not exist: {folder} (create it first)")
    probe = folder / f".{PROG}-write-test-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from exc
    return output


def _error(message: str) -> None:
    # One line, even when a reason (e.g. from ONNX Runtime) spans several.
    print(f"{PROG}: error: {' '.join(message.splitlines())}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

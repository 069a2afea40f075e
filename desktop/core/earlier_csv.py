"""What the CSV a batch run is about to replace holds (`ewaste-classify PATHS --csv OUT`).

A run replaces the results CSV at its --csv, as a command's output does, but never work:
- it replaces nothing but a results CSV of this app: not a photo (a slip such as
  `--csv *.jpg`), a sort's manifest, or another spreadsheet;
- nor one holding classes a person confirmed in the app;
- a --move sort stopped midway (a full disk, Ctrl+C) moved some photos out of the folders
  it classified; run again to finish, it no longer finds them, so their rows are carried
  over from the CSV it replaces and the CSV still lists the whole batch.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from .csv_export import CONFIRMED_COLUMN, CSV_ENCODING, FIXED_COLUMNS, results_header
from .csv_export import unguarded_text as _text
from .csv_import import CsvImportError, prediction_from_row
from .preprocessing import is_photo_file
from .results import Prediction
from .sorting import SortError, moved_away


def why_not_replace(output: Path) -> str | None:
    """Why the file at `output` must not be replaced by a results CSV, or None."""
    if is_photo_file(output):
        return f"{output} names an image, which the CSV would replace: give a name ending in .csv"
    if not output.is_file() or output.stat().st_size == 0:
        return None
    try:
        with output.open(encoding=CSV_ENCODING, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if tuple(header[: len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
                return f"{output} is not a results CSV of this app; give another name"
            if CONFIRMED_COLUMN in header:
                column = header.index(CONFIRMED_COLUMN)
                if any(len(row) > column and row[column].strip() for row in reader):
                    return (
                        f"{output} holds classes a person confirmed in the app, which this "
                        f"run would replace: give another name"
                    )
    except (OSError, UnicodeDecodeError, csv.Error):
        return f"{output} is not a results CSV of this app; give another name"
    return None


def rows_moved_before(
    output: Path, dest: Path, images: Sequence[Path], class_names: Sequence[str]
) -> list[Prediction]:
    """The rows, in the CSV at `output`, of the photos an earlier sort moved into `dest`
    and that this run (classifying `images`) does not find any more. Only when that CSV
    lists photos this run classifies, the batch it finishes: a new day's run into the
    same CSV and folder starts afresh."""
    try:
        moved = moved_away(dest)
    except SortError:  # refused before the run by check_destination
        return []
    if not moved or not output.is_file():
        return []
    now = {str(path) for path in images}
    kept: list[Prediction] = []
    finishes = False
    try:
        for number, row in _rows(output, class_names):
            path = _text(row[0])
            if path in now:
                finishes = True
            elif path in moved:
                kept.append(prediction_from_row(row, len(class_names), f"line {number}"))
    except (OSError, UnicodeDecodeError, csv.Error, CsvImportError):
        return []  # not a CSV of this model's classes: nothing of it to keep
    return kept if finishes else []


def _rows(path: Path, class_names: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """The data rows of a results CSV of these classes, numbered as lines."""
    expected = results_header(class_names)
    with path.open(encoding=CSV_ENCODING, newline="") as handle:
        reader = csv.reader(handle)
        if next(reader, []) not in (expected, expected[:-1]):  # without confirmations: older
            raise CsvImportError(f"{path.name} is not a results CSV of these classes")
        for number, row in enumerate(reader, start=2):
            if len(row) >= len(expected) - 1:
                yield number, row

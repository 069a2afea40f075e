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
import os
from collections.abc import Sequence
from pathlib import Path

from .csv_export import CONFIRMED_COLUMN, CSV_ENCODING, FIXED_COLUMNS
from .csv_export import unguarded_text as _text
from .csv_import import CsvImportError, prediction_from_row, results_rows
from .hashing import file_sha256
from .preprocessing import is_photo_file
from .results import Prediction
from .sort_history import earlier_moves
from .sort_records import Filed, SortError, reason_for


def why_not_replace(output: Path) -> str | None:
    """Why the file at `output` must not be replaced by a results CSV, or None."""
    if is_photo_file(output):
        return f"{output} has a photo's name: give a name ending in .csv"
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
    except OSError as exc:  # not its contents: renaming a good file would not help
        return f"{output} cannot be read to check what it holds: {reason_for(exc)}"
    except (UnicodeDecodeError, csv.Error):
        return f"{output} is not a results CSV of this app; give another name"
    return None


def rows_moved_before(
    output: Path, dest: Path, images: Sequence[Path], class_names: Sequence[str]
) -> list[Prediction]:
    """The rows, in the CSV at `output`, of the photos a sort moved into `dest` that this
    run (classifying `images`) no longer finds, when this run finishes that CSV's batch:
    it classifies photos the CSV lists (the same photos, not new ones under names a sort
    moved before: a camera's counter reset), or nothing at all (the sort was done)."""
    try:
        moves = earlier_moves(dest)
    except SortError:  # a manifest it cannot read: the sort that follows says so
        return []
    if not moves or not output.is_file():
        return []
    now = {str(path) for path in images}
    finishes = not now
    kept: list[Prediction] = []
    try:
        for number, row in results_rows(output, class_names):
            path = _text(row[0])
            if path in now:
                if path in moves and not _same_photo(path, moves[path]):
                    return []  # a new batch under reused names
                finishes = True
            elif path in moves and not os.path.lexists(path):
                where = f"{output.name}, line {number}"
                kept.append(prediction_from_row(row, len(class_names), where))
    except CsvImportError:
        return []  # not a CSV of this model's classes: nothing of it to keep
    return kept if finishes else []


def _same_photo(path: str, moved: Filed) -> bool:
    """Whether the file at `path` is the photo the manifest row says was moved from there
    (its deletion failed or was cut short), not a new one under its name."""
    try:
        return file_sha256(path) == moved.sha256
    except OSError:
        return False

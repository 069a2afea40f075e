"""Read a results CSV back (File > Open CSV…): a reviewed batch's file format is its CSV.

The probabilities, statuses, errors and confirmed classes come back as they were written,
for the photos that still exist; the others are listed as missing. A CSV of other classes
than the model's, or one that is not a results CSV, is refused with one sentence.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .csv_export import CSV_ENCODING, FIXED_COLUMNS, path_from_text, results_header
from .csv_export import unguarded_text as _text
from .results import STATUS_ERROR, STATUS_UNKNOWN, Prediction

MAX_CSV_BYTES = 200 * 1024 * 1024  # a results CSV of a million photos is about 150 MB


class CsvImportError(Exception):
    """The file is not a results CSV this app can read back; the message says why."""


@dataclass
class ReopenedResults:
    predictions: list[Prediction] = field(default_factory=list)
    confirmed: dict[str, str] = field(default_factory=dict)  # path -> class a person set
    missing: list[str] = field(default_factory=list)  # paths whose file is gone
    # Classes an earlier release let a person set on an unreadable photo: left out, as
    # nothing can use them (the sort files such a photo under _error, the counts skip it).
    dropped_on_errors: int = 0


def read_results_csv(
    path: str | os.PathLike[str],
    class_names: list[str],
    moved: Mapping[str, str] | None = None,
) -> ReopenedResults:
    """The rows of a CSV written by `write_results_csv` for these `class_names`; `moved`:
    where a sort moved photos since (path in the CSV -> path now), for those not found."""
    path = Path(path)
    try:
        too_big = path.stat().st_size > MAX_CSV_BYTES
    except OSError as exc:
        raise CsvImportError(f"cannot read {path.name}: {exc}") from exc
    if too_big:
        raise CsvImportError(f"{path.name} is larger than {MAX_CSV_BYTES >> 20} MB")
    expected = results_header(class_names)
    reopened = ReopenedResults()
    for number, row in results_rows(path, class_names):
        prediction = prediction_from_row(row, len(class_names), f"{path.name}, line {number}")
        now = _where_now(prediction.path, moved or {})
        if now is None:
            reopened.missing.append(prediction.path)
            continue
        prediction = replace(prediction, path=now)
        reopened.predictions.append(prediction)
        confirmed = _text(row[-1]) if len(row) == len(expected) else ""
        if confirmed:
            if confirmed not in class_names:
                raise CsvImportError(f"{path.name}, line {number}: unknown class {confirmed!r}")
            if prediction.ok:
                reopened.confirmed[prediction.path] = confirmed
            else:
                reopened.dropped_on_errors += 1
    return reopened


def _where_now(written: str, moved: Mapping[str, str]) -> str | None:
    """Where the photo a row names is now: there, there once its name's \\xNN escapes are
    bytes again (a name that is not text), or where a sort moved it; None when gone."""
    for candidate in (written, path_from_text(written), moved.get(written)):
        if candidate is not None and os.path.exists(candidate):
            return candidate
    return None


def results_rows(path: Path, class_names: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """The data rows of a results CSV of these classes, each with its line number, read as
    they come; CsvImportError for a file that is not one, or a row of the wrong width."""
    expected = results_header(class_names)
    try:
        with path.open(encoding=CSV_ENCODING, newline="") as handle:
            reader = csv.reader(handle)
            if next(reader, None) not in (expected, expected[:-1]):  # older: no confirmations
                raise CsvImportError(
                    f"{path.name} is not a results CSV of this model's classes "
                    f"({', '.join(class_names)})"
                )
            for number, row in enumerate(reader, start=2):
                if len(row) not in (len(expected), len(expected) - 1):
                    raise CsvImportError(
                        f"{path.name}, line {number}: {len(row)} cells, not {len(expected)}"
                    )
                yield number, row
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CsvImportError(f"cannot read {path.name}: {exc}") from exc


def prediction_from_row(row: list[str], classes: int, where: str) -> Prediction:
    """One row of a results CSV of `classes` classes; `where` names it in an error."""
    path, status, error = _text(row[0]), row[3], _text(row[4])
    if status == STATUS_ERROR:
        return Prediction.failed(path, error or "error")
    start = len(FIXED_COLUMNS)
    try:
        probabilities = np.array([float(cell) for cell in row[start : start + classes]])
    except ValueError as exc:
        raise CsvImportError(f"{where}: a probability is not a number") from exc
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities):
        raise CsvImportError(f"{where}: probabilities must be between 0 and 1")
    unknown = True if status == STATUS_UNKNOWN else None
    return Prediction(path, probabilities, unknown=unknown)

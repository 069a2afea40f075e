"""Write classification results as a CSV file a spreadsheet can open safely.

Columns: path, predicted_class, confidence, status, error, then prob_<class> per class in
the model's order, then confirmed_class (the class a person confirmed or corrected, empty
when nobody did). The file is written to a temporary name in the same folder and moved
into place, so a crash or a full disk never leaves a half-written CSV behind.

The file is always valid UTF-8, and starts with a byte-order mark, as Excel's own "CSV UTF-8"
does: without it Excel reads the file in the PC's legacy code page and "Müller.jpg" shows as
"MÃ¼ller.jpg". Read it back with the "utf-8-sig" codec (`CSV_ENCODING`), which also takes a
file without the mark. A file name that is not valid UTF-8 (on Linux the bytes b"caf\\xe9.jpg"
arrive as the str "caf\\udce9.jpg") is written with the odd bytes escaped: "caf\\xe9.jpg".
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from .folder_lock import LOCK_FILES_STAY, FolderLock, held_elsewhere
from .results import DEFAULT_REVIEW_THRESHOLD, SIGNIFICANT_DIGITS, Prediction, status_of
from .safe_files import append_whole, is_file_at, open_own, replaced_whole

FIXED_COLUMNS = ("path", "predicted_class", "confidence", "status", "error")
CONFIRMED_COLUMN = "confirmed_class"  # after the probabilities: the columns before it stay
# Spreadsheets run a cell starting with one of these as a formula (CSV injection: a file
# named "=HYPERLINK(...).jpg" would become a live link). Prefixing "'" shows it as text.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PROBABILITY_FORMAT = f"{{:.{SIGNIFICANT_DIGITS}g}}"  # enough to rank and to re-threshold
CSV_ENCODING = "utf-8-sig"  # UTF-8 with a byte-order mark at the start of the file


def results_csv_name() -> str:
    """The name a results CSV is offered under (the app) or sent as (the web page): to the
    second, so that a day's exports saved side by side do not overwrite each other."""
    return time.strftime("ewaste-results-%Y%m%d-%H%M%S.csv")


def results_header(class_names: Sequence[str]) -> list[str]:
    probabilities = (f"prob_{n}" for n in class_names)
    return [text_cell(c) for c in (*FIXED_COLUMNS, *probabilities, CONFIRMED_COLUMN)]


def result_row(
    prediction: Prediction,
    class_names: Sequence[str],
    threshold: float = DEFAULT_REVIEW_THRESHOLD,
    confirmed: str | None = None,
) -> list[str]:
    """One CSV row; numeric cells are plain numbers, text cells are neutralised."""
    status = status_of(prediction, threshold)
    probabilities = prediction.probabilities
    person = text_cell(confirmed or "")
    if probabilities is None:
        reason = text_cell(prediction.error or "")
        empty = [""] * len(class_names)
        return [text_cell(prediction.path), "", "", status, reason, *empty, person]
    if len(probabilities) != len(class_names):
        raise ValueError(
            f"{prediction.path}: {len(probabilities)} probabilities for "
            f"{len(class_names)} class names"
        )
    top = int(probabilities.argmax())
    return [
        text_cell(prediction.path),
        text_cell(class_names[top]),
        _number(probabilities[top]),
        status,
        "",
        *(_number(p) for p in probabilities),
        person,
    ]


def write_results_csv(
    path: str | os.PathLike[str],
    predictions: Iterable[Prediction],
    class_names: Sequence[str],
    threshold: float = DEFAULT_REVIEW_THRESHOLD,
    confirmed: Mapping[str, str] | None = None,
) -> None:
    """Write one row per prediction to `path` (UTF-8, marked), replacing it atomically.
    `confirmed` maps a prediction's path to the class a person set for it.

    The folder must exist (FileNotFoundError otherwise). On any failure the temporary file
    is removed and the previous file at `path`, if any, is left untouched.
    """
    target = Path(path)
    if LOCK_FILES_STAY:  # one left beside every CSV would be clutter: only looked for
        if is_being_written(target):
            raise CsvBusyError(f"{target} is being written by a watch appending to it")
        _write_rows(target, predictions, class_names, threshold, confirmed)
        return
    # Held while writing: a watch that starts meanwhile is refused, rather than append to
    # the file about to be replaced.
    with only_writer(target):
        _write_rows(target, predictions, class_names, threshold, confirmed)


def _write_rows(
    target: Path,
    predictions: Iterable[Prediction],
    class_names: Sequence[str],
    threshold: float,
    confirmed: Mapping[str, str] | None,
) -> None:
    with replaced_whole(target, "w", encoding=CSV_ENCODING, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(results_header(class_names))
        for prediction in predictions:
            person = (confirmed or {}).get(prediction.path)
            writer.writerow(result_row(prediction, class_names, threshold, person))


def unguarded_text(cell: str) -> str:
    """A text cell as it was before `text_cell` guarded it against formulas."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_TRIGGERS:
        return cell[1:]
    return cell


def text_cell(text: str) -> str:
    """A text cell: valid UTF-8 (see `readable_text`), never run as a formula."""
    return neutralise(readable_text(text))


def path_from_text(text: str) -> str:
    """The file name `readable_text` wrote: its \\xNN escapes back to the bytes (0x80 and
    up: never text) they stand for, as Python holds them."""
    raw = re.sub(rb"\\x([89a-f][0-9a-f])", _escaped_byte, text.encode("utf-8", "surrogateescape"))
    return os.fsdecode(raw)


def _escaped_byte(match: re.Match[bytes]) -> bytes:
    return bytes([int(match.group(1), 16)])


def readable_text(text: str) -> str:
    """`text` as valid Unicode: the undecodable bytes of a file name as \\xNN escapes.

    Python hands such bytes over as lone surrogates ("caf\\udce9.jpg"), which UTF-8 (and Qt)
    cannot hold; anything else comes back unchanged.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = os.fsencode(text)  # back to the bytes the file system gave us
        except UnicodeEncodeError:  # a surrogate that did not come from a file name
            raw = text.encode("utf-8", "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")
    return text


def neutralise(text: str) -> str:
    """Make a text cell display as text in a spreadsheet, never run as a formula."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _number(value: float) -> str:
    return PROBABILITY_FORMAT.format(float(value))


class ResultsCsvAppender:
    """A results CSV that grows as photos arrive (`ewaste-classify --watch`): the header
    once, then each batch appended whole and synced to disk, so the file is complete up to
    the last batch whenever the watch is stopped. An existing file of other columns is
    refused.

    A batch a full disk cuts short is cut off again. A last line without a line end (a
    power cut during a batch, an editor's save) is ended when it holds a whole row and cut
    off when it does not: the next row must never run into it, and the watch's record names
    no photo of a batch cut short, so that photo is classified again.

    The only writer of its CSV while it is open (see `only_writer`): a second watch would
    double every row, and a batch run or the app's export to it (`write_results_csv` checks)
    would replace the file. A CSV another program replaces anyway (an editor's save) is not
    appended to: rows written into the old file would be lost."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        class_names: Sequence[str],
        threshold: float = DEFAULT_REVIEW_THRESHOLD,
    ):
        self._class_names, self._threshold = list(class_names), threshold
        header = results_header(class_names)
        target = self._path = Path(path)
        with contextlib.ExitStack() as held:
            held.enter_context(only_writer(target))
            self._fd = _opened_for_appending(target, header)
            self._lock = held.pop_all()  # closed with the appender

    def append(self, predictions: Iterable[Prediction]) -> None:
        rows = [result_row(p, self._class_names, self._threshold) for p in predictions]
        if not is_file_at(self._fd, self._path):
            raise CsvReplacedError(
                f"{self._path} was replaced or deleted by another program (an editor's save?) "
                "while the watch appended to it: start the watch again (it classifies again "
                "the photos still in the folder that the new file lacks)"
            )
        try:
            append_whole(self._fd, csv_lines(rows))
        except OSError as exc:  # a write's error names no file: a full disk, but which?
            exc.filename = exc.filename or str(self._path)
            raise

    def close(self) -> None:
        os.close(self._fd)
        self._lock.close()


def _opened_for_appending(target: Path, header: list[str]) -> int:
    """The CSV at `target` open for appending, with its header (a new file) or its last
    line mended; ValueError for a file of other columns."""
    is_new = not (target.exists() and target.stat().st_size)
    if not is_new:
        with target.open(encoding=CSV_ENCODING, newline="") as handle:
            if next(csv.reader(handle), None) != header:
                raise ValueError(f"{target} holds other columns; give a new CSV to append to")
    fd = open_own(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, "a results CSV")
    try:
        if is_new:  # the mark only at the start of a new file
            append_whole(fd, codecs.BOM_UTF8 + csv_lines([header]))
        else:
            _mend_the_last_line(target, fd, len(header))
    except BaseException:
        os.close(fd)
        raise
    return fd


class CsvReplacedError(OSError):
    """The CSV a watch appends to is no longer the file under its name."""


class CsvBusyError(ValueError):
    """A watch appends to the CSV now: another watch, a batch run or an export must not."""


@contextlib.contextmanager
def only_writer(path: Path) -> Iterator[None]:
    """Be the only appender of the results CSV at `path` for the block (a lock in a hidden
    file beside it, as for a sort's destination): a watch appends to its CSV for hours, and
    a batch run or an export replacing it meanwhile would put the watch's rows where
    nobody reads them. CsvBusyError when another appender holds it (one in this process
    too)."""
    lock = _appender_lock(path)
    try:
        held = lock.acquire()
    except OSError:  # no lock file can be made there: the write that follows says why
        held = True
    if not held:
        raise CsvBusyError(
            f"{path} is being written by another program (a watch appending to it?): "
            "give another name, or stop that one first"
        )
    try:
        yield
    finally:
        lock.release()


def is_being_written(path: Path) -> bool:
    """Whether a watch appends to the CSV at `path` now (see `only_writer`). Only looked at,
    never made: a one-time write leaves no lock file (Windows would keep one per CSV)."""
    lock = _appender_lock(path)
    return os.path.lexists(lock.path) and held_elsewhere(lock.path.parent, lock.path.name)


def _appender_lock(path: Path) -> FolderLock:
    return FolderLock(path.parent, f".{path.name}.lock")


def csv_lines(rows: Iterable[Sequence[str]]) -> bytes:
    """`rows` as CSV lines in UTF-8 (no byte-order mark), each ended by CR LF."""
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode("utf-8")


def _mend_the_last_line(path: Path, fd: int, cells: int) -> None:
    """End the last line of the CSV at `path` (open for appending at `fd`) when it lacks
    its line end: a CR alone gets its LF; a line holding a whole row of `cells` cells gets
    CR LF; a part of a row is cut off (never more: the cut is after the last line end,
    CR or LF, so a file saved with CR line ends loses none of its rows)."""
    size = os.fstat(fd).st_size
    with path.open("rb") as handle:
        start = _after_the_last_line_end(handle, size)
        if start == size:
            handle.seek(size - 1)
            if handle.read(1) == b"\r":  # cut between CR and LF: "\r\r\n" is a blank row
                append_whole(fd, b"\n")
            return
        handle.seek(start)
        tail = handle.read(size - start).decode("utf-8-sig", "replace")
    rows = list(csv.reader(io.StringIO(tail, newline="")))
    if len(rows) == 1 and len(rows[0]) == cells:
        append_whole(fd, b"\r\n")
    else:
        os.ftruncate(fd, start)
        os.fsync(fd)


def _after_the_last_line_end(handle: BinaryIO, size: int) -> int:
    """The offset just after the file's last line end, LF or CR (0 when it has none), read
    from its end."""
    end = size
    while end > 0:
        start = max(0, end - 65536)
        handle.seek(start)
        block = handle.read(end - start)
        found = max(block.rfind(b"\n"), block.rfind(b"\r"))
        if found >= 0:
            return start + found + 1
        end = start
    return 0

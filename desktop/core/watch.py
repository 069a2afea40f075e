"""Watch a folder a station camera or scanner saves into: hand over each new photo once it
is completely written.

A camera writes a photo in pieces; reading it half-way would give a broken-file error for
a good photo. A file counts as written when its size and time have stood still for
`settle_seconds` and it decodes; one that still does not decode after `give_up_seconds`
of standing still is handed over anyway (it becomes an error row, with the reason). Each
photo is handed over once: the watcher remembers the name, size and modification time of
what it handed over (a few dozen bytes a photo), so a new photo under a name used before (a
camera's counter reset, a new card) is heard. A folder that cannot be listed (an unplugged
camera, a share gone) is said once, and once more when it is back; the watch goes on.

The headless watch keeps that record beside its CSV (`.shift.csv.watched`, one line a
photo), so a watch restarted on the same CSV skips exactly the photos it classified before.
A watch that sorts marks each line "to sort", and adds a "sorted" line once the photo is
filed; restarted with --sort-into, it first sorts the photos still waiting (the destination
was full or unplugged) if they are unchanged, from their rows in the CSV. It marks each
batch "classifying" before its rows go into the CSV: a watch killed between the two
classifies (and sorts) it again at the restart, where its rows alone would have passed for
done, and never been sorted.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .csv_export import (
    CSV_ENCODING,
    FIXED_COLUMNS,
    ResultsCsvAppender,
    path_from_text,
    readable_text,
    unguarded_text,
)
from .csv_import import CsvImportError, prediction_from_row
from .discovery import file_state, is_clutter
from .log_streams import loggable, not_classified
from .preprocessing import ImageLoadError, is_photo_file, is_supported_image, load_rgb
from .safe_files import open_own
from .sort_history import undone_manifests
from .sort_lock import WatchPresence
from .sort_manifest import MANIFEST_FILE
from .sort_records import SortError
from .sorting import sort_into
from .wording import plural

if TYPE_CHECKING:
    from .engine import Engine
    from .results import FileState, Prediction

DEFAULT_POLL_SECONDS = 1.0
# Between polls, at least this many times as long as the last listing took: a folder of
# thousands of photos on a slow share is looked at less often, not listed without a pause;
# never longer than the cap, or a photo would wait that long to be seen.
POLL_PAUSE_FACTOR = 9
MAX_POLL_PAUSE_SECONDS = 10.0
# A backlog (a card's photos copied in at once) is said as it is classified, at this pace.
PROGRESS_SECONDS = 10.0
SETTLE_SECONDS = 1.0
MAX_KNOWN = 100_000  # photos gone from the folder that a watch remembers (about 25 MB)
GIVE_UP_SECONDS = 10.0
# The last cell of a line of a sorting watch's record (see the module).
CLASSIFYING, TO_SORT, SORTED = "classifying", "to sort", "sorted"


class FolderWatcher:
    """`poll()` returns the photos of `folder` that became ready since the last call."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        settle_seconds: float = SETTLE_SECONDS,
        give_up_seconds: float = GIVE_UP_SECONDS,
        already: Mapping[str, FileState] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`already`: name -> state of the photos handed over before (a watch restarted on
        the same CSV)."""
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NotADirectoryError(f"not a folder: {self.folder}")
        self._settle, self._give_up, self._clock = settle_seconds, give_up_seconds, clock
        self._handed_over: dict[str, FileState] = dict(already or {})
        self._pending: dict[str, tuple[FileState, float]] = {}  # name -> state, since
        # Why the last poll could not list the folder ("" when it could): an unplugged
        # camera or a share that went away, said to the worker instead of a silent wait.
        self.unreachable = ""
        # Photos that appeared but left before they were ready (all polls so far): another
        # program moving them out (a watch sorting with --move), said rather than missed.
        self.left_before_ready = 0
        self._listing_took = 0.0  # seconds: the last poll's, less its photos' decode checks
        self._checks_took = 0.0  # seconds: those checks, in the poll under way

    def anew(self) -> FolderWatcher:
        """A watcher of the same folder, with the same timings, that has handed over nothing:
        its polls bring every photo again. Made even while the folder is out of sight (the
        constructor refuses a missing folder; a watch under way waits for it instead)."""
        fresh = copy.copy(self)
        fresh._handed_over, fresh._pending = {}, {}
        return fresh

    def pause(self, poll_seconds: float) -> float:
        """How long to wait before the next poll: `poll_seconds`, or longer when listing the
        folder took long, so the watch spends at most a tenth of its time listing (up to
        MAX_POLL_PAUSE_SECONDS). The decode checks of the photos handed over do not count:
        a card's thousands of photos made the next pause minutes long."""
        slowed = min(POLL_PAUSE_FACTOR * self._listing_took, MAX_POLL_PAUSE_SECONDS)
        return max(poll_seconds, slowed)

    def poll(self) -> list[Path]:
        """New photos that are completely written, sorted by name."""
        started = time.perf_counter()
        self._checks_took = 0.0
        try:
            return self._poll()
        finally:
            self._listing_took = time.perf_counter() - started - self._checks_took

    def _poll(self) -> list[Path]:
        ready, seen, now = [], set(), self._clock()
        try:
            entries = list(os.scandir(self.folder))
        except OSError as exc:
            self.unreachable = (exc.strerror or str(exc)).lower()
            return []  # the next poll tries again
        self.unreachable = ""
        for entry in entries:
            name = entry.name
            if is_clutter(name) or not is_photo_file(name):
                continue
            try:
                info = entry.stat()
            except OSError:
                continue  # deleted between listing and stat
            if not entry.is_file():
                continue
            state = (info.st_size, info.st_mtime_ns)
            if self._handed_over.get(name) == state:
                continue  # this very photo was handed over; another one of that name is not
            seen.add(name)
            previous, since = self._pending.get(name, (None, now))
            if previous != state:
                self._pending[name] = (state, now)
                continue
            still = now - since
            if still >= self._settle and (still >= self._give_up or self._complete(entry)):
                ready.append(self.folder / name)
                self._handed_over.pop(name, None)  # the newest now, for the cap below
                self._handed_over[name] = state
                del self._pending[name]
        for name in set(self._pending) - seen:  # gone before it was ready
            del self._pending[name]
            self.left_before_ready += 1
        # A photo handed over stays known after it left (a sorting watch moved it): one an
        # undo puts back is not classified and sorted again, as a restarted watch would not
        # either; another photo under its name has another state. Of those gone, the oldest
        # are forgotten past a cap (never one still there: it would be handed over again).
        present = {entry.name for entry in entries}
        gone = [name for name in self._handed_over if name not in present]
        for name in gone[: max(0, len(gone) - MAX_KNOWN)]:
            del self._handed_over[name]
        return sorted(ready)

    def _complete(self, entry: os.DirEntry) -> bool:
        started = time.perf_counter()
        try:
            return _complete(entry)
        finally:
            self._checks_took += time.perf_counter() - started

    def handed_over_state(self, name: str) -> FileState | None:
        """The size and modification time a photo had when it was handed over."""
        return self._handed_over.get(name)


def _complete(entry: os.DirEntry) -> bool:
    """Whether a settled file is all there: it decodes, or (a HEIC or RAW photo, which never
    decodes here) it is not a format this station reads, and its row will give advice."""
    return not is_supported_image(entry.name) or _decodes(entry.path)


def _decodes(path: str) -> bool:
    try:
        load_rgb(path, (8, 8))  # small: JPEGs decode in draft mode, quickly
    except ImageLoadError:
        return False
    return True


def watch_and_classify(
    engine: Engine,
    folder: Path,
    output: Path,
    threshold: float,
    *,
    batch_size: int = 32,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    sort_into_dest: Path | None = None,
    move: bool = False,
    log: Callable[[str], None] = print,
    should_stop: Callable[[], bool] = lambda: False,
    started: Callable[[], None] = lambda: None,
) -> int:
    """Classify the photos arriving in `folder` until `should_stop()` or a stop signal
    (which the caller turns into an exception); returns how many were classified. Each
    batch is appended to `output` at once, and filed under `sort_into_dest` when given.
    `started()` once the CSV is open: a CSV it refuses is said before any "watching"."""
    folder = Path(os.path.abspath(folder))  # the CSV's paths are absolute, as without --watch
    record = watch_record_path(output)
    written = output.stat().st_mtime_ns if output.is_file() else 0  # before it is mended
    # The CSV opened (its row a power cut left half written cut off) before it is read for
    # what it holds: that photo, in no whole row, is classified again.
    appender = ResultsCsvAppender(output, engine.class_names, threshold)
    try:
        already = _classified_before(output, written, record, folder)
        watcher = FolderWatcher(folder, already=already)
    except BaseException:
        appender.close()
        raise
    started()
    filer = None
    if sort_into_dest is not None:
        filer = _WatchFiler(sort_into_dest, engine.class_names, threshold, move, record, log)
    classified = said = 0  # photos in the CSV, and in the log's running total
    try:
        if filer is not None:
            left, states = _left_unsorted(output, record, folder, len(engine.class_names), log)
            if left:
                filer.file(left, states)
        unreachable, left = "", 0
        while not should_stop():
            ready = watcher.poll()
            if watcher.unreachable != unreachable:  # said once when it goes, once when back
                unreachable = watcher.unreachable
                _say_reachable(log, folder, unreachable)
            if watcher.left_before_ready != left:  # as the classified count: new, then total
                new, left = watcher.left_before_ready - left, watcher.left_before_ready
                log(
                    f"{time.strftime('%H:%M:%S')} {plural(new, 'photo')} left {folder} before "
                    f"being classified ({left} since the watch began; renamed, or moved away by "
                    "another program?)"
                )
            said_at = time.monotonic()
            for batch in engine.classify(ready, batch_size=batch_size, with_cam=False):
                states = _handed_over_states(watcher, batch)
                if filer is not None:  # until its rows are in the CSV (a plain watch's
                    _add_to_record(record, states, CLASSIFYING)  # rows say all it needs)
                appender.append(batch)
                classified += len(batch)  # in the CSV: counted at once
                _say_errors(log, batch)
                _add_to_record(record, states, TO_SORT if filer is not None else "")
                if filer is not None:
                    filer.file(batch, states)
                if time.monotonic() - said_at >= PROGRESS_SECONDS:  # a backlog: as it goes
                    said = _say_classified(log, classified - said, classified, folder)
                    said_at = time.monotonic()
            if classified > said:  # what arrived now, and the running total a supervisor checks
                said = _say_classified(log, classified - said, classified, folder)
            time.sleep(watcher.pause(poll_seconds))
    finally:
        if classified > said:  # a stop came before the line: the total still adds up
            _say_classified(log, classified - said, classified, folder)
        if filer is not None:
            filer.close()
        appender.close()
    return classified


class _WatchFiler:
    """A sorting watch's filing: each batch sorted into DEST, then marked sorted in the
    watch's record (what a restart need not sort again)."""

    def __init__(
        self,
        dest: Path,
        class_names: Sequence[str],
        threshold: float,
        move: bool,
        record: Path,
        log: Callable[[str], None],
    ):
        self._dest, self._names, self._threshold = dest, list(class_names), threshold
        self._move, self._record, self._log = move, record, log
        self._guard = _DestinationGuard(dest)
        self._presence = WatchPresence(dest, str(record))

    def file(self, batch: list[Prediction], states: Mapping[str, FileState]) -> None:
        """Sort `batch` (photos in `states`), then record which ones were filed."""
        self._guard.check()
        self._presence.take()  # before filing, where DEST exists: no photo filed unmarked
        not_filed = set()
        # An unreadable file may be one still being written (a stalled upload): it is
        # copied to _error, never moved from under its writer.
        for part, part_move in (
            ([p for p in batch if p.ok], self._move),
            ([p for p in batch if not p.ok], False),
        ):
            if not part:
                continue
            # A watch runs for hours: a sort in the app into the same folder is waited for.
            report = sort_into(
                part,
                self._dest,
                self._names,
                self._threshold,
                move=part_move,
                wait_if_busy=self._log,
            )
            for source, reason in report.failed:
                self._log(f"not sorted: {loggable(source)}: {loggable(reason)}")
                not_filed.add(source)
        filed = {path: state for path, state in states.items() if path not in not_filed}
        _add_to_record(self._record, filed, SORTED)
        self._guard.sorted_into()
        self._presence.take()  # DEST exists now, if the sort made it

    def close(self) -> None:
        self._presence.release()


def _say_reachable(log: Callable[[str], None], folder: Path, unreachable: str) -> None:
    """Log that `folder` went out of sight (`unreachable`: why) or is back ("")."""
    now = time.strftime("%H:%M:%S")
    log(
        f"{now} cannot see {folder} ({unreachable}); waiting for it to come back"
        if unreachable
        else f"{now} {folder} is back; watching it again"
    )


class _DestinationGuard:
    """Whether a sorting watch's DEST is still the folder it sorts into: one unplugged
    between two batches must not be made again by the next sort (under an empty mount
    point, on the station's disk). Once DEST holds a manifest, that is the sign (a network
    share's or a re-plugged stick's device and inode numbers may change while it is
    there); before, the folder's device and inode."""

    def __init__(self, dest: Path | None):
        self._dest = dest
        self._identity = _folder_identity(dest)
        self._has_manifest = _holds_a_manifest(dest)

    def check(self) -> None:
        """A SortError when DEST went away, or another folder took its place."""
        if self._has_manifest:
            gone = not _holds_a_manifest(self._dest)
        else:
            gone = self._identity is not None and _folder_identity(self._dest) != self._identity
        if gone:
            raise SortError(
                f"the destination {self._dest} went away, or another folder took its place "
                "(a stick pulled out?): put it back"
            )

    def sorted_into(self) -> None:
        """A sort went into DEST: it holds its manifest from now on."""
        self._has_manifest = _holds_a_manifest(self._dest)
        self._identity = self._identity or _folder_identity(self._dest)


def _holds_a_manifest(folder: Path | None) -> bool:
    """A sort's manifest, or an undo's (an undo made while the watch runs leaves that)."""
    if folder is None:
        return False
    return (folder / MANIFEST_FILE).is_file() or bool(undone_manifests(folder))


def _folder_identity(folder: Path | None) -> tuple[int, int] | None:
    """The device and inode of `folder`: the same path, another folder, tell apart."""
    try:
        info = os.stat(folder) if folder is not None else None
    except OSError:
        return None
    return None if info is None else (info.st_dev, info.st_ino)


def _say_errors(log: Callable[[str], None], batch: Iterable[Prediction]) -> None:
    """A line for each photo that could not be classified: a camera switched to HEIC, or
    a share cutting copies short, must show in a watch's log, not only in its CSV."""
    for prediction in batch:
        if prediction.error is not None:
            now = time.strftime("%H:%M:%S")
            log(f"{now} {not_classified(prediction.path, prediction.error)}")


def _say_classified(log: Callable[[str], None], new: int, total: int, folder: Path) -> int:
    """Log the photos classified since the last line, and the total; returns the total."""
    now = time.strftime("%H:%M:%S")
    log(f"{now} {plural(new, 'new photo')} classified ({total} since the watch began) in {folder}")
    return total


def _left_unsorted(
    output: Path, record: Path, folder: Path, classes: int, log: Callable[[str], None]
) -> tuple[list[Prediction], dict[str, FileState]]:
    """The photos of `folder` a sorting watch classified but did not file (its destination
    was full or unplugged, or the photo could not be filed then) and that are unchanged
    since, with their latest rows in `output`; without this a restart would skip them for
    good. Another folder's photos in the same CSV wait for a watch of their folder."""
    waiting = {}
    for text, (path, state, mark) in _recorded(record).items():
        if mark == TO_SORT and path.parent == folder and file_state(path) == state:
            waiting[text] = (path, state)
    rows = _latest_rows(output, set(waiting), classes, log) if waiting else {}
    # The path as the record has it: the CSV escapes a name that is not valid UTF-8.
    left = [replace(row, path=str(waiting[text][0])) for text, row in rows.items()]
    if left:
        log(f"sorting {plural(len(left), 'photo')} an earlier watch classified but did not sort")
    return left, {str(waiting[text][0]): waiting[text][1] for text in rows}


def _latest_rows(
    output: Path, wanted: set[str], classes: int, log: Callable[[str], None]
) -> dict[str, Prediction]:
    """The last row of each path in `wanted` (CSV text), read row by row: a long shift's
    CSV is never held whole. A row a crash cut short is left out."""
    rows: dict[str, Prediction] = {}
    try:
        with output.open(encoding=CSV_ENCODING, newline="") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                text = unguarded_text(row[0]) if row else ""
                if number == 1 or text not in wanted or len(row) < len(FIXED_COLUMNS) + classes:
                    continue
                with contextlib.suppress(CsvImportError):
                    rows[text] = prediction_from_row(row, classes, f"line {number}")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        log(f"not checked for photos left unsorted: cannot read {output.name}: {exc}")
        return {}
    return rows


def watch_record_path(output: Path) -> Path:
    """Where the watch writing `output` records what it classified (see the module)."""
    return output.with_name(f".{output.name}.watched")


def _handed_over_states(
    watcher: FolderWatcher, batch: Iterable[Prediction]
) -> dict[str, FileState]:
    """Path -> the size and time each photo of `batch` had when it was handed over."""
    states = {}
    for prediction in batch:
        state = watcher.handed_over_state(Path(prediction.path).name)
        if state is not None:
            states[prediction.path] = state
    return states


def _add_to_record(record: Path, states: Mapping[str, FileState], mark: str = "") -> None:
    # The path as the file system gave it: odd bytes (Linux) and lone surrogates (Windows)
    # are kept as they are, unlike in the CSV.
    if not states:
        return
    if record.is_file():
        _drop_torn_line(record)
    raw = _opened_record(record, append=True)
    with io.TextIOWrapper(raw, encoding="utf-8", errors="surrogatepass", newline="") as handle:
        writer = csv.writer(handle)
        for path, state in states.items():
            writer.writerow([path, *state, *([mark] if mark else [])])
        # On the disk before the CSV's rows are: after a power cut as after a kill.
        handle.flush()
        os.fsync(handle.fileno())


def _opened_record(record: Path, append: bool) -> io.BufferedRandom | io.BufferedWriter:
    """The record, opened for appending or for reading and cutting, never through a link:
    a symbolic or hard link put there (before or during the watch) would have another file
    cut and appended to. ValueError says so."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT if append else os.O_RDWR
    descriptor = open_own(record, flags, "the watch's record")
    return open(descriptor, "ab" if append else "r+b")


def _drop_torn_line(path: Path) -> None:
    """Cut a last line a crash left unfinished: completed, it could read as a wrong state."""
    with _opened_record(path, append=False) as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":  # rare: only then is the whole record read
            handle.seek(0)
            handle.truncate(handle.read().rfind(b"\n") + 1)


def _classified_before(
    output: Path, written: int, record: Path, folder: Path
) -> dict[str, FileState]:
    """Name -> state of `folder`'s photos the CSV holds: a restarted watch skips them while
    unchanged (a batch cut short by a stop is not in the CSV, so it is classified again).
    `written`: the CSV's modification time (ns) as the last watch left it.

    The state is the one the watch recorded, unless its last line says "classifying" (the
    watch stopped around writing its row: classified again). A photo the CSV holds without
    a record line (a plain run wrote it) is skipped as it is now, unless it arrived after
    the CSV's last write: then it is a new photo under an old name (its inode change time,
    which copying cannot set on Linux and macOS, is later; on Windows this is the creation
    time, which some copy tools keep)."""
    if not output.is_file():
        return {}
    try:
        with output.open(encoding=CSV_ENCODING, newline="") as handle:
            in_csv = {unguarded_text(row[0]) for row in csv.reader(handle) if row}
    except (UnicodeDecodeError, csv.Error) as exc:  # the caller says so, as for other columns
        raise ValueError(f"cannot read {output} to continue it: {exc}") from exc
    recorded = _recorded(record)
    states: dict[str, FileState] = {}
    for text in in_csv:
        if text in recorded:
            path, state, mark = recorded[text]
            # "classifying": stopped before or after its row went in; classified again.
            if path.parent == folder and mark != CLASSIFYING:
                states[path.name] = state
        else:
            # The CSV escapes a name that is not valid text ("caf\xe9.jpg"): the file's own.
            path = Path(text) if os.path.lexists(text) else Path(path_from_text(text))
            if path.parent == folder:
                with contextlib.suppress(OSError):
                    info = path.stat()
                    if info.st_ctime_ns <= written:
                        states[path.name] = (info.st_size, info.st_mtime_ns)
    return states


def _recorded(record: Path) -> dict[str, tuple[Path, FileState, str]]:
    """CSV text of a path -> (the path, its state, its mark) from the watch's record; the
    last line of a photo counts, and a last line a crash cut short is left out."""
    if not record.is_file():
        return {}
    # Damaged bytes or lines (a disk fault, a hand edit) are left out: at worst those
    # photos are classified again, never a watch that cannot start.
    data = record.read_bytes()
    data = data[: data.rfind(b"\n") + 1]  # only complete lines
    try:
        text = data.decode("utf-8", errors="surrogatepass")
    except UnicodeDecodeError:  # a damaged byte: the lines that decode, each on its own
        text = "".join(_decodable(line) for line in data.splitlines(keepends=True))
    reader = csv.reader(io.StringIO(text, newline=""))  # a name may hold a line break
    lines = {}
    while True:
        try:
            row = next(reader)
            size, mtime = int(row[1]), int(row[2])  # ValueError for "²", which isdigit() takes
        except StopIteration:
            return lines
        except (csv.Error, ValueError, IndexError):  # a cell over the limit, a bad number
            continue
        if len(row) in (3, 4):
            mark = row[3] if len(row) == 4 else ""
            lines[readable_text(row[0])] = (Path(row[0]), (size, mtime), mark)


def _decodable(line: bytes) -> str:
    try:
        return line.decode("utf-8", errors="surrogatepass")
    except UnicodeDecodeError:
        return ""

"""Sort classified photos into class folders, never losing or overwriting a file, and undo it.

    DEST/<class>/      photos whose status is ok (the confirmed class when a person set one)
    DEST/_review/      photos to look at: under the review threshold, or unknown items
    DEST/_error/       photos the model could not read
    DEST/manifest.csv  one row per photo filed: source, destination, class, status, SHA-256,
                       copy or move; written as each photo is filed, so an interrupted sort
                       knows what it did

Every file lands first under a hidden temporary name in its destination folder, is flushed
to disk and compared by SHA-256 with its source, and only then takes its final name, by a
hard link that fails instead of replacing anything (a name already taken gets " (2)", " (3)"
...). A copy is always a real, independent copy: editing a sorted photo never changes the
original. A move on the same file system is a hard link instead (no bytes copied), and it
deletes the source only once the manifest records where the photo went. Running the same
sort again finishes an interrupted one: photos the manifest records are skipped, and a photo
placed just before the stop is recognised by its SHA-256 instead of filed twice. A photo
filed before whose class a person set, changed or cleared since (the app passes `confirmed`,
None for a class cleared) is moved to the folder that now says, inside DEST, with a new
manifest row; the latest row of a photo is the one that counts. A photo without a person's
word (all of the headless command's) never moves once filed, so a sort cannot undo a
correction. A move into a folder a copy sort filled finishes as a move.
`undo_sort` moves the files back (or deletes the copies) using the manifest; a copy whose
original is gone, or replaced by another photo of that name, is moved back instead, as it is
then the only one. A photo is matched by path and SHA-256, never by its name alone. The
manifest records absolute paths, so the undo works from any folder; a filed photo is looked
for under DEST as it is named now (renamed, or on a stick given another drive letter). The
undo never creates a photo's folder: one that is not there is a card not inserted.
A sort or undo holds DEST's lock (see folder_lock) while it works: the app, a headless sort
and a watch never file into, or undo, one destination at the same time.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import io
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import TypeVar

from .folder_lock import FolderLock
from .hashing import file_sha256
from .preprocessing import is_photo_file
from .results import STATUS_ERROR, STATUS_OK, Prediction, status_of
from .safe_files import probe_writing, replaced_whole
from .wording import plural

REVIEW_FOLDER = "_review"
ERROR_FOLDER = "_error"
MANIFEST_FILE = "manifest.csv"
UNDONE_MANIFEST_FILE = "manifest.undone.csv"
# What the undo did with one photo (see _undo_one).
MOVED_BACK, DELETED, IN_PLACE = "moved back", "deleted", "in place"
MANIFEST_COLUMNS = ("source", "destination", "class", "status", "sha256", "action")
_CHUNK = 1 << 20
BUSY_POLL_SECONDS = 0.5  # how often a sort waiting for another one's destination looks again
AnyPath = TypeVar("AnyPath", bound=PurePath)  # a Path stays a Path
# What os.link raises on a file system without hard links (FAT, some network shares).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}
# Windows on FAT or exFAT: ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED (Python: EINVAL).
_WINDOWS_NO_HARD_LINKS = {1, 50}


class SortError(Exception):
    """The sort cannot start (or go on) at all; the message says why, for the user.
    `report`: what a sort stopped midway had done (photos moved by then are elsewhere)."""

    def __init__(self, message: str, report: SortReport | None = None):
        super().__init__(message)
        self.report = report


class SortStopped(SortError):
    """The sort or undo ended between two photos because its caller asked it to."""


@dataclass(frozen=True)
class Filed:
    source: str
    destination: str
    class_name: str
    status: str
    sha256: str
    action: str  # "copy" or "move"


@dataclass(frozen=True)
class DamagedRow:
    """A line of the manifest that is not a row a sort wrote (two rows a cut-short write
    ran together, a hand edit): never acted on, and kept as it is for a person to mend."""

    line: int
    cells: tuple[str, ...]


@dataclass
class SortReport:
    # A sort's: the rows it wrote. An undo's: each photo put back, its source where it is now.
    filed: list[Filed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already filed by an earlier run
    # Filed before and moved to the folder a person's class now says: (old place, new entry).
    refiled: list[tuple[str, Filed]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    # An undo's: copies deleted because their original never left (put back, in the count).
    copies_deleted: int = 0
    # An undo's: photos put back under a numbered name, their own being taken by a new photo
    # (a camera's counter reset): (the name they had, where they are now).
    renamed: list[tuple[str, str]] = field(default_factory=list)

    def filed_count(self) -> str:
        """The photos a sort filed, as its message opens: "3 photos", or "no new photo" when
        it found every one filed before (a re-sort after corrections), not a failing "0"."""
        if not self.filed and (self.skipped or self.refiled):
            return "no new photo"
        return plural(len(self.filed), "photo")

    def earlier_sort_note(self) -> str:
        """What a sort into a folder sorted before found: "; 3 already there from an
        earlier sort; 1 moved to its new folder" (empty for a new folder)."""
        note = f"; {len(self.skipped)} already there from an earlier sort" if self.skipped else ""
        if self.refiled:
            moved = "moved to its new folder" if len(self.refiled) == 1 else "moved to new folders"
            note += f"; {len(self.refiled)} {moved}"
        return note

    def undo_note(self) -> str:
        """What an undo did with copies: "; 3 of them copies, deleted: their originals never
        moved", and with names taken since: "; 1 as IMG_1 (2).jpg, its name being taken"
        (empty when it moved every photo back to its name)."""
        note = ""
        if self.copies_deleted == len(self.filed) and self.filed:
            note = "; all copies, deleted: the originals never moved"
        elif self.copies_deleted:
            copies = "a copy" if self.copies_deleted == 1 else "copies"
            note = f"; {self.copies_deleted} of them {copies}, deleted: their originals never moved"
        if self.renamed:
            names = ", ".join(Path(now).name for _, now in self.renamed[:3])
            more = ", ..." if len(self.renamed) > 3 else ""
            taken = "its name being" if len(self.renamed) == 1 else "their names being"
            note += f"; {len(self.renamed)} as {names}{more}, {taken} taken"
        return note


def folder_for(
    prediction: Prediction,
    class_names: list[str],
    threshold: float,
    confirmed: str | None,
    folders: Mapping[str, str] | None = None,
) -> str:
    """The destination sub-folder of one photo; `folders` is `class_folders(class_names)`,
    which a caller filing many photos works out once."""
    status = status_of(prediction, threshold)
    if status == STATUS_ERROR:
        return ERROR_FOLDER
    folders = class_folders(class_names) if folders is None else folders
    if confirmed:  # a person's decision outranks the model's doubts
        return folders.get(confirmed, safe_folder_name(confirmed))
    if status != STATUS_OK:
        return REVIEW_FOLDER
    return folders[class_names[prediction.top_index]]


def class_folders(class_names: Sequence[str]) -> dict[str, str]:
    """One folder per class, distinct even when two names differ only in characters a
    folder name cannot hold ("A/B" and "A_B"): the later one gets a number."""
    folders: dict[str, str] = {}
    taken: set[str] = set()
    for name in class_names:
        folder, number = safe_folder_name(name), 1
        while folder.casefold() in taken:  # case-insensitive file systems too
            number += 1
            folder = f"{safe_folder_name(name)} ({number})"
        taken.add(folder.casefold())
        folders[name] = folder
    return folders


def safe_folder_name(class_name: str) -> str:
    """A class name as one folder name: the names come from the model file, which is
    untrusted input, and "../x" or "a/b" must not lead outside the destination, nor a
    class named "_review" mix with the review pile."""
    name = "".join("_" if ch in '/\\:*?"<>|' else ch for ch in class_name).strip()
    name = name.lstrip(".") or "_"
    return f"{name} (class)" if name in (REVIEW_FOLDER, ERROR_FOLDER) else name


def check_destination(
    dest: Path, sources: Iterable[Path], *, create: bool = True, move: bool = False
) -> None:
    """Refuse a destination that is a file, one inside a source folder (the next run would
    sort the sorted photos again) or, with `create` (which makes the folder), one that
    cannot be written; with `move`, a source folder photos cannot be deleted from (a
    write-protected card: each photo would be copied, then fail)."""
    target = dest.resolve()
    if target.exists() and not target.is_dir():
        raise SortError(f"the destination {dest} is a file, not a folder")
    if not _is_text(str(target)):  # the manifest, a UTF-8 CSV, could not name its photos
        raise SortError(f"the destination {dest} has a name that is not valid text: rename it")
    for source in sources:
        folder = source.resolve() if source.is_dir() else source.resolve().parent
        if target == folder:
            raise SortError(f"the destination {dest} is the photos' own folder")
        if folder in target.parents:
            raise SortError(f"the destination {dest} is inside the source folder {folder}")
        if move and folder.is_dir():
            try:
                probe_writing(folder)
            except OSError as exc:
                raise SortError(
                    f"cannot move photos out of {folder}: {_reason(exc).lower()}"
                    f" (a write-protected card?); copy them instead"
                ) from exc
    manifest = target / MANIFEST_FILE
    if manifest.exists() and not manifest.is_file():
        raise SortError(f"{manifest} is a folder, not a sort's manifest: rename it")
    if manifest.is_file():  # another file under its name would be sorted on, or undone
        try:
            with manifest.open(encoding="utf-8-sig", newline="") as handle:
                _check_manifest_columns(manifest, next(csv.reader(handle), None))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise SortError(f"cannot read {manifest}: {exc}") from exc
    if not create:
        return
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe_writing(target)
    except OSError as exc:
        raise SortError(f"cannot write to {dest}: {exc.strerror or exc}") from exc


def sort_into(
    predictions: Iterable[Prediction],
    dest: str | os.PathLike[str],
    class_names: list[str],
    threshold: float,
    *,
    move: bool = False,
    confirmed: Mapping[str, str | None] | None = None,
    sources: Iterable[Path] = (),
    progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    wait_if_busy: Callable[[str], None] | None = None,
) -> SortReport:
    """File each prediction's photo under `dest` (see the module). A photo that cannot be
    filed (deleted since, unreadable) is a `failed` entry and the sort goes on. A full
    disk, a destination gone, any other failure, or `should_stop()` (asked between photos)
    stops it with a SortError carrying the report of what was done: no partial file, and
    a manifest of every photo filed. Another program sorting into or undoing `dest` right
    now is a SortError before anything is done; with `wait_if_busy`, which is told so once,
    the sort waits for it instead. `confirmed`: source -> the class a person set, or None
    where they cleared it; a photo filed before goes where that (or, cleared, the model)
    says now."""
    # One spelling of the folder (absolute, links resolved): the manifest must not depend on
    # the working folder, and a link to DEST must not make its files look like other files.
    dest = Path(os.path.realpath(dest))
    check_destination(dest, [Path(s) for s in sources], move=move)
    with _alone_in(dest, wait_if_busy):
        return _file_each(
            predictions,
            dest,
            class_names,
            threshold,
            move,
            confirmed or {},
            progress,
            should_stop,
        )


def _file_each(
    predictions: Iterable[Prediction],
    dest: Path,
    class_names: list[str],
    threshold: float,
    move: bool,
    confirmed: Mapping[str, str | None],
    progress: Callable[[int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> SortReport:
    """`sort_into`'s work, once the destination is checked and its lock held."""
    entries = _manifest_entries(dest)
    done = _latest_in_place(entries)
    _remove_refile_leftovers(entries, done)
    claimed = {filed.destination for filed in done.values()}
    by_placement = {filed.destination: filed for filed in done.values()}
    folders = class_folders(class_names)
    report = SortReport()
    try:
        with _Manifest(dest / MANIFEST_FILE) as manifest:
            for count, prediction in enumerate(predictions, start=1):
                if should_stop is not None and should_stop():
                    raise SortStopped(_filed_by_then(report), report)
                source = str(prediction.path)
                if not _is_text(source):  # the manifest, a UTF-8 CSV, could not name it
                    report.failed.append((source, "its name is not valid text: rename it to sort"))
                    continue
                if not is_photo_file(source):  # a reopened CSV may name any file (a key, say)
                    report.failed.append((source, "not a photo file: only photos are sorted"))
                    continue
                if os.path.islink(source):  # "IMG_1.jpg" may lead to any file, a key say
                    reason = "a link, not a photo file: only photos are sorted"
                    report.failed.append((source, reason))
                    continue
                person = confirmed.get(source)
                folder = folder_for(prediction, class_names, threshold, person, folders)
                label = person or (
                    "" if prediction.top_index is None else class_names[prediction.top_index]
                )
                status = status_of(prediction, threshold)
                # Filed before: found by its source, or by where it was filed (the app's rows
                # follow the photos a sort moved).
                earlier = done.get(source) or by_placement.get(_canonical(source))
                if _filed_before(earlier):
                    # Only a person's word (a class set, changed or cleared) moves it.
                    new_folder = dest / folder if source in confirmed else None
                    again = _Again(source, label, status, new_folder)
                    _file_again(again, earlier, move, manifest, report, claimed)
                    continue
                try:
                    filed = _file_one(Path(source), dest / folder, label, status, move, claimed)
                except (OSError, ValueError) as exc:  # ValueError: a name the system refuses
                    _stop_if_full(exc, report)
                    report.failed.append((source, _reason(exc)))
                    continue
                _record(manifest, filed, report)
                claimed.add(filed.destination)
                try:  # only once the manifest says where the photo went
                    _finish_move(filed, placed_checked=True)
                except OSError as exc:  # the photo stays where it was, with a copy in DEST
                    report.failed.append((source, _reason(exc)))
                    continue
                report.filed.append(filed)
                if progress is not None:
                    progress(count)
    except SortError:
        raise
    except Exception as exc:
        # The manifest could not be written (a stick pulled out), or something unforeseen:
        # the photos filed by then are elsewhere, and whoever shows them must know.
        raise SortError(
            f"the sort could not go on after {report.filed_count()} "
            f"({_reason(exc, naming_the_file=True)}); each "
            "one filed is whole and in the manifest: sort again to finish, or undo it",
            report,
        ) from exc
    return report


def check_not_busy(dest: str | os.PathLike[str]) -> None:
    """A SortError when another sort or undo works in `dest` right now: for a caller with
    work to do before its sort (classifying the photos, asking copy or move) to say so
    first. The sort itself still takes the lock, or says so then."""
    dest = Path(os.path.realpath(dest))
    if dest.is_dir():
        with _alone_in(dest, wait_if_busy=None):
            pass


@contextlib.contextmanager
def _alone_in(dest: Path, wait_if_busy: Callable[[str], None] | None) -> Iterator[None]:
    """Hold `dest`'s lock (see folder_lock) for the block. When another program holds it:
    a SortError, or with `wait_if_busy`, say so once and wait until it is free."""
    lock = FolderLock(dest)
    busy = f"another sort or undo is working in {dest} (this app, ewaste-classify or a watch)"
    told = False
    try:
        while not lock.acquire():
            if wait_if_busy is None:
                raise SortError(f"{busy}: try again once it is done")
            if not told:
                wait_if_busy(f"{busy}; waiting for it to finish")
                told = True
            time.sleep(BUSY_POLL_SECONDS)
    except OSError as exc:
        raise SortError(f"cannot write to {dest}: {_reason(exc)}") from exc
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class _Again:
    """A photo the manifest records, as this sort sees it: `new_folder` when a person's word
    says where it goes (None: it stays where it was filed)."""

    source: str
    label: str
    status: str
    new_folder: Path | None


def _file_again(
    again: _Again,
    earlier: Filed,
    move: bool,
    manifest: _Manifest,
    report: SortReport,
    claimed: set[str],
) -> None:
    """Sort a photo filed before (`earlier`, its latest manifest row) again: finish its move
    (a run stopped before deleting the source), make a copy a move when this sort moves, and
    move it to `again.new_folder` if that is another folder. The outcome goes to `report`."""
    try:
        moving_now = move and _copied_before(earlier)  # (reads the copy: it may fail)
    except (OSError, ValueError) as exc:
        report.failed.append((again.source, _reason(exc)))
        return
    if moving_now:  # the row first, as for any move: the undo then knows
        earlier = replace(earlier, action="move")
        _record(manifest, earlier, report)
    try:
        moved = _finish_move(earlier, placed_checked=moving_now)
    except (OSError, ValueError) as exc:
        _stop_if_full(exc, report)
        report.failed.append((again.source, _reason(exc)))
        return
    if moved:  # its source went now: the rows must follow, whatever a re-file below does
        report.filed.append(earlier)
    refiled = None
    if again.new_folder is not None:
        try:
            refiled = _refile(earlier, again.new_folder, again.label, again.status, claimed)
        except (OSError, ValueError) as exc:
            _stop_if_full(exc, report)
            report.failed.append((again.source, _reason(exc)))
            return
    if refiled is None:
        if not moved:
            report.skipped.append(again.source)
        return
    # The new row first, then the old name goes: a stop between loses nothing, and a name
    # held open elsewhere goes at the next sort.
    _record(manifest, refiled, report)
    claimed.add(refiled.destination)
    with contextlib.suppress(OSError):
        Path(earlier.destination).unlink()
    report.refiled.append((earlier.destination, refiled))


def _stop_if_full(exc: Exception, report: SortReport) -> None:
    """A full destination stops the whole sort: the next photo would not fit either."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise _destination_full(report) from exc


def _reason(exc: Exception, *, naming_the_file: bool = False) -> str:
    """An error in words for the user: the system's own for a system error, and with
    `naming_the_file`, the file it names (where it is not plain: the manifest, say)."""
    if not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    if naming_the_file and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {os.fsdecode(exc.filename)}"
    return exc.strerror or str(exc)


def _record(manifest: _Manifest, filed: Filed, report: SortReport) -> None:
    """Write the photo's manifest row; a full disk (the row is where a same-disk move,
    a hard link, needs space first) stops the sort as any full disk does."""
    try:
        manifest.add(filed)
    except OSError as exc:
        _stop_if_full(exc, report)
        raise


def _destination_full(report: SortReport) -> SortError:
    return SortError(
        f"the destination is full after {plural(len(report.filed), 'photo')} (nothing "
        f"half-written was left): free space there and sort again to finish, or undo it",
        report,
    )


def _filed_by_then(report: SortReport) -> str:
    """What a sort stopped as asked leaves, and what to do next."""
    if not report.filed:
        return "no photo filed yet: sort again to start"
    return (
        f"{plural(len(report.filed), 'photo')} filed, each whole and in the manifest: sort "
        "again to finish, or undo them"
    )


def undo_sort(
    dest: str | os.PathLike[str], should_stop: Callable[[], bool] | None = None
) -> SortReport:
    """Put every photo of the manifest back: a moved one to its source path (never over a
    file that is there now), a copy deleted (only if unchanged; moved back if its original
    is gone). Done rows go to a manifest.undone csv; rows that could not be undone stay in
    manifest.csv, so running the undo again retries just those. `should_stop()`, asked
    between photos, ends it early the same way; that and a failure to write the manifests
    raise a SortError with the report of the photos put back."""
    dest = Path(os.path.realpath(dest))
    _check_something_to_undo(dest)  # before the lock, whose file the folder must take
    with _alone_in(dest, wait_if_busy=None):
        _check_something_to_undo(dest)  # still: an undo may have finished it meanwhile
        return _undo_all(dest, dest / MANIFEST_FILE, should_stop or (lambda: False))


def _check_something_to_undo(dest: Path) -> None:
    """A SortError saying why, when `dest` holds no manifest to undo."""
    if (dest / MANIFEST_FILE).is_file():
        return
    if not dest.is_dir():
        raise SortError(f"{dest} does not exist: nothing to undo")
    if (dest / UNDONE_MANIFEST_FILE).is_file():
        raise SortError(f"the sort into {dest} was undone already: nothing left to undo")
    raise SortError(f"{dest} has no {MANIFEST_FILE}: nothing to undo")


def _undo_all(dest: Path, manifest: Path, should_stop: Callable[[], bool]) -> SortReport:
    """`undo_sort`'s work, once the manifest is found and the destination's lock held."""
    entries = _read_manifest(manifest, dest)
    if not entries:  # created by a sort stopped before its first photo: kept as it is
        raise SortError(f"{manifest} lists no photo: nothing to undo")
    report, left, undone = SortReport(), [], []
    stopped = _undo_each(manifest, entries, report, left, undone, should_stop)
    try:
        _remove_emptied_folders(dest, undone)
        if undone:
            _write_manifest(_free_name(dest / UNDONE_MANIFEST_FILE), list(reversed(undone)))
        if left:
            _write_manifest(manifest, list(reversed(left)))
        else:
            manifest.unlink()
    except OSError as exc:  # the photos are back all the same: a second undo finds them so
        raise SortError(
            f"put back {plural(len(report.filed), 'photo')} but could not record it in {dest} "
            f"({_reason(exc)}): undo again to finish",
            report,
        ) from exc
    if stopped:
        back = plural(len(report.filed), "photo")
        raise SortStopped(f"{back} put back: undo again to put back the rest", report)
    return report


def _undo_each(
    manifest: Path,
    entries: list[Filed | DamagedRow],
    report: SortReport,
    left: list[Filed | DamagedRow],
    undone: list[Filed | DamagedRow],
    should_stop: Callable[[], bool],
) -> bool:
    """Put back each photo of `manifest`'s `entries`, latest row first, into `report`;
    rows not undone go to `left`, done ones to `undone` (both latest first). True when
    stopped early."""
    seen: set[tuple[str, str]] = set()
    returned: set[tuple[str, str]] = set()  # photos put back by their latest row
    for position, entry in enumerate(reversed(entries)):
        if should_stop():
            left.extend(reversed(entries[: len(entries) - position]))
            return True
        if isinstance(entry, DamagedRow):
            reason = f"line {entry.line} is damaged; kept in it as it is, for a person to mend"
            report.failed.append((str(manifest), reason))
            left.append(entry)
            continue
        # One photo: its path and content (a new photo under a reused name is another).
        photo = (entry.source, entry.sha256)
        try:
            outcome, back = _undo_one(entry)
        except (OSError, ValueError) as exc:  # ValueError: a name the system refuses
            if photo in returned:  # an earlier row of a photo back already (renamed, say)
                undone.append(entry)
                continue
            if photo not in seen:
                report.failed.append((entry.destination, _reason(exc)))
            seen.add(photo)
            left.append(entry)
            continue
        undone.append(entry)
        returned.add(photo)
        if photo not in seen:  # a re-filed photo's earlier rows: not counted again
            seen.add(photo)
            report.filed.append(replace(entry, source=str(back)))  # where it is now
            report.copies_deleted += entry.action == "copy" and outcome == DELETED
            if not _is_same_path(back, Path(entry.source)):
                report.renamed.append((entry.source, str(back)))
    return False


def _undo_one(entry: Filed) -> tuple[str, Path]:
    """Put one photo back: MOVED_BACK (the filed file went back to the source path, or a
    numbered name beside it), DELETED (the photo was back already, at its source path or a
    numbered name beside it, and the filed duplicate went) or IN_PLACE (nothing to do);
    and where the photo is now."""
    placed, source = Path(entry.destination), Path(entry.source)
    _folder_to_put_back_into(source)
    filed = placed.is_file() and file_sha256(placed) == entry.sha256
    if filed and _is_same_path(placed, source):
        return IN_PLACE, placed  # the photo already sat where it was filed: it stays
    # The photo may be back already: a copy's original, or a move an undo put back before
    # it was stopped (under its name, or a numbered one). Then the filed one just goes.
    back = _already_back(source, entry.sha256, placed)
    if back is not None and filed:
        placed.unlink()
        return DELETED, back
    if back is not None and not placed.exists():
        return IN_PLACE, back
    if not filed:  # a filed copy someone edited since stays, and its row
        raise OSError(errno.ENOENT, "the filed copy is gone or was changed; left as is")
    # A moved photo, or a copy whose original was deleted or replaced by another photo of
    # that name since: the filed one goes back, the only one left, under a numbered name
    # if its name is taken.
    back = _place(placed, source, link=True)
    placed.unlink()
    return MOVED_BACK, back


def _folder_to_put_back_into(source: Path) -> None:
    """Make a photo's folder again if a person deleted it once the sort emptied it; but
    refuse when the folder above is gone too: a card not inserted or a share not connected,
    where a made-up folder would hide the photo under the mount point later."""
    folder = source.parent
    if folder.is_dir():
        return
    if not folder.parent.is_dir():
        raise OSError(
            errno.ENOENT,
            f"its folder {folder} is not there, nor the folder above it (a card or share not "
            f"connected?); left as is: undo again once it is back",
        )
    folder.mkdir(exist_ok=True)


def _already_back(source: Path, digest: str, placed: Path) -> Path | None:
    """`source`, or "stem (2).suffix", ... beside it, holding this photo (never the filed
    file itself)."""
    for number in range(1, 10_000):
        candidate = source if number == 1 else numbered(source, number)
        if not candidate.exists():
            return None
        if _is_same_path(candidate, placed) or not candidate.is_file():
            continue
        if file_sha256(candidate) == digest:
            return candidate
    return None


def _remove_emptied_folders(dest: Path, undone: list[Filed]) -> None:
    """The class folders the undo left empty (never DEST itself, never one with a file a
    person added: rmdir removes only an empty folder)."""
    for folder in {Path(entry.destination).parent for entry in undone}:
        if folder != dest and dest in folder.parents:
            with contextlib.suppress(OSError):
                folder.rmdir()


def _free_name(wanted: Path) -> Path:
    number = 1
    target = wanted
    while target.exists():
        number += 1
        target = numbered(wanted, number)
    return target


# -- one file -------------------------------------------------------------------------------


def _file_one(
    source: Path, folder: Path, class_name: str, status: str, move: bool, claimed: set[str]
) -> Filed:
    folder.mkdir(parents=True, exist_ok=True)
    digest = file_sha256(source)
    # A run stopped between placing a photo and writing its manifest row left an identical
    # file under the name: it is this photo, filed already, not a second one to add. Never
    # the source itself, nor a file another photo of the manifest already owns.
    target = _identical_in_place(folder / source.name, digest, source, claimed)
    if target is None:
        target = _place(source, folder / source.name, expected_sha256=digest, link=move)
    return Filed(str(source), str(target), class_name, status, digest, "move" if move else "copy")


def _refile(
    earlier: Filed, folder: Path, class_name: str, status: str, claimed: set[str]
) -> Filed | None:
    """Place a photo an earlier sort filed in the folder it belongs in now, if that is
    another one, and return its new entry; the caller then deletes the old name. None when
    it stays: in its folder already, changed or deleted by hand since, or the user's own
    photo (it sat where it was filed)."""
    placed = Path(earlier.destination)
    if placed.parent.resolve() == folder.resolve() or _is_same_path(placed, Path(earlier.source)):
        return None
    if not placed.is_file() or file_sha256(placed) != earlier.sha256:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    wanted = folder / Path(earlier.source).name
    # A run stopped right after placing it left an identical file there: that is this one.
    target = _identical_in_place(wanted, earlier.sha256, placed, claimed)
    if target is None:
        target = _place(placed, wanted, expected_sha256=earlier.sha256, link=True)
    return Filed(earlier.source, str(target), class_name, status, earlier.sha256, earlier.action)


def _filed_before(earlier: Filed | None) -> bool:
    """Whether the manifest's entry for this path is this photo: the source is gone (moved)
    or unchanged. A new photo under a reused name (a camera's counter reset) is not."""
    if earlier is None:
        return False
    source = Path(earlier.source)
    return not source.is_file() or file_sha256(source) == earlier.sha256


def _copied_before(earlier: Filed) -> bool:
    """Whether a sort copied this photo, whose original is still where it was and whose
    copy is still as filed: a move into the same folder now finishes as a move (the
    original goes), not as a photo filed. A copy edited since is no stand-in for it."""
    source, placed = Path(earlier.source), Path(earlier.destination)
    return (
        earlier.action == "copy"
        and source.is_file()
        and placed.is_file()
        and not _is_same_path(source, placed)
        and file_sha256(placed) == earlier.sha256
    )


def _finish_move(filed: Filed, *, placed_checked: bool = False) -> bool:
    """Delete a moved photo's source, once its identical copy is in place elsewhere (read
    again unless `placed_checked`: just placed and compared); True when it did. An OSError
    says why it cannot (a read-only card, a file in use, a copy changed since): the photo is
    then both at its source and copied, as the manifest's "move" row lets the undo tell."""
    source, placed = Path(filed.source), Path(filed.destination)
    if filed.action != "move" or not placed.is_file() or not source.is_file():
        return False
    if _is_same_path(source, placed):
        return False  # the photo already sat where it is filed: its only copy stays
    if file_sha256(source) != filed.sha256:
        return False  # another photo under its name since: not the one filed
    # A copy edited by hand since is no stand-in for the original (a hard link is the same).
    recheck = not (placed_checked or os.path.samefile(source, placed))
    if recheck and file_sha256(placed) != filed.sha256:
        raise OSError(errno.EIO, f"{placed} was changed since it was filed; both kept")
    try:
        source.unlink()
    except OSError as exc:
        reason = _reason(exc).lower()
        raise OSError(
            exc.errno, f"copied to {placed}, but the original cannot be deleted ({reason})"
        ) from exc
    return True


def _is_text(path: str) -> bool:
    """False for a name of bytes that are no text in the file system's encoding (Python
    holds them as surrogates): a card written by another system."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_same_path(first: Path, second: Path) -> bool:
    return _canonical(first) == _canonical(second)


def _canonical(path: str | os.PathLike[str]) -> str:
    """A file's path with its folder's links resolved: DEST reached through a link and DEST
    itself name the same files. The name itself is kept (never follows a link to a file)."""
    path = Path(os.path.abspath(path))
    return str(Path(os.path.realpath(path.parent)) / path.name)


def _identical_in_place(wanted: Path, digest: str, source: Path, claimed: set[str]) -> Path | None:
    """The file among `wanted`, "stem (2).suffix", ... with this SHA-256 that no other
    photo of the manifest owns, if any (the source itself, when it already sits there)."""
    for number in range(1, 10_000):
        candidate = wanted if number == 1 else numbered(wanted, number)
        if not candidate.exists():
            return None
        if _is_same_path(candidate, source):
            return candidate
        if str(candidate) in claimed or not candidate.is_file():
            continue
        if file_sha256(candidate) == digest:
            return candidate
    return None


def numbered(wanted: AnyPath, number: int) -> AnyPath:
    """The name a second photo of a name takes: "item (2).jpg" (the app, the sort, the web
    page's rows all number the same way)."""
    return wanted.with_name(f"{wanted.stem} ({number}){wanted.suffix}")


def _place(
    source: Path, wanted: Path, *, expected_sha256: str | None = None, link: bool = False
) -> Path:
    """Put a copy of `source` at `wanted` or the first free numbered name, and return where
    it went; the source stays. With `link` (for a move, whose caller then deletes the
    source), the same file system gets a hard link instead: no bytes copied, and never two
    names for one file once the move is done."""
    if link and source.stat().st_dev == wanted.parent.stat().st_dev:
        try:
            return _claim_name(wanted, lambda target: os.link(source, target))
        except OSError as exc:
            if isinstance(exc, FileExistsError) or not _no_hard_links(exc):
                raise
    temporary = wanted.with_name(f".{uuid.uuid4().hex[:12]}.sorting.tmp")
    try:
        with source.open("rb") as reader, temporary.open("xb") as writer:
            shutil.copyfileobj(reader, writer, _CHUNK)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        digest = expected_sha256 or file_sha256(source)
        if file_sha256(temporary) != digest:
            raise OSError(errno.EIO, "the copy differs from the source; source kept")
        target = _claim_name(wanted, lambda target: _link_or_rename(temporary, target))
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return target


def _claim_name(wanted: Path, put: Callable[[Path], None]) -> Path:
    """Call `put(target)` with `wanted`, then "stem (2).suffix", ... until one is free."""
    for number in range(1, 10_000):
        target = wanted if number == 1 else numbered(wanted, number)
        try:
            put(target)
        except FileExistsError:
            continue
        return target
    raise OSError(errno.EEXIST, f"no free name for {wanted.name} in {wanted.parent}")


def _no_hard_links(exc: OSError) -> bool:
    """Whether os.link failed because the file system has no hard links (not a real error)."""
    return exc.errno in _NO_HARD_LINKS or getattr(exc, "winerror", None) in _WINDOWS_NO_HARD_LINKS


def _link_or_rename(temporary: Path, target: Path) -> None:
    """Give `temporary` the name `target` without ever replacing a file: a hard link fails
    if the name is taken; where hard links are not supported, check, then rename."""
    try:
        os.link(temporary, target)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or not _no_hard_links(exc):
            raise
        # Claim the name with an exclusive create (fails if taken, even by a file created
        # a moment ago), then move the copy over our own placeholder.
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        os.replace(temporary, target)


# -- the manifest ---------------------------------------------------------------------------


class _Manifest:
    """manifest.csv, appended one row per filed photo, each on disk before the next photo.

    Rows go straight to the file, unbuffered: a row a full disk cut short is cut off again
    (never half a row for the next sort to append to), and nothing is left to flush at the
    close. A file whose last line has no line end (saved by an editor, a power cut) gets one
    first, so a new row never runs into it."""

    def __init__(self, path: Path):
        self._path = path

    def __enter__(self) -> _Manifest:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        try:
            self._fd = os.open(self._path, flags, 0o666)
        except OSError as exc:
            raise _cannot_write(self._path, exc) from exc
        try:
            size = os.fstat(self._fd).st_size
            if _holds_no_row(self._path, size):  # new, or made by a sort stopped at once
                os.ftruncate(self._fd, 0)
                self._append(_csv_line(MANIFEST_COLUMNS))
            elif not _ends_a_line(self._path, size):
                self._append(b"\r\n")
        except BaseException as exc:
            os.close(self._fd)
            if isinstance(exc, OSError):
                raise _cannot_write(self._path, exc) from exc
            raise
        return self

    def add(self, filed: Filed) -> None:
        try:
            self._append(_csv_line(_row(filed)))
        except OSError as exc:  # os.write names no file: say it was the manifest
            raise OSError(exc.errno, exc.strerror or str(exc), str(self._path)) from exc

    def _append(self, data: bytes) -> None:
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(self._fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
            raise

    def __exit__(self, *_exc: object) -> None:
        os.close(self._fd)


def _row(e: Filed | DamagedRow) -> list[str]:
    if isinstance(e, DamagedRow):
        return list(e.cells)
    return [e.source, e.destination, e.class_name, e.status, e.sha256, e.action]


def _csv_line(cells: Sequence[str]) -> bytes:
    line = io.StringIO()
    csv.writer(line).writerow(cells)
    return line.getvalue().encode("utf-8")


def _cannot_write(path: Path, exc: OSError) -> SortError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _destination_full(SortReport())
    return SortError(f"cannot write {path}: {exc.strerror or exc}")


def _holds_no_row(path: Path, size: int) -> bool:
    """Empty, or nothing but a byte-order mark or blank space (an editor's save)."""
    if size > 16:
        return False
    with path.open("rb") as handle:
        return not handle.read().removeprefix(codecs.BOM_UTF8).strip()


def _ends_a_line(path: Path, size: int) -> bool:
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) == b"\n"


def _write_manifest(path: Path, entries: Sequence[Filed | DamagedRow]) -> None:
    with replaced_whole(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(_row(e) for e in entries)


def _read_manifest(path: Path, dest: Path) -> list[Filed | DamagedRow]:
    """The manifest's rows, the damaged ones as they are (see `_sound`); SortError for a
    file of other columns (a results CSV saved under that name: trusting it would undo
    nothing and delete it, or sort on top of it) or one that cannot be read whole (re-saved
    in another encoding)."""
    rows: list[Filed | DamagedRow] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:  # Excel may add a BOM
            reader = csv.reader(handle)
            header = next(reader, None)
            _check_manifest_columns(path, header)
            for cells in reader:
                if not "".join(cells).strip("\0 \t"):  # a blank line, or a NUL-filled tail
                    continue
                rows.append(_entry(header, cells, reader.line_num, dest))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise SortError(f"cannot read {path}: {exc}") from exc
    return rows


def _entry(header: list[str], cells: list[str], line: int, dest: Path) -> Filed | DamagedRow:
    if len(cells) == len(header):
        named = dict(zip(header, cells, strict=True))
        entry = Filed(*(named[column] for column in MANIFEST_COLUMNS))
        entry = replace(entry, destination=_destination_under(entry.destination, dest))
        if _sound(entry):
            return entry
    return DamagedRow(line, tuple(cells))


def _sound(entry: Filed) -> bool:
    """A row as a sort writes it: not one a cut-short write, a NUL-filled tail or a hand
    edit ran into another (acting on such a row could put a photo in an invented folder)."""
    paths = (entry.source, entry.destination)
    return (
        entry.action in ("copy", "move")
        and len(entry.sha256) == 64
        and all(c in "0123456789abcdef" for c in entry.sha256)
        and not any("\0" in p for p in paths)
        and all(Path(p).is_absolute() for p in paths)
    )


def _check_manifest_columns(path: Path, columns: Sequence[str] | None) -> None:
    """None: an empty file (created, then stopped before its header), nothing filed yet."""
    if columns is None:
        return
    missing = [column for column in MANIFEST_COLUMNS if column not in columns]
    if missing:
        raise SortError(
            f"{path} is not a manifest this app wrote (it has no {', '.join(missing)} column)"
        )


def _destination_under(recorded: str, dest: Path) -> str:
    """Where a photo filed as DEST/<folder>/<name> is, under `dest` as it is named now: the
    worker may have renamed the folder, or reached it from another drive letter or mount
    point, since (earlier versions also recorded it relative to the working folder)."""
    path = Path(recorded)
    if len(path.parts) < 2 or "\0" in recorded:
        return recorded  # not a sort's row (see `_sound`)
    return _canonical(dest / path.parts[-2] / path.parts[-1])


def earlier_moves(dest: str | os.PathLike[str]) -> dict[str, Filed]:
    """Source path -> the manifest row of each photo a sort into `dest` moved there and
    that is still in place (empty when `dest` holds no manifest)."""
    dest = Path(os.path.realpath(dest))
    latest = _latest_in_place(_manifest_entries(dest))
    return {source: entry for source, entry in latest.items() if entry.action == "move"}


def current_places(
    dest: str | os.PathLike[str], wanted: Collection[str] | None = None
) -> dict[str, str]:
    """Each path a results CSV may name a photo sorted into `dest` by (where it was before
    the sort, or an earlier place in `dest` before a person's class re-filed it) -> where
    it is now: in `dest`, or where an undo put it back (a CSV exported between the sort and
    the undo names the photos in `dest`). `wanted`: only these paths (each photo an undo put
    back is read to be found). SortError when `dest` holds no manifest at all."""
    dest = Path(os.path.realpath(dest))
    undone = _undone_manifests(dest)
    if not (dest / MANIFEST_FILE).is_file() and not undone:
        raise SortError(f"{dest} holds no {MANIFEST_FILE}: no sort went into it")
    places = _put_back_places(dest, undone, wanted)  # first: a sort since has the last word
    entries = _manifest_entries(dest)
    latest = _latest_in_place(entries)
    now = {(e.source, e.sha256): e.destination for e in latest.values()}
    for entry in entries:
        place = now.get((entry.source, entry.sha256))
        if place is not None:
            places[entry.source] = places[entry.destination] = place
    return places


def _undone_manifests(dest: Path) -> list[Path]:
    """manifest.undone.csv, manifest.undone (2).csv, ... oldest first."""

    def number(path: Path) -> int:
        found = re.fullmatch(r".* \((\d+)\)", path.stem)
        return int(found.group(1)) if found else 1

    stem = Path(UNDONE_MANIFEST_FILE).stem
    return sorted(dest.glob(f"{stem}*.csv"), key=number)


def _put_back_places(
    dest: Path, undone: list[Path], wanted: Collection[str] | None
) -> dict[str, str]:
    """Where the undos of `undone` put each photo back (found by SHA-256 at its source, or
    the numbered name beside it). A place in `dest` that two undone sorts used for different
    photos is left out: a CSV row naming it could be either. Unreadable manifests are
    skipped (a hand-edited one must not make the folder no sort folder)."""
    asked = None if wanted is None else set(wanted)
    filed: dict[str, Filed | None] = {}  # place in dest -> its photo (None: two photos)
    for manifest in undone:
        try:
            entries = _read_manifest(manifest, dest)
        except SortError:
            continue
        for entry in entries:
            if not isinstance(entry, Filed):
                continue
            if asked is not None and not {entry.source, entry.destination} & asked:
                continue
            other = filed.get(entry.destination, entry)
            same = other is not None and other.sha256 == entry.sha256
            filed[entry.destination] = entry if same else None
    places = {}
    for place, entry in filed.items():
        if entry is None:
            continue
        back = _already_back(Path(entry.source), entry.sha256, Path(place))
        if back is not None:
            places[place] = places[entry.source] = str(back)
    return places


def _manifest_entries(dest: Path) -> list[Filed]:
    """The manifest's sound rows (see `_sound`); the undo reports the others."""
    manifest = dest / MANIFEST_FILE
    if not manifest.is_file():
        return []
    return [e for e in _read_manifest(manifest, dest) if isinstance(e, Filed)]


def _latest_in_place(entries: list[Filed]) -> dict[str, Filed]:
    """Each photo's latest manifest row whose copy is still in place: a re-run skips them."""
    return {e.source: e for e in entries if Path(e.destination).is_file()}


def _remove_refile_leftovers(entries: list[Filed], latest: Mapping[str, Filed]) -> None:
    """A sort stopped between re-filing a photo and deleting its old name (or a name held
    open then) left the photo in two folders; the latest row says which one is current,
    and an identical, unclaimed copy under an earlier row's name goes."""
    current = {filed.destination for filed in latest.values()}
    for entry in entries:
        now = latest.get(entry.source)
        if now is None or entry is now or entry.destination in current:
            continue
        old = Path(entry.destination)
        if entry.sha256 != now.sha256 or _is_same_path(old, Path(entry.source)):
            continue
        if old.is_file() and file_sha256(old) == entry.sha256:
            with contextlib.suppress(OSError):
                old.unlink()

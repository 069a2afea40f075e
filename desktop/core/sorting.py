"""Sort classified photos into class folders, never losing or overwriting a file.

    DEST/<class>/      photos whose status is ok (the confirmed class when a person set one)
    DEST/_review/      photos to look at: under the review threshold, or unknown items
    DEST/_error/       photos the model could not read
    DEST/manifest.csv  one row per photo filed (see sort_manifest)

Each photo is placed by file_placing: checked by SHA-256, under a free name, never over
another file. A move deletes the source only once the manifest records where the photo
went. Running the same sort again finishes an interrupted one: photos the manifest records
are skipped, and a photo placed just before the stop is recognised by its SHA-256 instead
of filed twice. A photo whose file changed since it was classified (where the caller kept
its size and time) is left where it is: the class is another photo's. A photo filed
before whose class a person set, changed or cleared since (the app passes `confirmed`,
None for a class cleared) is moved to the folder that now says, inside DEST, with a new
manifest row. A photo without a person's word (all of the
headless command's) never moves once filed, so a sort cannot undo a correction. A move
into a folder a copy sort filled finishes as a move. sort_undo puts the photos back; a
sort and an undo hold DEST's lock (sort_lock) while they work.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .csv_export import readable_text
from .discovery import file_state
from .file_placing import (
    canonical,
    identical_in_place,
    is_same_path,
    place,
    remove_leftover_copies,
)
from .hashing import file_sha256
from .preprocessing import is_photo_file
from .results import STATUS_ERROR, STATUS_OK, Prediction, status_of
from .safe_files import fitting_name, probe_writing
from .sort_lock import alone_in
from .sort_manifest import (
    MANIFEST_FILE,
    UNDONE_MANIFEST_FILE,
    ManifestWriter,
    check_manifest_columns,
    latest_in_place,
    manifest_entries,
)
from .sort_records import Filed, SortError, SortReport, SortStopped, reason_for, stop_if_full
from .wording import plural

REVIEW_FOLDER = "_review"
ERROR_FOLDER = "_error"
CHANGED_SINCE_CLASSIFIED = "changed since it was classified: classify it again to sort it"
_NAMES_FAT_REFUSES = re.compile(r'[:*?"<>|\x00-\x1f]')  # and Windows itself, on any disk
_SWEPT: set[tuple[Path, int, int]] = set()  # see _sweep_once


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
            folder = fitting_name(safe_folder_name(name), f" ({number})")
        taken.add(folder.casefold())
        folders[name] = folder
    return folders


def safe_folder_name(class_name: str) -> str:
    """A class name as one folder name: the names come from the model file, which is
    untrusted input, and "../x" or "a/b" must not lead outside the destination, nor a
    class named "_review" mix with the review pile, nor one named "manifest.csv" take the
    place of the sort's record. A name past the file system's 255 bytes is shortened."""
    name = "".join("_" if ch in '/\\:*?"<>|' else ch for ch in class_name).strip()
    name = name.lstrip(".") or "_"
    if name.casefold() in _DESTINATIONS_OWN_NAMES or _UNDONE_RECORD.fullmatch(name.casefold()):
        return fitting_name(name, " (class)")
    return fitting_name(name, "")


_DESTINATIONS_OWN_NAMES = frozenset(
    name.casefold() for name in (REVIEW_FOLDER, ERROR_FOLDER, MANIFEST_FILE, UNDONE_MANIFEST_FILE)
)
_UNDONE_RECORD = re.compile(r"manifest\.undone \(\d+\)\.csv")  # the records of later undos


def check_destination(
    dest: Path, sources: Iterable[Path], *, create: bool = True, move: bool = False
) -> None:
    """Refuse a destination that is a file, one inside a source folder (the next run would
    sort the sorted photos again) or, with `create` (which makes the folder, never its
    parent), one that cannot be written; with `move`, a source folder photos cannot be
    deleted from (a write-protected card: each photo would be copied, then fail)."""
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
                    f"cannot move photos out of {folder}: {reason_for(exc).lower()}"
                    f" (a write-protected card?); copy them instead"
                ) from exc
    manifest = target / MANIFEST_FILE
    if manifest.is_symlink():  # planted in DEST: the sort would create the file it names
        raise SortError(f"{manifest} is a link, not a sort's manifest: remove it")
    if manifest.exists() and not manifest.is_file():
        raise SortError(f"{manifest} is a folder, not a sort's manifest: rename it")
    if manifest.is_file():  # another file under its name would be sorted on, or undone
        try:
            with manifest.open(encoding="utf-8-sig", newline="") as handle:
                check_manifest_columns(manifest, next(csv.reader(handle), None))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise SortError(f"cannot read {manifest}: {exc}") from exc
    if not create:
        return
    if not target.parent.is_dir():  # an unplugged drive's mount point goes with it
        raise SortError(
            f"the folder {dest.parent} that would hold {dest.name} does not exist "
            "(a drive not plugged in?): create it first"
        )
    try:
        target.mkdir(exist_ok=True)
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
    should_stop: Callable[[], bool] | None = None,
    wait_if_busy: Callable[[str], None] | None = None,
    give_up_s: float | None = None,
) -> SortReport:
    """File each prediction's photo under `dest` (see the module). A photo that cannot be
    filed (deleted since, unreadable) is a `failed` entry and the sort goes on. A full
    disk, a destination gone, any other failure, or `should_stop()` (asked between photos)
    stops it with a SortError carrying the report of what was done: no partial file, and
    a manifest of every photo filed. Another program sorting into or undoing `dest` right
    now is a SortError before anything is done; with `wait_if_busy`, which is told so once,
    the sort waits for it instead (up to `give_up_s`, when given). `confirmed`: source ->
    the class a person set, or None where they cleared it; a photo filed before goes where
    that (or, cleared, the model) says now."""
    # One spelling of the folder (absolute, links resolved): the manifest must not depend on
    # the working folder, and a link to DEST must not make its files look like other files.
    dest = Path(os.path.realpath(dest))
    check_destination(dest, [Path(s) for s in sources], move=move)
    with alone_in(dest, wait_if_busy, give_up_s):
        return _file_each(
            predictions,
            dest,
            class_names,
            threshold,
            move,
            confirmed or {},
            should_stop,
        )


def _file_each(
    predictions: Iterable[Prediction],
    dest: Path,
    class_names: list[str],
    threshold: float,
    move: bool,
    confirmed: Mapping[str, str | None],
    should_stop: Callable[[], bool] | None,
) -> SortReport:
    """`sort_into`'s work, once the destination is checked and its lock held."""
    entries = manifest_entries(dest)
    done = latest_in_place(entries)
    _remove_refile_leftovers(entries, done)
    swept = _sweep_once(dest)
    report = SortReport()
    try:
        with ManifestWriter(dest / MANIFEST_FILE) as manifest:
            run = _SortRun(
                dest,
                class_names,
                class_folders(class_names),
                threshold,
                move,
                confirmed,
                done,
                by_placement={filed.destination: filed for filed in done.values()},
                claimed={filed.destination for filed in done.values()},
                manifest=manifest,
                report=report,
            )
            for prediction in predictions:
                if should_stop is not None and should_stop():
                    raise SortStopped(_filed_by_then(report), report)
                _stop_if_gone(manifest, report)
                _file_photo(run, prediction)
    except SortError:
        _SWEPT.discard(swept)  # a stick pulled out may leave a copy it could not delete
        raise
    except Exception as exc:
        _SWEPT.discard(swept)
        # The manifest could not be written (a stick pulled out), or something unforeseen:
        # the photos filed by then are elsewhere, and whoever shows them must know.
        raise SortError(
            f"the sort could not go on after {report.filed_count()} "
            f"({reason_for(exc, naming_the_file=True)}); each "
            "one filed is whole and in the manifest: sort again to finish, or undo it",
            report,
        ) from exc
    return report


@dataclass
class _SortRun:
    """What one sort knows while it files photo after photo."""

    dest: Path
    class_names: list[str]
    folders: Mapping[str, str]  # class_folders(class_names)
    threshold: float
    move: bool
    confirmed: Mapping[str, str | None]  # a person's classes, by source path
    done: Mapping[str, Filed]  # the manifest's photos in place, by source
    by_placement: Mapping[str, Filed]  # the same, by where each was filed
    claimed: set[str]  # names taken in DEST: never filed over
    manifest: ManifestWriter
    report: SortReport


def _file_photo(run: _SortRun, prediction: Prediction) -> None:
    """File one photo (again, if a person's word moved it since), or say why not."""
    source, report = str(prediction.path), run.report
    refusal = _why_not_sorted(source)
    if refusal is not None:
        report.failed.append((source, refusal))
        return
    person = run.confirmed.get(source)
    status = status_of(prediction, run.threshold)
    folder = folder_for(prediction, run.class_names, run.threshold, person, run.folders)
    label = person or (
        "" if prediction.top_index is None else run.class_names[prediction.top_index]
    )
    # Filed before: found by its source, or by where it was filed (the app's rows follow
    # the photos a sort moved).
    earlier = run.done.get(source) or run.by_placement.get(canonical(source))
    if _filed_before(earlier):
        # Only a person's word (a class set, changed or cleared) moves it.
        new_folder = run.dest / folder if source in run.confirmed else None
        again = _Again(source, label, status, new_folder, folder)
        _file_again(again, earlier, run.move, run.manifest, report, run.claimed)
        return
    if _changed_since_read(prediction):  # another photo under its name now
        report.failed.append((source, CHANGED_SINCE_CLASSIFIED))
        return
    try:
        filed = _file_one(Path(source), run.dest / folder, label, status, run.move, run.claimed)
    except (OSError, ValueError) as exc:  # ValueError: a name the system refuses
        stop_if_full(exc, report)
        _stop_if_gone(run.manifest, report)  # then not this photo's fault: it stays
        report.failed.append((source, _why_not_placed(exc)))
        return
    _record(run.manifest, filed, report)
    run.claimed.add(filed.destination)
    _stop_if_gone(run.manifest, report)  # never delete a source for a lost copy
    try:  # only once the manifest says where the photo went
        _finish_move(filed, placed_checked=True)
    except OSError as exc:  # the photo stays where it was, with a copy in DEST
        report.failed.append((source, reason_for(exc)))
        return
    report.filed.append(filed)


def _why_not_placed(exc: Exception) -> str:
    """Why a photo could not be filed: the system's words, with the way out where DEST's
    file system (a FAT or exFAT stick, NTFS) refuses a letter of the photo's name, which
    it says as "Invalid argument" or "Operation not permitted"."""
    refused = isinstance(exc, OSError) and exc.errno in (errno.EINVAL, errno.EPERM)
    # The name the call failed on (a link's or rename's second), not a temporary copy's.
    failed_on = refused and (exc.filename2 or exc.filename)
    if failed_on and _NAMES_FAT_REFUSES.search(os.path.basename(os.fsdecode(failed_on))):
        return (
            f"the destination's file system cannot hold this name ({reason_for(exc)}: no "
            'FAT, exFAT or NTFS name has : * ? " < > | or a control character): rename it'
        )
    return reason_for(exc)


def _changed_since_read(prediction: Prediction) -> bool:
    """Whether the photo's file is another one now (a camera's counter reset, a card
    swapped), as its size and time tell where the classifier kept them; a file gone since
    is left to the filing, which says so."""
    now = file_state(prediction.path)
    return None not in (now, prediction.file_state) and now != prediction.file_state


def _why_not_sorted(source: str) -> str | None:
    """Why the file at `source` is not one a sort files, or None when it is."""
    if not _is_text(source):  # the manifest, a UTF-8 CSV, could not name it
        folder = next((part for part in Path(source).parent.parts if not _is_text(part)), "")
        if folder:  # a folder unpacked from another system's zip, say: not the photo's fault
            return (
                f"its folder {readable_text(folder)} has a name that is not valid text: rename it"
            )
        return "its name is not valid text: rename it to sort"
    if not is_photo_file(source):  # a reopened CSV may name any file (a key, say)
        return "not a photo file: only photos are sorted"
    if os.path.islink(source):  # "IMG_1.jpg" may lead to any file, a key say
        return "a link, not a photo file: only photos are sorted"
    return None


@dataclass(frozen=True)
class _Again:
    """A photo the manifest records, as this sort sees it: `new_folder` when a person's word
    says where it goes (None: it stays where it was filed); `folder`, where the model's
    word (the threshold, the model) would file it now."""

    source: str
    label: str
    status: str
    new_folder: Path | None
    folder: str


def _file_again(
    again: _Again,
    earlier: Filed,
    move: bool,
    manifest: ManifestWriter,
    report: SortReport,
    claimed: set[str],
) -> None:
    """Sort a photo filed before (`earlier`, its latest manifest row) again: finish its move
    (a run stopped before deleting the source), make a copy a move when this sort moves, and
    move it to `again.new_folder` if that is another folder. The outcome goes to `report`."""
    try:
        moving_now = move and _copied_before(earlier)  # (reads the copy: it may fail)
    except (OSError, ValueError) as exc:
        report.failed.append((again.source, reason_for(exc)))
        return
    if moving_now:  # the row first, as for any move: the undo then knows
        earlier = replace(earlier, action="move")
        _record(manifest, earlier, report)
        _stop_if_gone(manifest, report)
    try:
        moved = _finish_move(earlier, placed_checked=moving_now)
    except (OSError, ValueError) as exc:
        stop_if_full(exc, report)
        report.failed.append((again.source, reason_for(exc)))
        return
    if moved:  # its source went now: the rows must follow, whatever a re-file below does
        report.filed.append(earlier)
    refiled = None
    if again.new_folder is not None:
        try:
            refiled = _refile(earlier, again.new_folder, again.label, again.status, claimed)
        except (OSError, ValueError) as exc:
            stop_if_full(exc, report)
            report.failed.append((again.source, reason_for(exc)))
            return
    if refiled is None:
        if not moved:
            report.skipped.append(again.source)
            if Path(earlier.destination).parent.name != again.folder:
                report.filed_elsewhere.append(again.source)
        return
    # The new row first, then the old name goes: a stop between loses nothing, and a name
    # held open elsewhere goes at the next sort.
    _record(manifest, refiled, report)
    claimed.add(refiled.destination)
    with contextlib.suppress(OSError):
        Path(earlier.destination).unlink()
    report.refiled.append((earlier.destination, refiled))


def _stop_if_gone(manifest: ManifestWriter, report: SortReport) -> None:
    """Stop the sort when the destination went away under it (a stick pulled out): a photo
    filed on would land in a folder made on the station's own disk, under an empty mount
    point, hidden once the stick is back, and a moved one would leave its source."""
    if not manifest.still_at_its_path():
        raise SortError(
            f"the destination {manifest.path.parent} went away during the sort (a stick "
            f"pulled out?) after {report.filed_count()}, each whole and in its manifest there: "
            "put it back and sort again to finish, or undo it",
            report,
        )


def _record(manifest: ManifestWriter, filed: Filed, report: SortReport) -> None:
    """Write the photo's manifest row; a full disk (the row is where a same-disk move,
    a hard link, needs space first) stops the sort as any full disk does."""
    try:
        manifest.add(filed)
    except OSError as exc:
        stop_if_full(exc, report)
        raise


def _filed_by_then(report: SortReport) -> str:
    """What a sort stopped as asked leaves, and what to do next."""
    if not report.filed:
        return "no photo filed yet: sort again to start"
    return (
        f"{plural(len(report.filed), 'photo')} filed, each whole and in the manifest: sort "
        "again to finish, or undo them"
    )


def _file_one(
    source: Path, folder: Path, class_name: str, status: str, move: bool, claimed: set[str]
) -> Filed:
    _make_class_folder(folder)
    digest = file_sha256(source)
    # A run stopped between placing a photo and writing its manifest row left an identical
    # file under the name: it is this photo, filed already, not a second one to add. Never
    # the source itself, nor a file another photo of the manifest already owns.
    target = identical_in_place(folder / source.name, digest, source, claimed)
    if target is None:
        target = place(source, folder / source.name, expected_sha256=digest, link=move)
    return Filed(str(source), str(target), class_name, status, digest, "move" if move else "copy")


def _refile(
    earlier: Filed, folder: Path, class_name: str, status: str, claimed: set[str]
) -> Filed | None:
    """Place a photo an earlier sort filed in the folder it belongs in now, if that is
    another one, and return its new entry; the caller then deletes the old name. None when
    it stays: in its folder already, changed or deleted by hand since, or the user's own
    photo (it sat where it was filed)."""
    placed = Path(earlier.destination)
    if placed.parent.resolve() == folder.resolve() or is_same_path(placed, Path(earlier.source)):
        return None
    if not placed.is_file() or file_sha256(placed) != earlier.sha256:
        return None
    _make_class_folder(folder)
    wanted = folder / Path(earlier.source).name
    # A run stopped right after placing it left an identical file there: that is this one.
    target = identical_in_place(wanted, earlier.sha256, placed, claimed)
    if target is None:
        target = place(placed, wanted, expected_sha256=earlier.sha256, link=True)
    return Filed(earlier.source, str(target), class_name, status, earlier.sha256, earlier.action)


def _make_class_folder(folder: Path) -> None:
    """Make a class folder in DEST (never DEST itself again: see _stop_if_gone); an OSError
    for a link put there in its place, which would send its photos out of DEST."""
    try:
        folder.mkdir(exist_ok=True)
    except FileExistsError:  # a file of the class's name (not a folder, nor a link to one)
        reason = f"{folder} is not a folder: rename it to sort this class"
        raise OSError(errno.EEXIST, reason, str(folder)) from None
    # Where the folder really is, as an undo reads the manifest (a Windows junction is no
    # symbolic link to is_symlink, and takes no administrator to make).
    real = os.path.normcase(os.path.dirname(os.path.realpath(folder)))
    if real != os.path.normcase(os.path.realpath(folder.parent)):
        reason = "a link to another folder, not a class folder: remove it"
        raise OSError(errno.ELOOP, reason, str(folder))


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
        and not is_same_path(source, placed)
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
    if is_same_path(source, placed):
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
        reason = reason_for(exc).lower()
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


def _sweep_once(dest: Path) -> tuple[Path, int, int]:
    """Delete the half-made copies a killed sort left in DEST's folders, once a process (a
    watch sorts every batch: no listing of every class folder each time); returns the key
    that marks DEST swept, for a sort that fails to drop (it may leave one)."""
    info = os.stat(dest)
    swept = (dest, info.st_dev, info.st_ino)  # one deleted and made again is another
    if swept not in _SWEPT:
        for folder in _folders_in(dest):
            remove_leftover_copies(folder)
        _SWEPT.add(swept)
    return swept


def _folders_in(dest: Path) -> list[Path]:
    """The folders directly in `dest` (its class folders), never through a link."""
    with contextlib.suppress(OSError), os.scandir(dest) as entries:
        return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    return []


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
        if entry.sha256 != now.sha256 or is_same_path(old, Path(entry.source)):
            continue
        if old.is_file() and file_sha256(old) == entry.sha256:
            with contextlib.suppress(OSError):
                old.unlink()

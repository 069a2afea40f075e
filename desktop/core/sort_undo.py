"""Undo a sort: put every photo of DEST's manifest back where it came from.

A moved photo goes back to its source path (never over a file that is there now: a
numbered name beside it then); a copy is deleted, or moved back when its original is gone
or was replaced by another photo of that name, as it is then the only one. A photo is
matched by path and SHA-256, never by its name alone. The undo never creates a photo's
folder when the folder above it is gone too: that is a card not inserted.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .file_placing import already_back, free_name, is_same_path, place, remove_leftover_copies
from .hashing import file_sha256
from .sort_lock import alone_in, check_not_watched
from .sort_manifest import MANIFEST_FILE, UNDONE_MANIFEST_FILE, read_manifest, write_manifest
from .sort_records import DamagedRow, Filed, SortError, SortReport, SortStopped, reason_for
from .wording import plural

# What the undo did with one photo (see _undo_one).
MOVED_BACK, DELETED, IN_PLACE = "moved back", "deleted", "in place"
# A half-made copy beside the photos goes once untouched this long: not one being made.
LEFTOVER_IDLE_S = 3600.0


def undo_sort(
    dest: str | os.PathLike[str],
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    wait_if_busy: Callable[[str], None] | None = None,
    give_up_s: float | None = None,
) -> SortReport:
    """Put every photo of the manifest back: a moved one to its source path (never over a
    file that is there now), a copy deleted (only if unchanged; moved back if its original
    is gone). Done rows go to a manifest.undone csv; rows that could not be undone stay in
    manifest.csv, so running the undo again retries just those. `should_stop()`, asked
    between photos, ends it early the same way; that and a failure to write the manifests
    raise a SortError with the report of the photos put back. `progress(done, total)`,
    before each photo: photos handled so far, of the manifest's photos. Another sort or
    undo in `dest` now: as `sorting.sort_into` waits (`wait_if_busy`, `give_up_s`), or not."""
    dest = Path(os.path.realpath(dest))
    check_something_to_undo(dest)  # before the lock, whose file the folder must take
    with alone_in(dest, wait_if_busy, give_up_s, should_stop):
        check_something_to_undo(dest)  # still: an undo may have finished it meanwhile
        check_not_watched(dest)
        pace = _Pace(should_stop or (lambda: False), progress or (lambda _done, _total: None))
        return _undo_all(dest, dest / MANIFEST_FILE, pace)


class NothingToUndo(SortError):
    """The folder given holds no sort to undo; nothing was done."""


def check_something_to_undo(dest: Path) -> None:
    """NothingToUndo saying why, when `dest` holds no manifest to undo."""
    if (dest / MANIFEST_FILE).is_file():
        return
    if dest.exists() and not dest.is_dir():
        raise NothingToUndo(f"{dest} is a file, not a folder a sort went into: nothing to undo")
    if not dest.is_dir():
        raise NothingToUndo(f"{dest} does not exist: nothing to undo")
    if (dest / UNDONE_MANIFEST_FILE).is_file():
        raise NothingToUndo(f"the sort into {dest} was undone already: nothing left to undo")
    raise NothingToUndo(
        f"no sort was made into {dest} (it has no {MANIFEST_FILE}): give the folder sorted into"
    )


@dataclass(frozen=True)
class _Pace:
    """The caller's word between two photos: whether to stop, and how far the undo is."""

    should_stop: Callable[[], bool]
    progress: Callable[[int, int], None]


def _undo_all(dest: Path, manifest: Path, pace: _Pace) -> SortReport:
    """`undo_sort`'s work, once the manifest is found and the destination's lock held."""
    entries = read_manifest(manifest, dest)
    if not entries:  # created by a sort stopped before its first photo: kept as it is
        raise SortError(f"{manifest} lists no photo: nothing to undo")
    report, left, undone = SortReport(), [], []
    stopped = _undo_each(manifest, entries, report, left, undone, pace)
    try:
        _remove_leftover_copies(entries)
        _remove_emptied_folders(dest, undone)
        if undone:
            write_manifest(free_name(dest / UNDONE_MANIFEST_FILE), list(reversed(undone)))
        if left:
            write_manifest(manifest, list(reversed(left)))
        else:
            manifest.unlink()
    except OSError as exc:  # the photos are back all the same: a second undo finds them so
        raise SortError(
            f"put back {plural(len(report.filed), 'photo')} but could not record it in {dest} "
            f"({reason_for(exc)}): undo again to finish",
            report,
        ) from exc
    if stopped:
        back = plural(len(report.filed), "photo")
        # A copy's undo deletes it: the note says so, as the finished undo's line does.
        note = report.undo_note()
        raise SortStopped(f"{back} put back{note}; undo again to put back the rest", report)
    return report


def _undo_each(
    manifest: Path,
    entries: list[Filed | DamagedRow],
    report: SortReport,
    left: list[Filed | DamagedRow],
    undone: list[Filed | DamagedRow],
    pace: _Pace,
) -> bool:
    """Put back each photo of `manifest`'s `entries`, latest row first, into `report`;
    rows not undone go to `left`, done ones to `undone` (both latest first). True when
    stopped early."""
    seen: set[tuple[str, str]] = set()
    returned: set[tuple[str, str]] = set()  # photos put back by their latest row
    photos = len({(e.source, e.sha256) for e in entries if isinstance(e, Filed)})
    for position, entry in enumerate(reversed(entries)):
        pace.progress(len(seen), photos)
        if pace.should_stop():
            left.extend(reversed(entries[: len(entries) - position]))
            return True
        if isinstance(entry, DamagedRow):
            reason = f"line {entry.line} {entry.why}"
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
                report.failed.append((entry.destination, reason_for(exc)))
            seen.add(photo)
            left.append(entry)
            continue
        undone.append(entry)
        returned.add(photo)
        if photo not in seen:  # a re-filed photo's earlier rows: not counted again
            seen.add(photo)
            report.filed.append(replace(entry, source=str(back)))  # where it is now
            report.copies_deleted += entry.action == "copy" and outcome == DELETED
            if not is_same_path(back, Path(entry.source)):
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
    if filed and is_same_path(placed, source):
        return IN_PLACE, placed  # the photo already sat where it was filed: it stays
    # The photo may be back already: a copy's original, or a move an undo put back before
    # it was stopped (under its name, or a numbered one). Then the filed one just goes.
    back = already_back(source, entry.sha256, placed)
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
    back = place(placed, source, link=True)
    placed.unlink()
    return MOVED_BACK, back


def _folder_to_put_back_into(source: Path) -> None:
    """Make a photo's folder again if a person deleted it once the sort emptied it; but
    refuse when the folder above is gone too: a card not inserted or a share not connected,
    where a made-up folder would hide the photo under the mount point later. (A tree of
    folders deleted whole looks the same from here: the message says to make it again.)"""
    folder = source.parent
    if folder.is_dir():
        return
    if not folder.parent.is_dir():
        raise OSError(
            errno.ENOENT,
            f"its folder {folder} is not there, nor the folder above it: a card or share not "
            f"connected? Left as is: undo again once it is back (or, if the folders were "
            f"deleted, once {folder} is made again)",
        )
    folder.mkdir(exist_ok=True)


def _remove_leftover_copies(entries: list[Filed | DamagedRow]) -> None:
    """The half-made copies a killed sort left in DEST's folders, and a killed undo beside
    the photos (where another DEST's undo may be copying now: only idle ones there)."""
    filed = [entry for entry in entries if isinstance(entry, Filed)]
    for folder in {Path(entry.destination).parent for entry in filed}:
        remove_leftover_copies(folder)
    for folder in {Path(entry.source).parent for entry in filed}:
        remove_leftover_copies(folder, idle_for_s=LEFTOVER_IDLE_S)


def _remove_emptied_folders(dest: Path, undone: list[Filed]) -> None:
    """The class folders the undo left empty (never DEST itself, never one with a file a
    person added: rmdir removes only an empty folder)."""
    for folder in {Path(entry.destination).parent for entry in undone}:
        if folder != dest and dest in folder.parents:
            with contextlib.suppress(OSError):
                folder.rmdir()

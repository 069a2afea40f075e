"""DEST/manifest.csv, a sort's record: one row per photo filed (source, destination, class,
status, SHA-256, copy or move), written as each photo is filed, so an interrupted sort knows
what it did; the latest row of a photo is the one that counts. An undo keeps the rows it
did in manifest.undone.csv ("manifest.undone (2).csv", ... for later undos). Paths are
absolute; a filed photo is looked for under DEST as it is named now.
"""

from __future__ import annotations

import codecs
import csv
import errno
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .csv_export import csv_lines, neutralise, unguarded_text
from .preprocessing import is_photo_file
from .safe_files import append_whole, open_own, replaced_whole
from .sort_records import DamagedRow, Filed, SortError, SortReport, destination_full

MANIFEST_FILE = "manifest.csv"
UNDONE_MANIFEST_FILE = "manifest.undone.csv"
MANIFEST_COLUMNS = ("source", "destination", "class", "status", "sha256", "action")


class ManifestWriter:
    """manifest.csv, appended one row per filed photo, each on disk before the next photo.

    Rows go straight to the file, unbuffered: a row a full disk cut short is cut off again
    (never half a row for the next sort to append to), and nothing is left to flush at the
    close. A file whose last line has no line end (saved by an editor, a power cut) gets one
    first, so a new row never runs into it."""

    def __init__(self, path: Path):
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def __enter__(self) -> ManifestWriter:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        try:  # never through a link planted in DEST: it would create any file it names
            self._fd = open_own(self._path, flags, "a sort's manifest")
        except ValueError as exc:  # a link: removed; a second name: made a file of its own
            mend = (
                "remove it" if self._path.is_symlink() else "copy it, and put the copy in its place"
            )
            raise SortError(f"{exc}: {mend}, then sort again") from exc
        except OSError as exc:
            raise _cannot_write(self._path, exc) from exc
        try:
            size = os.fstat(self._fd).st_size
            if _holds_no_row(self._path, size):  # new, or made by a sort stopped at once
                os.ftruncate(self._fd, 0)
                self._append(csv_lines([MANIFEST_COLUMNS]))
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
            self._append(csv_lines([_row(filed)]))
        except OSError as exc:  # os.write names no file: say it was the manifest
            raise OSError(exc.errno, exc.strerror or str(exc), str(self._path)) from exc

    def _append(self, data: bytes) -> None:
        append_whole(self._fd, data)

    def __exit__(self, *_exc: object) -> None:
        os.close(self._fd)

    def still_at_its_path(self) -> bool:
        """Whether the manifest's path still leads to the file being written: not when the
        destination was unplugged, or another folder (an empty mount point) took its place."""
        try:
            now = os.stat(self._path)
        except OSError:
            return False
        opened = os.fstat(self._fd)
        return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


def _row(e: Filed | DamagedRow) -> list[str]:
    if isinstance(e, DamagedRow):
        return list(e.cells)
    # The class comes from the model's metadata, which anyone may write: a spreadsheet
    # must show "=HYPERLINK(...)" as text. (The paths are absolute: never a formula.)
    return [e.source, e.destination, neutralise(e.class_name), e.status, e.sha256, e.action]


def _cannot_write(path: Path, exc: OSError) -> SortError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return destination_full(SortReport())
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


def write_manifest(path: Path, entries: Sequence[Filed | DamagedRow]) -> None:
    with replaced_whole(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(_row(e) for e in entries)


def read_manifest(path: Path, dest: Path) -> list[Filed | DamagedRow]:
    """The manifest's rows, the damaged ones as they are (see `_sound`); SortError for a
    file of other columns (a results CSV saved under that name: trusting it would undo
    nothing and delete it, or sort on top of it) or one that cannot be read whole (re-saved
    in another encoding)."""
    if path.is_symlink():  # planted in DEST: rows naming files far from it, to act on
        raise SortError(f"{path} is a link, not a sort's manifest: remove it")
    dest = Path(os.path.realpath(dest))  # once, not for each of its rows
    folders: dict[str, Path] = {}  # each class folder's real path, resolved once
    rows: list[Filed | DamagedRow] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:  # Excel may add a BOM
            reader = csv.reader(handle)
            header = next(reader, None)
            check_manifest_columns(path, header)
            for cells in reader:
                if not "".join(cells).strip("\0 \t"):  # a blank line, or a NUL-filled tail
                    continue
                rows.append(_entry(header, cells, reader.line_num, dest, folders))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise SortError(f"cannot read {path}: {exc}") from exc
    return rows


def _entry(
    header: list[str], cells: list[str], line: int, dest: Path, folders: dict[str, Path]
) -> Filed | DamagedRow:
    if len(cells) == len(header):
        named = dict(zip(header, cells, strict=True))
        entry = Filed(*(named[column] for column in MANIFEST_COLUMNS))
        entry = replace(
            entry,
            destination=_destination_under(entry.destination, dest, folders),
            class_name=unguarded_text(entry.class_name),
        )
        if _sound(entry):
            if _within(entry, dest):
                return entry
            return DamagedRow(line, tuple(cells), OUTSIDE_DEST)
    return DamagedRow(line, tuple(cells))


OUTSIDE_DEST = (
    "names no photo filed in a class folder of this destination (a row edited by hand, or "
    "a folder linked elsewhere): never acted on, kept in it as it is"
)


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


def _within(entry: Filed, dest: Path) -> bool:
    """Whether a row acts where a sort does, not far from DEST (on a stick or share anyone
    may write to, a row may be edited to): a photo both where it was and where it went (an
    undo creates the source and deletes or moves the destination: "~/.bashrc", a start-up
    folder's script), filed in a class folder of DEST itself (not "..", nor a folder linked
    elsewhere)."""
    paths = (entry.source, entry.destination)
    return all(is_photo_file(p) for p in paths) and _in_a_folder_of(entry.destination, dest)


def _in_a_folder_of(path: str, dest: Path) -> bool:
    """Whether `path` (links in its folders resolved: see `canonical`) is a file in a
    folder right under `dest` (resolved too)."""
    folder = Path(path).parent
    if folder.name in ("", ".", ".."):
        return False
    return os.path.normcase(str(folder.parent)) == os.path.normcase(str(dest))


def check_manifest_columns(path: Path, columns: Sequence[str] | None) -> None:
    """None: an empty file (created, then stopped before its header), nothing filed yet."""
    if columns is None:
        return
    missing = [column for column in MANIFEST_COLUMNS if column not in columns]
    if missing:
        raise SortError(
            f"{path} is not a manifest this app wrote (it has no {', '.join(missing)} column)"
        )


def _destination_under(recorded: str, dest: Path, folders: dict[str, Path]) -> str:
    """Where a photo filed as DEST/<folder>/<name> is, under `dest` (a real path) as it is
    named now: the worker may have renamed the folder, or reached it from another drive
    letter or mount point, since (earlier versions also recorded it relative to the working
    folder). As `canonical` has it, with each folder resolved once in `folders`: a realpath
    for each of a month's 30,000 rows made every batch of a sorting watch take seconds."""
    path = Path(recorded)
    if len(path.parts) < 2 or "\0" in recorded:
        return recorded  # not a sort's row (see `_sound`)
    folder, name = path.parts[-2:]
    if folder not in folders:
        folders[folder] = Path(os.path.realpath(os.path.abspath(dest / folder)))
    return str(folders[folder] / name)


def manifest_entries(dest: Path) -> list[Filed]:
    """The manifest's sound rows (see `_sound`); the undo reports the others."""
    manifest = dest / MANIFEST_FILE
    if not manifest.is_file():
        return []
    return [e for e in read_manifest(manifest, dest) if isinstance(e, Filed)]


def latest_in_place(entries: list[Filed]) -> dict[str, Filed]:
    """Each photo's latest manifest row whose copy is still in place: a re-run skips them."""
    return {e.source: e for e in entries if Path(e.destination).is_file()}

"""Putting a file at a name without ever replacing one, and finding it there again.

A copy lands first under a hidden temporary name in its destination folder, is flushed to
disk and compared by SHA-256 with its source, and only then takes its final name, by a hard
link that fails instead of replacing anything (a name already taken gets " (2)", " (3)"
...). A copy is always a real, independent copy; for a move on the same file system, whose
caller then deletes the source, a hard link is placed instead (no bytes copied). A copy
a kill or a power cut left under its temporary name is deleted by the next sort or undo
(`remove_leftover_copies`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import TypeVar

from .hashing import file_sha256
from .safe_files import fitting_name, remove_files

_CHUNK = 1 << 20
AnyPath = TypeVar("AnyPath", bound=PurePath)  # a Path stays a Path
# What os.link raises on a file system without hard links (FAT, some network shares).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}
# Windows on FAT or exFAT: ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED (Python: EINVAL).
_WINDOWS_NO_HARD_LINKS = {1, 50}
_TEMPORARY_ENDING = ".sorting.tmp"
_TEMPORARY_NAME = re.compile(r"\.[0-9a-f]{12}" + re.escape(_TEMPORARY_ENDING) + r"\Z")


def numbered(wanted: AnyPath, number: int) -> AnyPath:
    """The name a second photo of a name takes: "item (2).jpg" (the app, the sort, the web
    page's rows all number the same way), its stem shortened where the number would take
    the name past the file system's limit."""
    return wanted.with_name(fitting_name(wanted.stem, f" ({number}){wanted.suffix}"))


def numbered_names(wanted: Path) -> Iterator[Path]:
    """`wanted`, then "stem (2).suffix", "stem (3).suffix", ... (up to 9,999): the names a
    photo may have in a folder where its own was taken."""
    yield wanted
    for number in range(2, 10_000):
        yield numbered(wanted, number)


def place(
    source: Path, wanted: Path, *, expected_sha256: str | None = None, link: bool = False
) -> Path:
    """Put a copy of `source` at `wanted` or the first free numbered name, and return where
    it went; the source stays. With `link` (for a move, whose caller then deletes the
    source), the same file system gets a hard link instead: no bytes copied, and never two
    names for one file once the move is done. A folder that cannot be written in is named:
    the photo's own path would point at the wrong file (a read-only class folder, a
    write-protected card an undo puts back to)."""
    try:
        return _place(source, wanted, expected_sha256, link)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EROFS):
            raise
        why = (exc.strerror or str(exc)).lower()
        raise OSError(exc.errno, f"cannot write in {wanted.parent} ({why})") from exc


def _place(source: Path, wanted: Path, expected_sha256: str | None, link: bool) -> Path:
    if link and source.stat().st_dev == wanted.parent.stat().st_dev:
        try:
            return _claim_name(wanted, lambda target: os.link(source, target))
        except OSError as exc:
            if isinstance(exc, FileExistsError) or not _no_hard_links(exc):
                raise
    temporary = wanted.with_name(f".{uuid.uuid4().hex[:12]}{_TEMPORARY_ENDING}")
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


def remove_leftover_copies(folder: Path, *, idle_for_s: float = 0.0) -> None:
    """Delete the copies in `folder` that a sort or an undo killed midway left under a
    temporary name (hidden, whole or not, never a photo's only copy: the source is only
    deleted once the copy has its name). In a destination's folder, under its lock, each
    goes; in a folder another program may be copying into (an undo of another DEST puts
    photos back there too), only one untouched for `idle_for_s` seconds (its status change
    time: a copy's writes and its copied time both set it)."""
    now = time.time()
    remove_files(
        folder,
        lambda name: bool(_TEMPORARY_NAME.match(name)),
        lambda info: now - info.st_ctime >= idle_for_s,
    )


def _claim_name(wanted: Path, put: Callable[[Path], None]) -> Path:
    """Call `put(target)` with `wanted`, then "stem (2).suffix", ... until one is free."""
    for target in numbered_names(wanted):
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
        placeholder = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        claimed = os.fstat(placeholder)
        os.close(placeholder)
        try:
            os.replace(temporary, target)
        except BaseException:  # an error, or a stop before the copy took the name
            _remove_placeholder(target, claimed)
            raise


def _remove_placeholder(target: Path, claimed: os.stat_result) -> None:
    """Remove the empty file `_link_or_rename` claimed a name with, if it is still there:
    left, it would hold the photo's name, and the photo would come back as "name (2)"."""
    with contextlib.suppress(OSError):
        now = os.stat(target)
        if now.st_size == 0 and (now.st_dev, now.st_ino) == (claimed.st_dev, claimed.st_ino):
            os.unlink(target)


def free_name(wanted: Path) -> Path:
    """`wanted`, or the first of "stem (2).suffix", ... that no file has (a check, then the
    caller's write: for a file only this program writes, under the destination's lock)."""
    for target in numbered_names(wanted):
        if not target.exists():
            return target
    raise OSError(errno.EEXIST, f"no free name for {wanted.name} in {wanted.parent}")


def identical_in_place(wanted: Path, digest: str, source: Path, claimed: set[str]) -> Path | None:
    """The file among `wanted`, "stem (2).suffix", ... with this SHA-256 that no other
    photo of the manifest owns, if any (the source itself, when it already sits there)."""
    # The folder's links resolved once, not for each name: it may hold thousands of one.
    folder, itself = Path(canonical(wanted)).parent, canonical(source)
    for candidate in _names_taken(wanted):
        if str(folder / candidate.name) == itself:
            return candidate
        if str(candidate) not in claimed and _holds(candidate, digest):
            return candidate
    return None


def already_back(source: Path, digest: str, placed: Path) -> Path | None:
    """`source`, or "stem (2).suffix", ... beside it, holding this photo (never the filed
    file itself)."""
    for candidate in _names_taken(source):
        if not is_same_path(candidate, placed) and _holds(candidate, digest):
            return candidate
    return None


def _names_taken(wanted: Path) -> Iterator[Path]:
    """`numbered_names(wanted)` as long as a file has each (a photo numbered after a gap
    was never given that name by a sort)."""
    for name in numbered_names(wanted):
        if not name.exists():
            return
        yield name


def _holds(path: Path, digest: str) -> bool:
    """Whether `path` is a file with this SHA-256."""
    return path.is_file() and file_sha256(path) == digest


def is_same_path(first: Path, second: Path) -> bool:
    return canonical(first) == canonical(second)


def canonical(path: str | os.PathLike[str]) -> str:
    """A file's path with its folder's links resolved: DEST reached through a link and DEST
    itself name the same files. The name itself is kept (never follows a link to a file)."""
    path = Path(os.path.abspath(path))
    return str(Path(os.path.realpath(path.parent)) / path.name)

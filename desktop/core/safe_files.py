"""Writing beside the user's files: a file is replaced, or appended to, whole or not at all,
and a folder is known to take new files before any work starts."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .limits import MAX_FILE_NAME_BYTES


@contextlib.contextmanager
def replaced_whole(target: Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """A handle on a hidden temporary file beside `target`. On a clean exit the data is
    flushed to disk and the file takes `target`'s name (one rename: a reader sees the old
    file or the new one, never half of it); on any failure, a full disk or Ctrl+C, it is
    removed and `target` is left as it was."""
    temporary = target.with_name(hidden_temporary_name(target.name))
    # os.open with 0o666 lets the umask decide the final permissions, like a normal file.
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
    )
    try:
        with open(descriptor, mode, **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _remove_stale_temporaries(target)


# A temporary file of `replaced_whole` untouched this long was left by a kill or a power cut
# (a write takes seconds): each would stay beside the user's file, full size and, on
# Windows, not even hidden.
STALE_TEMPORARY_SECONDS = 3600
_TEMPORARY = re.compile(r"\.(.+)\.[0-9a-f]{12}\.tmp\Z", re.DOTALL)


def _remove_stale_temporaries(target: Path) -> None:
    """Delete what killed writes of `target` left (never another writer's, still going).
    Their age is told by the file system's clock, `target`'s time as just written: a share's
    server may keep another time than this machine."""
    try:
        now = target.stat().st_mtime
    except OSError:
        return

    def own(name: str) -> bool:
        found = _TEMPORARY.match(name)
        return bool(found and found[1] == target.name)

    remove_files(target.parent, own, lambda info: now - info.st_mtime > STALE_TEMPORARY_SECONDS)


def remove_files(
    folder: Path, named: Callable[[str], bool], doomed: Callable[[os.stat_result], bool]
) -> None:
    """Delete the files (never links, never folders) directly in `folder` whose name is
    `named` and whose stat is `doomed` (asked only of those names: a folder may hold
    20,000 photos); a file that goes meanwhile, or a folder that cannot be read, is no
    error: a clean-up never stops the work it follows."""
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                wanted = named(entry.name) and entry.is_file(follow_symlinks=False)
                if wanted and doomed(entry.stat(follow_symlinks=False)):  # stat: named only
                    os.unlink(entry.path)


def open_own(path: Path, flags: int, what: str) -> int:
    """`os.open(path, flags)` (created 0o666 under the umask) of a file that is no link to
    another: a symbolic link (never followed) or a second name (a hard link) put in its
    place, on a shared folder or a stick, would have another file created or written.
    ValueError says `path` is a link, not `what`."""
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise ValueError(f"{path} is a link, not {what}") from exc
    if os.fstat(descriptor).st_nlink > 1:
        os.close(descriptor)
        raise ValueError(f"{path} has another name (a hard link), not {what}")
    return descriptor


def append_whole(fd: int, data: bytes) -> None:
    """Append `data` to the file open at `fd` (unbuffered, O_APPEND) and sync it to disk:
    all of it, or on any failure (a full disk, Ctrl+C) the file cut back to its size before,
    never half a row for the next append to run into."""
    size = os.fstat(fd).st_size
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise


def hidden_temporary_name(name: str) -> str:
    """A hidden, unique name beside `name`, within the file system's limit in bytes."""
    return fitting_name(f".{name}", f".{uuid.uuid4().hex[:12]}.tmp")


def fitting_name(stem: str, ending: str) -> str:
    """`stem` + `ending`, the stem shortened as needed to keep within the file system's limit
    in bytes (a name of non-ASCII letters takes two or more bytes a letter)."""
    while len(os.fsencode(stem + ending)) > MAX_FILE_NAME_BYTES and stem:
        stem = stem[:-1]
    return stem + ending


def is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file named `path` (not deleted or replaced
    since: an editor's save and an atomic write put another file under the name)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def probe_writing(folder: Path) -> None:
    """Create and delete a hidden file in `folder`; OSError if it cannot be done. This is
    what a read-only card or share refuses: os.access cannot tell on Windows, where it calls
    every folder writable."""
    probe = folder / f".ewaste-write-test-{uuid.uuid4().hex[:8]}"
    probe.touch(exist_ok=False)
    probe.unlink()

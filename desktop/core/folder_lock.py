"""One program at a time in a folder: the app, a headless sort and a sorting watch may all
be pointed at one destination, and two of them filing into it (or one undoing while another
files) would interleave their manifest rows and race for the same names.

The lock is the operating system's own lock on a hidden file in the folder (flock on Linux
and macOS, a locked byte on Windows), so it goes when its holder exits, even when it is
killed: a lock file left behind is never a lock, and never needs clearing by hand (it is
opened read-only, so one another user left is no obstacle either). On Linux and macOS its
holder deletes the file when done, and a waiter that then holds the lock of a deleted file
opens the folder's file again. Windows cannot delete a file another program has open (a
waiter about to lock it would fail to open it), so there the file stays.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from .safe_files import is_file_at

if os.name == "nt":
    import msvcrt
else:
    import fcntl

LOCK_FILE = ".ewaste-sorting.lock"
# Windows cannot delete a file another program may hold open: there a lock file stays
# once made (see the module), so a caller may rather not make one for a moment's work.
LOCK_FILES_STAY = os.name == "nt"
# What a lock held by another holder raises.
_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", -1)}
# What a file system without locks (some network shares) raises: the work goes on unlocked,
# as it did before locks. Any other error is one to report.
_NO_LOCKS = {errno.ENOLCK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


class FolderLock:
    """The lock of `folder` (or, named, of one of its files: a watch's CSV): `acquire()`
    takes it if it is free, `release()` lets it go."""

    def __init__(self, folder: Path, name: str = LOCK_FILE):
        self.path = folder / name
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting: False when another holder has it. OSError when
        the lock file cannot be made (a read-only folder), is not a plain file (a link or a
        pipe put in its place: never followed, never waited on) or the lock fails."""
        assert self._fd is None, "held already"
        flags = os.O_RDONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
        flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        not_plain = f"{self.path} is not a plain file (a link or a pipe put there): delete it"
        while True:
            try:
                fd = os.open(self.path, flags, 0o666)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a symbolic link, not followed
                    raise OSError(errno.EINVAL, not_plain) from exc
                raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EINVAL, not_plain)
            try:
                _lock(fd)
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    os.close(fd)
                    if exc.errno in _HELD:
                        return False
                    raise
            if is_file_at(fd, self.path):
                self._fd = fd  # held (or, without locks, kept to delete when done)
                return True
            os.close(fd)  # its holder deleted it as this one waited: lock the folder's file

    def release(self) -> None:
        """Delete the lock file and let the lock go (first the one, then the other: a
        program that opens the file meanwhile finds it deleted once it holds the lock)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if os.name == "nt":
            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            os.close(fd)
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(fd)  # lets the flock go


def held_elsewhere(folder: Path, name: str = LOCK_FILE) -> bool:
    """Whether another holder has the lock `name` in `folder` now: taken and let go at once
    to find out (on Linux this deletes the file a killed holder left). One that cannot be
    taken for another reason (not a plain file, no locks there) is nobody's."""
    lock = FolderLock(folder, name)
    try:
        if lock.acquire():
            lock.release()
            return False
    except OSError:
        return False
    return True


def _lock(fd: int) -> None:
    """flock, not fcntl's record locks: two opens in one process exclude each other too."""
    if os.name == "nt":
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

"""One sort or undo in a destination at a time: the app, a headless sort and a watch hold
DEST's lock (see folder_lock) while they work there."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .folder_lock import FolderLock, held_elsewhere
from .sort_records import SortError, SortReport, SortStopped, reason_for

BUSY_POLL_SECONDS = 0.5  # how often a sort waiting for another one's destination looks again
# Each sorting watch holds a lock of its own in its DEST for as long as it runs
# (`WatchPresence`): an undo there would put back the photos it filed too, which it never
# sorts again. One per watch: a second watch into the same DEST is marked as well.
WATCH_LOCK_PATTERN = ".ewaste-watching-*.lock"


def check_not_busy(
    dest: str | os.PathLike[str],
    wait_if_busy: Callable[[str], None] | None = None,
    give_up_s: float | None = None,
) -> None:
    """A SortError when another sort or undo works in `dest` right now (or, waiting as
    `alone_in` does, still after `give_up_s`): for a caller with work to do before its sort
    (classifying the photos, asking copy or move) to say so first. The sort itself still
    takes the lock, or says so then."""
    dest = Path(os.path.realpath(dest))
    if dest.is_dir():
        with alone_in(dest, wait_if_busy, give_up_s):
            pass


def watch_lock_name(watch: str) -> str:
    """The name of the mark the watch named `watch` (its record's path) holds in DEST."""
    digest = hashlib.sha256(watch.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return WATCH_LOCK_PATTERN.replace("*", digest)


class WatchPresence:
    """A sorting watch's mark in its DEST, held while it runs (see `check_not_watched`);
    taken as soon as DEST exists. `watch`: what tells this watch from another one."""

    def __init__(self, dest: Path, watch: str):
        self._lock = FolderLock(dest, watch_lock_name(watch))
        self._held = False
        self.take()

    def take(self) -> None:
        """Hold the mark, if not yet (a DEST not made yet, or without locks: not)."""
        if not self._held:
            with contextlib.suppress(OSError):
                self._held = self._lock.acquire()

    def release(self) -> None:
        if self._held:
            self._lock.release()
            self._held = False


def check_not_watched(dest: Path) -> None:
    """A SortError when a sorting watch files into `dest` now: an undo must wait for it."""
    if not any(held_elsewhere(dest, mark.name) for mark in dest.glob(WATCH_LOCK_PATTERN)):
        return
    raise SortError(
        f"a watch (ewaste-classify --watch ... --sort-into) is sorting into {dest} now: stop "
        "it first, or the photos it filed would be put back too and never sorted again"
    )


@contextlib.contextmanager
def alone_in(
    dest: Path,
    wait_if_busy: Callable[[str], None] | None,
    give_up_s: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """Hold `dest`'s lock (see folder_lock) for the block. When another program holds it:
    a SortError, or with `wait_if_busy`, say so once and wait until it is free (or, after
    `give_up_s`, a SortError: a one-time run beside a watch, which holds the lock for a
    moment at each batch, must not fail for that moment, nor wait out a person's sort).
    `should_stop()`, asked as it waits: a SortStopped with an empty report when true."""
    lock = FolderLock(dest)
    busy = f"another sort or undo is working in {dest} (this app, ewaste-classify or a watch)"
    told, began = False, time.monotonic()
    try:
        while not lock.acquire():
            if wait_if_busy is None:
                raise SortError(f"{busy}: try again once it is done")
            if should_stop is not None and should_stop():
                raise SortStopped(f"nothing done: it was waiting for {busy}", SortReport())
            if give_up_s is not None and time.monotonic() - began >= give_up_s:
                raise SortError(f"{busy} still after {give_up_s:g} s: try again once it is done")
            if not told:
                wait_if_busy(f"{busy}; waiting for it to finish")
                told = True
            time.sleep(BUSY_POLL_SECONDS)
    except OSError as exc:
        raise SortError(f"cannot write to {dest}: {reason_for(exc)}") from exc
    try:
        yield
    finally:
        lock.release()

"""Watch a folder a station camera or scanner saves into: hand over each new photo once it
is completely written.

A camera writes a photo in pieces; reading it half-way would give a broken-file error for
a good photo. A file counts as written when its size and time have stood still for
`settle_seconds` and it decodes; one that still does not decode after `give_up_seconds`
of standing still is handed over anyway (it becomes an error row, with the reason). Each
photo is handed over once; the watcher remembers only the names it handed over, a few
dozen bytes a photo.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .csv_export import ResultsCsvAppender, unguarded_text
from .discovery import is_clutter
from .preprocessing import ImageLoadError, is_photo_file, is_supported_image, load_rgb
from .sorting import sort_into
from .wording import plural

if TYPE_CHECKING:
    from .engine import Engine

DEFAULT_POLL_SECONDS = 1.0
SETTLE_SECONDS = 1.0
GIVE_UP_SECONDS = 10.0


class FolderWatcher:
    """`poll()` returns the photos of `folder` that became ready since the last call."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        settle_seconds: float = SETTLE_SECONDS,
        give_up_seconds: float = GIVE_UP_SECONDS,
        already: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ):
        """`already`: names handed over before (a watch restarted on the same CSV)."""
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise NotADirectoryError(f"not a folder: {self.folder}")
        self._settle, self._give_up, self._clock = settle_seconds, give_up_seconds, clock
        self._handed_over: set[str] = set(already)
        self._pending: dict[str, tuple[tuple[int, int], float]] = {}  # name -> state, since

    def poll(self) -> list[Path]:
        """New photos that are completely written, sorted by name."""
        ready, seen, now = [], set(), self._clock()
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return []  # the share blinked: the next poll tries again
        for entry in entries:
            name = entry.name
            if name in self._handed_over or is_clutter(name) or not is_photo_file(name):
                continue
            try:
                info = entry.stat()
            except OSError:
                continue  # deleted between listing and stat
            if not entry.is_file() or info.st_size == 0:
                continue
            seen.add(name)
            state = (info.st_size, info.st_mtime_ns)
            previous, since = self._pending.get(name, (None, now))
            if previous != state:
                self._pending[name] = (state, now)
                continue
            still = now - since
            if still >= self._settle and (still >= self._give_up or _complete(entry)):
                ready.append(self.folder / name)
                self._handed_over.add(name)
                del self._pending[name]
        # Names no longer in the folder are forgotten, so memory stays flat, and a camera
        # that reuses a name (its counter reset) is heard again once the old photo left.
        present = {entry.name for entry in entries}
        for name in set(self._pending) - seen:
            del self._pending[name]
        self._handed_over &= present
        return sorted(ready)


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
) -> int:
    """Classify the photos arriving in `folder` until `should_stop()` or a stop signal
    (which the caller turns into an exception); returns how many were classified. Each
    batch is appended to `output` at once, and filed under `sort_into_dest` when given."""
    folder = Path(os.path.abspath(folder))  # the CSV's paths are absolute, as without --watch
    watcher = FolderWatcher(folder, already=_classified_before(output, folder))
    appender = ResultsCsvAppender(output, engine.class_names, threshold)
    classified = 0
    try:
        while not should_stop():
            ready = watcher.poll()
            for batch in engine.classify(ready, batch_size=batch_size, with_cam=False):
                appender.append(batch)
                classified += len(batch)
                if sort_into_dest is not None:
                    names = list(engine.class_names)
                    report = sort_into(batch, sort_into_dest, names, threshold, move=move)
                    for source, reason in report.failed:
                        log(f"not sorted: {source}: {reason}")
            if ready:
                log(f"{plural(classified, 'photo')} classified from {folder}")
            time.sleep(poll_seconds)
    finally:
        appender.close()
    return classified


def _classified_before(output: Path, folder: Path) -> set[str]:
    """Names of `folder`'s photos in the CSV that are still the photos classified then: a
    restarted watch does not repeat them (a batch cut short by a stop is not in it, so it
    is classified again). A file that arrived after the CSV's last write is a new photo
    under a reused name (a camera's counter reset, a new card), so it is classified: its
    inode change time, which no copy tool can back-date, is later than the CSV's."""
    if not output.is_file():
        return set()
    written = output.stat().st_mtime_ns
    with output.open(encoding="utf-8", newline="") as handle:
        paths = [unguarded_text(row[0]) for row in csv.reader(handle) if row][1:]
    names = {Path(p).name for p in paths if Path(p).parent == folder}
    return {name for name in names if _changed_at(folder / name) <= written}


def _changed_at(path: Path) -> int:
    try:
        return path.stat().st_ctime_ns
    except OSError:
        return 0  # gone: nothing to repeat or to hear

"""A person's review kept on disk until it is in a CSV, so a crash or a power cut loses
none of it: the next start offers it back.

A moment after the confirmed classes last changed, while they differ from the last CSV
written or opened (`ResultsModel.unsaved_review`), the whole table is written as a results
CSV (atomically, on a pool thread) to RECOVERY_FILE in the app's data folder; once nothing
differs (exported, or cleared by choice) the file goes. Quit and Clear ask first, so a
clean end leaves no file; a crash, a power cut or Ctrl+C in the terminal leaves it. The
next start moves it aside under a name of its own ("unsaved-review.20261206-172510.csv")
before writing its own, and offers each such file back until it is reopened in full or
discarded: a session that ends before the worker decides adds one, never replaces one.
A copy that cannot be written (a full disk) is said (`trouble`) and tried again until it is.

One window at a time keeps the copy (a lock file, freed when its process is gone): a second
window of the app would otherwise take the first one's live review for a crashed one's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Signal, Slot

from desktop.core.csv_export import write_results_csv
from desktop.gui.background import BackgroundCall
from desktop.gui.results_model import ResultsModel

RECOVERY_FILE = "unsaved-review.csv"
LEFTOVER_PATTERN = "unsaved-review.*.csv"  # earlier sessions' files, moved aside
LOCK_FILE = "unsaved-review.lock"
SAVE_DELAY_MS = 1500  # a burst of key presses is written once
WAIT_S = 5.0  # for a write in progress, at most, before the window closes (a dead share)
RETRY_MS = 30_000  # a copy that could not be written is tried again this often


class ReviewRecovery(QObject):
    """Keeps `folder`/RECOVERY_FILE in step with the table's unsaved review."""

    trouble_changed = Signal()  # `trouble` began, changed or ended

    def __init__(self, results: ResultsModel, folder: Path, parent: QObject | None = None):
        super().__init__(parent)
        self._results = results
        self.folder = folder
        self.path = folder / RECOVERY_FILE
        self._lock = QLockFile(str(folder / LOCK_FILE))
        self.locked = False  # this window deals with the folder's files
        self.enabled = False  # this window keeps its own copy
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.locked = self._lock.tryLock(0)
            if self.locked and self.path.is_file():  # an earlier session's, left behind
                os.replace(self.path, _aside_name(self.path))
            self.enabled = self.locked
        except OSError:
            pass  # a read-only profile, or a file that cannot move: offered, never written
        self._call: BackgroundCall | None = None  # the write running, one at a time
        # Why the copy could not be written last time, until a write works: the worker
        # must then know a crash would lose what they did since.
        self.trouble: str | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self._save)
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.setInterval(RETRY_MS)
        self._retry.timeout.connect(self.schedule)
        results.confirmations_changed.connect(self.schedule)
        results.modelReset.connect(self.schedule)  # cleared, or another model's classes
        results.relocated.connect(self.schedule)

    def leftovers(self) -> list[Path]:
        """Reviews earlier sessions left in no CSV, newest first, until each is reopened in
        full or discarded."""
        if not self.locked:
            return []  # another window of the app deals with them
        found = [p for p in self.folder.glob(LEFTOVER_PATTERN) if p.is_file()]
        if not self.enabled and self.path.is_file():
            found.append(self.path)  # it could not be moved aside: offered where it is
        return sorted(found, key=_modified, reverse=True)

    def forget_leftover(self, leftover: Path, *, discarded: bool = False) -> bool:
        """`leftover` was `discarded`, or is in the table in full (and so from now on in
        this session's copy, written at once before the earlier one goes). False, and it
        stays, when that copy could not be written."""
        if not discarded and not self.flush(now=True):
            return False
        with contextlib.suppress(OSError):
            leftover.unlink(missing_ok=True)
        return True

    def release(self) -> None:
        """The window is closing: its copy is in step; another window may keep one now."""
        self.flush()
        self.enabled = False
        if self.locked:
            self._lock.unlock()
            self.locked = False

    @Slot()
    def schedule(self) -> None:
        """Bring the copy in step a moment from now (after a change, or an export): at
        most SAVE_DELAY_MS after the first change not in it. Started again by each change,
        the timer never fired for a person confirming a photo a second, and a crash lost
        the whole review."""
        if self.enabled and not self._timer.isActive():
            self._timer.start()

    def flush(self, now: bool = False) -> bool:
        """Bring the copy in step before returning: the change waiting for its moment (the
        window is closing), or with `now` whatever the table holds. False if it could not
        be written."""
        if not self.enabled:
            return False
        if self._call is not None:
            if not self._call.wait(WAIT_S):
                return False  # a write stuck on a dead share: the window must still close
            self._call = None  # its outcome, on its way, is older than this write's
        if not (self._timer.isActive() or now):
            return True
        self._timer.stop()
        try:
            self._job()()
        except OSError as exc:
            self._on_failed(exc)
            return False
        self._set_trouble(None)
        return True

    def discard(self) -> None:
        """The person chose to lose the review: no copy, and none written later."""
        self._timer.stop()
        self._retry.stop()
        if self._call is not None:
            self._call.wait(WAIT_S)
            self._call = None  # its outcome, still on its way, is of a review now gone
        if self.enabled:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        self._set_trouble(None)  # nothing left to keep

    @Slot()
    def _save(self) -> None:
        if self._call is not None and not self._call.done:
            self._timer.start()  # after the write in progress
            return
        call = BackgroundCall(self._job())
        call.succeeded.connect(self._on_written)  # slots: dropped with this object
        call.failed.connect(self._on_call_failed)
        self._call = call.start()

    @Slot(object)
    def _on_written(self, _result: object) -> None:
        if self._is_current_call():
            self._set_trouble(None)

    @Slot(object)
    def _on_call_failed(self, exc: BaseException) -> None:
        if self._is_current_call():
            self._on_failed(exc)

    def _is_current_call(self) -> bool:
        """Whether the outcome arriving is the write in progress's: an older one's (a write
        made at once since, a review discarded) says nothing of the copy now."""
        return self._call is not None and self.sender() is self._call

    def _on_failed(self, exc: BaseException) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self._set_trouble(reason or type(exc).__name__)
        self._retry.start()  # a change meanwhile writes it sooner

    def _set_trouble(self, reason: str | None) -> None:
        if reason != self.trouble:
            self.trouble = reason
            self.trouble_changed.emit()

    def _job(self) -> Callable[[], object]:
        """What brings the copy in step with the table as it is now (a snapshot)."""
        if not self._results.unsaved_review():
            return partial(self.path.unlink, missing_ok=True)
        return partial(
            write_results_csv,
            self.path,
            self._results.predictions(),
            self._results.class_names,
            self._results.threshold,
            self._results.confirmed_classes(),
        )


def _aside_name(path: Path) -> Path:
    """A free name for an earlier session's copy, after the time it was last written."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(_modified(path)))
    for number in range(1, 1000):
        suffix = stamp if number == 1 else f"{stamp}-{number}"
        aside = path.with_name(f"unsaved-review.{suffix}.csv")
        if not aside.exists():
            return aside
    raise OSError(f"no free name beside {path}")


def saved_at(path: Path) -> str:
    """When `path` was last written, as the offer says it ("2026-12-06 17:25")."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(_modified(path)))


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0

"""A person's review kept on disk until it is in a CSV, so a crash or a power cut loses
none of it: the next start offers it back.

A moment after the confirmed classes last changed, while they differ from the last CSV
written or opened (`ResultsModel.unsaved_review`), the whole table is written as a results
CSV (atomically, on a pool thread) to RECOVERY_FILE in the app's data folder; once nothing
differs (exported, or cleared by choice) the file goes. Quit and Clear ask first, so a
clean end leaves no file; a crash, a power cut or Ctrl+C in the terminal leaves it. The
next start moves it aside (PREVIOUS_FILE) before writing its own, and offers it back.

One window at a time keeps the copy (a lock file, freed when its process is gone): a second
window of the app would otherwise take the first one's live review for a crashed one's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, QTimer, Slot

from desktop.core.csv_export import write_results_csv
from desktop.gui.background import BackgroundCall
from desktop.gui.results_model import ResultsModel

RECOVERY_FILE = "unsaved-review.csv"
PREVIOUS_FILE = "unsaved-review.previous.csv"  # an earlier session's, until dealt with
LOCK_FILE = "unsaved-review.lock"
SAVE_DELAY_MS = 1500  # a burst of key presses is written once


class ReviewRecovery(QObject):
    """Keeps `folder`/RECOVERY_FILE in step with the table's unsaved review."""

    def __init__(self, results: ResultsModel, folder: Path, parent: QObject | None = None):
        super().__init__(parent)
        self._results = results
        self.path = folder / RECOVERY_FILE
        self.previous = folder / PREVIOUS_FILE
        self._lock = QLockFile(str(folder / LOCK_FILE))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.enabled = self._lock.tryLock(0)
            if self.enabled and self.path.is_file():  # an earlier session's, left behind
                os.replace(self.path, self.previous)
        except OSError:
            self.enabled = False  # a read-only profile: the review is kept as before, in memory
        self._call: BackgroundCall | None = None  # the write running, one at a time
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self._save)
        if self.enabled:
            results.confirmations_changed.connect(self.schedule)
            results.modelReset.connect(self.schedule)  # cleared, or another model's classes
            results.relocated.connect(self.schedule)

    def leftover(self) -> Path | None:
        """The review an earlier session left in no CSV, until reopened or discarded."""
        return self.previous if self.enabled and self.previous.is_file() else None

    def forget_leftover(self) -> None:
        """The earlier session's review was discarded, or is in the table (and so from now
        on in this session's file, written at once before the earlier one goes)."""
        self.flush(now=True)
        with contextlib.suppress(OSError):
            self.previous.unlink(missing_ok=True)

    def release(self) -> None:
        """The window is closing: its file is in step; another window may keep one now."""
        self.flush()
        if self.enabled:
            self._lock.unlock()
            self.enabled = False

    @Slot()
    def schedule(self) -> None:
        """Bring the file in step a moment from now (after a change, or an export)."""
        if self.enabled:
            self._timer.start()

    def flush(self, now: bool = False) -> None:
        """Bring the file in step before returning: the change waiting for its moment
        (the window is closing), or with `now` whatever the table holds."""
        if not self.enabled:
            return
        if self._call is not None:
            self._call.wait()
        if self._timer.isActive() or now:
            self._timer.stop()
            with contextlib.suppress(OSError):
                self._job()()

    def discard(self) -> None:
        """The person chose to lose the review: no file, and none written later."""
        self._timer.stop()
        if self._call is not None:
            self._call.wait()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    @Slot()
    def _save(self) -> None:
        if self._call is not None and not self._call.done:
            self._timer.start()  # after the write in progress
            return
        self._call = BackgroundCall(self._job()).start()  # a failure is retried next change

    def _job(self) -> Callable[[], object]:
        """What brings the file in step with the table as it is now (a snapshot)."""
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

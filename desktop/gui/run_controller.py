"""Starts classification runs one at a time, queues further requests, cancels at once.

The queue here is the only one: requests made while a run is going, or while no model is
ready (none loaded yet, or another one loading: `set_engine(None)`), wait in it.

Cancel returns control to the window immediately: the run is reported finished (cancelled)
with the rows delivered so far, and any batch its thread still completes is dropped. The
thread itself stops at the engine's next stop check (within a batch or a 50 ms poll) and is
cleaned up when it has.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QDeadlineTimer, QObject, QThread, QTimer, Signal, Slot

from desktop.core.results import FileState
from desktop.gui.worker import DEFAULT_BATCH_SIZE, ClassifyWorker, RunSummary

if TYPE_CHECKING:
    from desktop.core.engine import Engine


# How long closing the window waits for worker threads before leaving them behind.
SHUTDOWN_WAIT_MS = 2000

# Threads a shutdown left running, with their workers: referenced here until the process
# ends, because destroying a running QThread aborts the process.
_abandoned: list[tuple[QThread, ClassifyWorker]] = []


def abandoned_threads() -> int:
    """How many threads left behind by `RunController.shutdown` are still running."""
    return sum(1 for thread, _ in _abandoned if not _ended(thread))


class RunController(QObject):
    """Owns the worker threads; the window only sees the signals below, in the GUI thread."""

    started = Signal(int)  # number of queued requests still waiting after this one
    discovered = Signal(int, int, int, int)  # images, skipped files, problem rows, already
    batch_ready = Signal(list)  # list[Prediction]
    progress = Signal(int, int, float)  # done, total, images/s
    finished = Signal(object)  # RunSummary
    failed = Signal(str)
    busy_changed = Signal(bool)
    queue_changed = Signal(int)  # number of requests waiting

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE, parent: QObject | None = None):
        super().__init__(parent)
        self.batch_size = batch_size
        self.flip_average = False  # average each image with its mirror (for the next run)
        self._engine: Engine | None = None
        # Each request keeps the flip-average choice made when it was dropped.
        self._queue: deque[tuple[list[str], bool]] = deque()
        self._worker: ClassifyWorker | None = None
        self._thread: QThread | None = None
        self._threads: list[tuple[QThread, ClassifyWorker]] = []  # alive, incl. cancelled
        self._started_at = 0.0
        self._total = self._done = self._errors = self._problems = self._skipped = 0
        self._rate = 0.0
        self._flip_average_now = False  # the running request's choice
        self._already = 0
        # What the table holds (path -> state when classified), asked as each run starts:
        # a queued request sees the rows of the runs before it.
        self.listed: Callable[[], Mapping[str, FileState | None]] = dict

    # -- public -------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine | None:
        return self._engine

    def set_engine(self, engine: Engine | None) -> None:
        """Use `engine` for the next run (the current one keeps its own).

        None holds queued requests until an engine is set: while a model loads, a run
        started with the previous one would deliver rows for classes the table may lose.
        """
        self._engine = engine
        self._start_next()

    @property
    def busy(self) -> bool:
        return self._worker is not None

    @property
    def queued(self) -> int:
        """Requests waiting (each a list of files and folders)."""
        return len(self._queue)

    @property
    def queued_paths(self) -> int:
        """Files and folders waiting, over all queued requests."""
        return sum(len(paths) for paths, _flip in self._queue)

    def running_threads(self) -> int:
        """Threads not yet finished, cancelled ones included (tests, shutdown)."""
        return sum(1 for thread, _ in self._threads if not _ended(thread))

    def submit(self, paths: Sequence[str]) -> None:
        """Classify `paths` (files and folders) now, or after the current run."""
        if paths:
            self._queue.append(([str(p) for p in paths], self.flip_average))
            self.queue_changed.emit(len(self._queue))
            self._start_next()

    def cancel(self, clear_queue: bool = True) -> None:
        """Stop the current run now and forget queued requests; rows already sent stay.

        With `clear_queue` False the queued requests are kept: the next one starts now if
        there is an engine.
        """
        if clear_queue and self._queue:
            self._queue.clear()
            self.queue_changed.emit(0)
        worker = self._worker
        if worker is None:
            return
        worker.request_stop()
        if self._thread is not None:
            self._thread.requestInterruption()
        self._finish(self._summary(cancelled=True))

    def shutdown(self, wait_ms: int = SHUTDOWN_WAIT_MS) -> None:
        """Cancel, then wait up to `wait_ms` in all for the worker threads (window close).

        A worker stops within a batch; one that has not by then is stuck in a system call
        (listing a folder on a network share that stopped answering) and would freeze the
        window for good. It is left to end on its own: detached from this object, so Qt
        does not destroy it while it runs, and reported on stderr.
        """
        self.cancel()
        for thread, worker in self._threads:
            worker.request_stop()
            thread.requestInterruption()
            thread.quit()
        deadline = QDeadlineTimer(wait_ms)
        for thread, _worker in self._threads:
            thread.wait(deadline)
        self._reap()
        if self._threads:
            for thread, worker in self._threads:
                thread.setParent(None)  # our deletion must not take the running thread along
                _abandoned.append((thread, worker))
            print(
                f"ewaste-app: {len(self._threads)} classification thread(s) did not stop "
                f"within {wait_ms / 1000:g} s (a folder on an unresponsive drive?); "
                "leaving them to end on their own",
                file=sys.stderr,
            )
            self._threads = []

    # -- running ------------------------------------------------------------------------------
    def _start_next(self) -> None:
        if self._worker is not None or self._engine is None or not self._queue:
            return
        paths, flip_average = self._queue.popleft()
        self.queue_changed.emit(len(self._queue))
        worker = ClassifyWorker(
            self._engine, paths, self.batch_size, flip_average, listed=self.listed()
        )
        self._flip_average_now = flip_average
        thread = QThread(self)
        thread.setObjectName("ewaste-classify")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.discovered.connect(self._on_discovered)
        worker.batch_ready.connect(self._on_batch)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_worker_finished)
        worker.failed.connect(self._on_worker_failed)
        # The thread's event loop ends when the worker is done, whether or not we listen.
        worker.finished.connect(thread.quit)
        worker.failed.connect(thread.quit)
        # The documented clean-up: the worker is deleted in its own thread as it ends.
        thread.finished.connect(worker.deleteLater)
        thread.finished.connect(self._reap)
        self._worker, self._thread = worker, thread
        self._threads.append((thread, worker))
        self._started_at = time.perf_counter()
        self._total = self._done = self._errors = self._problems = self._skipped = 0
        self._already = 0
        self._rate = 0.0
        thread.start()
        self.busy_changed.emit(True)
        self.started.emit(len(self._queue))

    def _is_current(self) -> bool:
        # Signals of a cancelled worker may still arrive (queued): they are dropped here.
        return self._worker is not None and self.sender() is self._worker

    @Slot(int, int, int, int)
    def _on_discovered(self, images: int, skipped: int, problems: int, already: int) -> None:
        if self._is_current():
            self._total, self._skipped, self._problems = images, skipped, problems
            self._already = already
            self.discovered.emit(images, skipped, problems, already)

    @Slot(list)
    def _on_batch(self, batch: list) -> None:
        if self._is_current():
            self._errors += sum(1 for p in batch if not p.ok)
            self.batch_ready.emit(batch)

    @Slot(int, int, float)
    def _on_progress(self, done: int, total: int, rate: float) -> None:
        if self._is_current():
            self._done, self._total, self._rate = done, total, rate
            self.progress.emit(done, total, rate)

    @Slot(object)
    def _on_worker_finished(self, summary: RunSummary) -> None:
        if self._is_current():
            self._finish(summary)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        if self._is_current():
            self._worker = self._thread = None
            self.failed.emit(message)
            self.busy_changed.emit(False)
            self._start_next()

    def _finish(self, summary: RunSummary) -> None:
        self._worker = self._thread = None
        self.finished.emit(summary)
        self.busy_changed.emit(False)
        self._start_next()

    def _summary(self, cancelled: bool) -> RunSummary:
        return RunSummary(
            images=self._total,
            done=self._done,
            errors=self._errors,
            problems=self._problems,
            skipped=self._skipped,
            cancelled=cancelled,
            seconds=time.perf_counter() - self._started_at,
            images_per_s=self._rate,
            flip_average=self._flip_average_now,
            already=self._already,
        )

    @Slot()
    def _reap(self) -> None:
        """Forget ended threads (their workers are already deleted)."""
        alive = []
        for thread, worker in self._threads:
            if _ended(thread):
                thread.deleteLater()
            else:
                alive.append((thread, worker))
        self._threads = alive
        if any(thread.isFinished() for thread, _ in alive):
            QTimer.singleShot(10, self, self._reap)  # still deleting its worker: look again


def _ended(thread: QThread) -> bool:
    """True once `thread` has completely ended.

    Not isFinished(): that is already true while the ending thread still deletes its
    worker (finished -> worker.deleteLater). Dropping our reference to the worker then
    makes Python delete it a second time from the GUI thread (a crash), and deleting the
    QThread then aborts ("Destroyed while thread is still running").
    """
    return thread.wait(0)

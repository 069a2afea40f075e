"""The classification worker: discovery + Engine.classify on a QThread, signals only.

The worker never touches a widget. It reports through queued signals, and it stops when
the GUI sets its stop flag (or interrupts its thread): the engine checks `should_stop`
between batches, and the worker checks it again after every batch.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, Signal, Slot

from desktop.core.discovery import FileKeys, collect_images, file_state
from desktop.core.results import RETRY, FileState
from desktop.core.wording import plural

if TYPE_CHECKING:
    from desktop.core.engine import Engine

DEFAULT_BATCH_SIZE = 32
# A copy onto a FAT or exFAT stick rounds the modification time (to 2 s at worst): that is
# still the same photo. A new photo under an old name differs in size, or by far more.
SAME_TIME_NS = 2_000_000_000


@dataclass(frozen=True)
class RunSummary:
    """What one run did; `images_per_s` counts classified images over inference time."""

    images: int  # images found by discovery (what the progress bar counts to)
    done: int  # images the engine returned a prediction for (error rows included)
    errors: int  # error rows: unreadable images and discovery problems
    problems: int  # discovery problems (missing paths, unreadable folders, link loops)
    skipped: int  # files that are not supported images
    cancelled: bool
    seconds: float
    images_per_s: float
    flip_average: bool = False  # each image averaged with its mirror
    already: int = 0  # images the table holds already, unchanged: not classified again
    runs: int = 1  # more when it sums up requests queued behind one another (`combined`)

    def describe(self) -> str:
        verb = "Cancelled after" if self.cancelled else "Classified"
        # Two decimals under a second: a few photos take 0.04 s, not "0.0 s".
        seconds = f"{self.seconds:.1f}" if self.seconds >= 1 else f"{self.seconds:.2f}"
        runs = f" ({self.runs} runs)" if self.runs > 1 else ""
        text = f"{verb} {self.done} of {plural(self.images, 'image')}{runs} in {seconds} s"
        if self.images_per_s > 0:
            text += f" ({self.images_per_s:.0f} images/s)"
        if self.flip_average:
            text += ", averaged with mirrored images"
        if self.errors:
            text += f"; {plural(self.errors, 'error')}"
        if self.skipped:
            text += f"; {plural(self.skipped, 'non-image file')} skipped"
        if self.already:
            text += f"; {plural(self.already, 'image')} already in the table"
        return text


def combined(summaries: Sequence[RunSummary]) -> RunSummary:
    """One summary of runs that followed one another (a request queued behind another)."""
    last = summaries[-1]
    done = sum(s.done for s in summaries)
    inference_seconds = sum(s.done / s.images_per_s for s in summaries if s.images_per_s > 0)
    return RunSummary(
        images=sum(s.images for s in summaries),
        done=done,
        errors=sum(s.errors for s in summaries),
        problems=sum(s.problems for s in summaries),
        skipped=sum(s.skipped for s in summaries),
        cancelled=last.cancelled,
        seconds=sum(s.seconds for s in summaries),
        images_per_s=done / inference_seconds if inference_seconds > 0 else 0.0,
        flip_average=last.flip_average,
        already=sum(s.already for s in summaries),
        runs=sum(s.runs for s in summaries),
    )


class ClassifyWorker(QObject):
    """Runs one request (files and folders) in the thread it was moved to."""

    # Images to classify, non-images skipped, problems, images already in the table.
    discovered = Signal(int, int, int, int)
    batch_ready = Signal(list)  # list[Prediction], one engine batch (or discovery problems)
    progress = Signal(int, int, float)  # done, total, images per second
    finished = Signal(object)  # RunSummary
    failed = Signal(str)  # a message for the user; rows delivered so far stay valid

    def __init__(
        self,
        engine: Engine,
        paths: Sequence[str],
        batch_size: int = DEFAULT_BATCH_SIZE,
        flip_average: bool = False,
        listed: Mapping[str, FileState | None] | None = None,
    ) -> None:
        """`listed`: the photos the table holds, with their state when classified (None:
        unknown, as for a reopened CSV's rows; RETRY for an error row); those unchanged
        are not classified again."""
        super().__init__()
        self._engine = engine
        self._paths = list(paths)
        self._listed = dict(listed or {})
        self._batch_size = batch_size
        self._flip_average = flip_average
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Ask the run to stop at the next check; safe to call from any thread."""
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set() or QThread.currentThread().isInterruptionRequested()

    @Slot()
    def run(self) -> None:
        started = time.perf_counter()
        images = done = errors = problems = skipped = already = 0
        rate = 0.0
        try:
            collection = collect_images(self._paths, should_stop=self.should_stop)
            found = self._as_listed(collection.images)
            states = {str(path): file_state(path) for path in found}
            # The same photo dropped twice is one row: only new or changed files are run.
            fresh = [p for p in found if not self._unchanged(str(p), states[str(p)])]
            images, skipped = len(fresh), collection.skipped
            already = len(found) - images
            problem_rows = list(collection.problems)
            self.discovered.emit(images, skipped, len(problem_rows), already)
            if problem_rows:
                problems = errors = len(problem_rows)
                self.batch_ready.emit(problem_rows)
            infer_started = time.perf_counter()
            model = (self._engine.model_path.name, self._engine.model_sha256)
            if images and not self.should_stop():
                for batch in self._engine.classify(
                    fresh,
                    batch_size=self._batch_size,
                    should_stop=self.should_stop,
                    flip_average=self._flip_average,
                ):
                    if self._stop.is_set():
                        break  # the GUI has moved on; do not deliver late rows
                    # Each row carries what its file was when read: a later drop of the
                    # same photo is then left out, a changed one classified again.
                    batch = [replace(p, file_state=states.get(p.path), model=model) for p in batch]
                    done += len(batch)
                    errors += sum(1 for p in batch if not p.ok)
                    elapsed = time.perf_counter() - infer_started
                    rate = done / elapsed if elapsed > 0 else 0.0
                    self.batch_ready.emit(batch)
                    self.progress.emit(done, images, rate)
                    if self.should_stop():
                        break
        except Exception as exc:  # noqa: BLE001 - reported to the user, never a crash
            self.failed.emit(f"Classification stopped: {type(exc).__name__}: {exc}")
            return
        self.finished.emit(
            RunSummary(
                images=images,
                done=done,
                errors=errors,
                problems=problems,
                skipped=skipped,
                cancelled=self.should_stop(),
                seconds=time.perf_counter() - started,
                images_per_s=rate,
                flip_average=self._flip_average,
                already=already,
            )
        )

    def _as_listed(self, images: list[Path]) -> list[Path]:
        """The images, each spelt as the table lists it when it does under another spelling
        (another case on Windows, its folder reached through a link): one row per photo."""
        unlisted = [path for path in images if str(path) not in self._listed]
        if not unlisted:
            return images
        # Only a listed row of the same file name can be the same photo: just their folders
        # are looked up (a table of 20,000 rows from a share that is offline now, say).
        names = {os.path.normcase(path.name) for path in unlisted}
        keys = FileKeys()
        spellings = {
            keys(listed): listed
            for listed in self._listed
            if os.path.normcase(os.path.basename(listed)) in names
        }
        return [
            path if str(path) in self._listed else Path(spellings.get(keys(path), path))
            for path in images
        ]

    def _unchanged(self, path: str, state: FileState | None) -> bool:
        if path not in self._listed:
            return False
        then = self._listed[path]
        if then is None:  # a reopened CSV's row: taken as it is
            return True
        if then == RETRY:  # an error row: the file may be whole now
            return False
        return state is not None and then[0] == state[0] and abs(then[1] - state[1]) <= SAME_TIME_NS

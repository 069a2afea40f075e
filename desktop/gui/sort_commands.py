"""File > Sort into folders… and Undo a sort…: the headless sorter, run off the GUI thread.

`desktop.core.sorting` and `sort_undo` do the work (class folders, `_review`, `_error`, a
manifest, never an overwrite); this object asks where and how, runs it on a pool thread,
and says what happened in the status bar, and in a message box when a photo could not be
filed, the whole job failed, the destination is refused (before the copy-or-move
question), or an undo is asked of a folder no sort went into.
Cancel stops it between two photos; however it ends, the rows follow the photos it moved.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from desktop.core.discovery import file_state
from desktop.core.results import FileState, Prediction
from desktop.core.sort_lock import check_not_busy, check_not_watched
from desktop.core.sort_records import SortError, SortReport, SortStopped
from desktop.core.sort_undo import NothingToUndo, check_something_to_undo, undo_sort
from desktop.core.sorting import check_destination, sort_into
from desktop.core.wording import plural, sentence
from desktop.gui.background import BackgroundCall
from desktop.gui.style import breakable_path

if TYPE_CHECKING:
    from desktop.gui.results_model import ResultsModel

COPY, MOVE = "copy", "move"
SORTING, PUTTING_BACK = "Sorting", "Putting back"  # what the progress bar says runs
PROGRESS_SECONDS = 0.1


@dataclass(frozen=True)
class _Words:
    """How a sort or an undo tells its outcome: `done` with "{filed}" for the count."""

    done: str
    not_done: str  # for the photos it could not handle
    stopped: str  # the title when the whole job failed


# Where a job's report says the table's rows (their paths given) go: old path -> new path.
PathsAfter = Callable[[SortReport, Sequence[str]], Mapping[str, str]]


@dataclass(frozen=True)
class _Ended:
    """How a job ended (its report, or the exception that stopped it), with the size and
    time of each place the rows go to, taken on the job's thread: a look per photo on a
    share would hold the window for seconds."""

    outcome: object
    states: Mapping[str, FileState | None]


def _report_of(outcome: object) -> SortReport | None:
    """The photos handled, however the job ended (a stop's or failure's report too)."""
    return outcome if isinstance(outcome, SortReport) else getattr(outcome, "report", None)


def _run_and_look(
    job: Callable[[], SortReport], paths_after: PathsAfter, paths: Sequence[str]
) -> _Ended:
    try:
        outcome: object = job()
    except Exception as exc:  # noqa: BLE001 - told by SortCommands._ended, as a report is
        outcome = exc
    report = _report_of(outcome)
    moved = {} if report is None else paths_after(report, paths)
    return _Ended(outcome, {new: file_state(new) for new in moved.values()})


def _moved_by_sort(report: SortReport, _paths: Sequence[str]) -> dict[str, str]:
    moved = {f.source: f.destination for f in report.filed if f.action == MOVE}
    for old_place, f in report.refiled:  # the row names the photo's old place, or (a row
        if f.action == MOVE:  # read back from a CSV) where it was before the first sort
            moved[old_place] = moved[f.source] = f.destination
    return moved


def _put_back_by_undo(report: SortReport, paths: Sequence[str]) -> dict[str, str]:
    back = {f.destination: f.source for f in report.filed}
    # A copy's row stayed at its original's name; when a new photo took that name since,
    # the copy went back under another, and the row follows it there.
    copies = {f.source for f in report.filed if f.action == COPY}
    back.update((name, now) for name, now in report.renamed if now in copies)
    # A sort folder renamed since: the undo names its photos under the new name, the rows
    # the old one. A row whose sort folder is gone follows the one photo put back from a
    # class folder and name like its own.
    by_place: dict[tuple[str, str], list[str]] = {}
    for filed in report.filed:
        place = Path(filed.destination)
        by_place.setdefault((place.parent.name, place.name), []).append(filed.source)
    for path in paths:
        row_place = Path(path)
        found = by_place.get((row_place.parent.name, row_place.name), [])
        if path not in back and len(found) == 1 and not row_place.parent.parent.exists():
            back[path] = found[0]
    return back


class SortCommands(QObject):
    """Sorts the results' photos; `busy` while a sort or undo runs, `started(text)` and
    `progress(what, done, total)` meanwhile ("Sorting" or "Putting back"; total 0: not
    known yet), `finished(text)` after. `cancel()` stops it after the photo in hand."""

    started = Signal(str)  # what runs, for the status bar
    progress = Signal(str, int, int)
    finished = Signal(str)  # what happened, for the status bar
    busy_changed = Signal(bool)

    def __init__(self, results: ResultsModel, parent: QWidget) -> None:
        super().__init__(parent)
        self._results = results  # the window is our Qt parent(): no Python reference to it
        self._call: BackgroundCall | None = None
        self._stop = threading.Event()  # the running job's, asked between two photos
        self._words = _Words("", "", "")  # the running job's
        self._paths_after: PathsAfter = _moved_by_sort

    def _dialog_parent(self) -> QWidget:
        return self.parent()  # type: ignore[return-value]

    @property
    def busy(self) -> bool:
        return self._call is not None

    def sort_into_folders(self, dest: str | None = None, how: str | None = None) -> None:
        """Ask for the destination and copy-or-move (unless given), then sort."""
        if self.busy or not self._results.rowCount():
            return
        dest = dest or QFileDialog.getExistingDirectory(self._dialog_parent(), "Sort into folder")
        if not dest:
            return
        # Files only: a row for a folder, a link the search could not follow or a missing
        # path is a note (as headless), not a photo to sort.
        predictions = [p for p in self._results.predictions() if p.ok or os.path.isfile(p.path)]
        # The photos' folders: a destination inside one of them is refused, as headless,
        # and before the user is asked anything more.
        sources = {Path(p.path).parent for p in predictions}
        try:
            check_destination(Path(dest), sources, create=False)
            check_not_busy(dest)  # before asking copy or move
        except SortError as exc:
            reason = sentence(str(exc))
            QMessageBox.warning(self._dialog_parent(), "Cannot sort there", reason)
            self.finished.emit(f"Cannot sort there: {exc}")
            return
        how = how or self._ask_copy_or_move(dest, len(predictions))
        if how is None:
            return
        job = partial(
            sort_into,
            self._counted(predictions),
            Path(dest),
            list(self._results.class_names),
            self._results.threshold,
            move=how == MOVE,
            confirmed=self._results.person_words(),  # a person's class outranks, cleared too
            sources=sources,
            should_stop=self._stop.is_set,
        )
        verb = "Moved" if how == MOVE else "Copied"
        words = _Words(f"{verb} {{filed}} into {dest}", "not filed", "Sorting stopped")
        self._start(job, words, _moved_by_sort)
        verb = "Moving" if how == MOVE else "Copying"
        self.started.emit(f"{verb} {plural(len(predictions), 'photo')} into {dest}… (Esc stops)")
        self.progress.emit(SORTING, 0, len(predictions))

    def undo_sort(self, dest: str | None = None) -> None:
        """Put back the photos of an earlier sort into `dest` (asked for unless given)."""
        if self.busy:
            return
        dest = dest or QFileDialog.getExistingDirectory(self._dialog_parent(), "Undo the sort into")
        if not dest:
            return
        try:
            check_something_to_undo(Path(dest))
            check_not_watched(Path(dest))
        except SortError as refused:
            # Under "Undo stopped" this read as an undo that failed halfway: said at once,
            # before any job, under what it is.
            title = "Nothing to undo" if isinstance(refused, NothingToUndo) else "Cannot undo now"
            text = sentence(str(refused))
            QMessageBox.warning(self._dialog_parent(), title, text)
            self.finished.emit(text)
        else:
            progress = self._progress_sayer(PUTTING_BACK)
            job = partial(undo_sort, Path(dest), should_stop=self._stop.is_set, progress=progress)
            words = _Words(f"Put back {{filed}} from {dest}", "not put back", "Undo stopped")
            self._start(job, words, _put_back_by_undo)
            self.started.emit(f"Putting back the photos sorted into {dest}… (Esc stops)")
            self.progress.emit(PUTTING_BACK, 0, 0)

    def _ask_copy_or_move(self, dest: str, photos: int) -> str | None:
        box = QMessageBox(self._dialog_parent())
        box.setWindowTitle("Sort into folders")
        box.setTextFormat(Qt.TextFormat.RichText)  # the folder wraps, never cut at the edge
        box.setText(
            f"<p>File {plural(photos, 'photo')} into class folders under "
            f"{breakable_path(dest)}?</p><p>Needs review and unknown go to _review, unreadable "
            "files to _error. Nothing is overwritten, and File &gt; Undo a sort… puts them "
            "back.</p>"
        )
        copy = box.addButton("&Copy", QMessageBox.ButtonRole.AcceptRole)
        move = box.addButton("&Move", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return {copy: COPY, move: MOVE}.get(box.clickedButton())

    def _start(self, job, words: _Words, paths_after: PathsAfter) -> None:
        self._words, self._paths_after = words, paths_after
        self._stop.clear()
        paths = [row.path for row in self._results.rows]  # those added meanwhile: looked at last
        self._call = BackgroundCall(partial(_run_and_look, job, paths_after, paths))
        self._call.succeeded.connect(self._on_done)
        self._call.failed.connect(self._on_failed)
        self.busy_changed.emit(True)
        self._call.start()

    def _counted(self, predictions: list[Prediction]) -> Iterator[Prediction]:
        """`predictions`, saying as the sort takes each one how many it has done."""
        say = self._progress_sayer(SORTING)
        for done, prediction in enumerate(predictions):
            say(done, len(predictions))
            yield prediction

    def _progress_sayer(self, what: str) -> Callable[[int, int], None]:
        """`progress` for a job to call on its pool thread, emitted at most every
        PROGRESS_SECONDS (a queued signal per photo would keep the window busy on a fast
        disk)."""
        said = 0.0

        def say(done: int, total: int) -> None:
            nonlocal said
            if time.monotonic() - said >= PROGRESS_SECONDS:
                said = time.monotonic()
                self.progress.emit(what, done, total)

        return say

    def cancel(self) -> None:
        """Stop the running sort or undo after the photo in hand (nothing if none runs)."""
        if self.busy:
            self._stop.set()

    def stop_and_wait(self, timeout_s: float) -> bool:
        """At exit: stop the job and wait up to `timeout_s` for it; the rows then follow
        the photos it moved, without a message box. True when no job is left running."""
        call = self._call
        if call is None:
            return True
        self._stop.set()
        if not call.wait(timeout_s):
            return False
        self._ended(call, call.outcome, quietly=True)
        return True

    @Slot(object)
    def _on_done(self, ended: _Ended) -> None:
        self._ended(self.sender(), ended)

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        self._ended(self.sender(), error)

    def _ended(self, call: object, ended: object, quietly: bool = False) -> None:
        """`call`'s end (or an exception from outside the job): rows relocated, then said;
        `busy` goes False last, once all of that is done."""
        if call is not self._call:  # handled already (stop_and_wait), or another job's
            return
        self._call = None
        if not isinstance(ended, _Ended):
            ended = _Ended(ended, {})
        outcome, report = ended.outcome, _report_of(ended.outcome)
        if report is not None:  # the rows follow their photos, however the job ended
            paths = [row.path for row in self._results.rows]
            self._results.relocate(self._paths_after(report, paths), ended.states)
        words = self._words
        if isinstance(outcome, SortReport):
            text = words.done.format(filed=report.filed_count())
            text += report.earlier_sort_note() + report.undo_note()
        else:
            text = f"{words.stopped}: {outcome}"
        failed = report.failed if report is not None else []
        if failed:
            text += f"; {len(failed)} {words.not_done}"
        if not quietly:
            if not isinstance(outcome, (SortReport, SortStopped)):  # a stop asked for: no box
                QMessageBox.warning(self._dialog_parent(), words.stopped, text)
            elif failed:
                details = "\n".join(f"{Path(path).name}: {why}" for path, why in failed[:20])
                QMessageBox.warning(self._dialog_parent(), f"Some photos {words.not_done}", details)
        self.finished.emit(text)
        self.busy_changed.emit(False)

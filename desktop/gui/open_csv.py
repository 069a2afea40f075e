"""File > Open results CSV…: reopen a reviewed batch from its CSV (the batch's file format).

Photos a sort moved since the CSV was written are not where it says: the worker is asked
for the folder they were sorted into, whose manifest says where each one went. The files
are read on a pool thread (a CSV of a month of shifts, photos on a share: seconds); the
questions are asked and the rows added in the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from desktop.core.csv_import import ReopenedResults, read_results_csv
from desktop.core.sort_history import current_places
from desktop.core.sort_records import SortError
from desktop.core.wording import plural, sentence
from desktop.gui.background import BackgroundCall
from desktop.gui.results_model import ResultsModel

MAX_MISSING_LISTED = 20


class CsvReopen(QObject):
    """Owns the reopening in progress; `opened` once rows were added, `message(text)` for
    the status bar, `busy_changed` when it starts or ends."""

    # Whether it was the app's copy of an unsaved review; whether every row came back.
    opened = Signal(bool, bool)
    message = Signal(str)
    busy_changed = Signal()

    def __init__(self, results: ResultsModel, parent: QWidget) -> None:
        super().__init__(parent)  # the window is our Qt parent(): no Python reference to it
        self._results = results
        self._busy = False
        self._call: BackgroundCall | None = None  # the read running; ours until it reports
        self._path = ""
        self._names: list[str] = []  # the classes the CSV is read for
        self._first: ReopenedResults | None = None  # the rows found where the CSV says
        self._recovered = False

    @property
    def busy(self) -> bool:
        return self._busy

    def open(
        self, path: str | None = None, *, recovered: bool = False, start_dir: str = ""
    ) -> None:
        """Add the rows of a results CSV (asked for unless given) to the table, corrections
        included, for the photos that still exist or that a sort moved; say which are
        missing. A CSV that is not one of this model's classes is refused in a box.
        `recovered`: the app's own copy of an unsaved review, whose classes are still in
        no CSV of the worker's. `start_dir`: where the dialog starts."""
        if self._busy:
            return
        self._recovered = recovered
        if path is None:
            chosen = QFileDialog.getOpenFileName(
                self._window(), "Open results", start_dir, "CSV files (*.csv)"
            )
            path = chosen[0]
            if not path:
                return
        self._path, self._names = path, list(self._results.class_names)
        self._set_busy(True)
        self.message.emit(f"Reading {self._name()}…")
        self._read(partial(read_results_csv, path, self._names), self._on_read)

    def _read(self, job: Callable[[], Any], then: Callable[[Any], None]) -> None:
        self._call = BackgroundCall(job)
        self._call.succeeded.connect(then)
        self._call.failed.connect(self._on_failed)
        self._call.start()

    def _on_read(self, reopened: ReopenedResults) -> None:
        self._first = reopened
        dest = self._ask_sort_folder(reopened.missing) if reopened.missing else None
        if dest is None:
            self._finish(reopened)
            return
        self.message.emit(f"Looking for the photos in {dest}…")
        job = partial(_read_with_moves, self._path, self._names, dest, reopened.missing)
        self._read(job, self._on_read_with_moves)

    def _on_read_with_moves(self, outcome: tuple[ReopenedResults | None, list[str]]) -> None:
        reopened, still = outcome
        if still:
            QMessageBox.information(
                self._window(),
                "Some photos are still missing",
                f"{_listing(self._name(), still)}\n\nLeft out.",
            )
        self._finish(reopened or self._first)

    def _on_failed(self, exc: Exception) -> None:
        if isinstance(exc, SortError):  # the folder shown: the rows found stay
            QMessageBox.warning(self._window(), "Not a sort folder", sentence(str(exc)))
            self._finish(self._first)
            return
        QMessageBox.warning(self._window(), "Cannot open these results", str(exc))
        self.message.emit(f"{self._name()} not opened")
        self._finish(None)

    def _finish(self, reopened: ReopenedResults | None) -> None:
        self._call = self._first = None
        if reopened is not None and list(self._results.class_names) != self._names:
            self.message.emit(
                f"Another model was loaded while {self._name()} was read: "
                "open it again to see its rows"
            )
        elif reopened is not None:
            in_csv = not self._recovered
            self._results.append_predictions(
                reopened.predictions, reopened.confirmed, in_csv=in_csv
            )
            adopted, kept = self._results.adopt_confirmed(reopened.confirmed, in_csv=in_csv)
            text = f"Opened {self._name()}: {plural(len(reopened.predictions), 'photo')}"
            if adopted:  # rows the table held: their classes from the CSV, said
                text += f"; its classes set on {plural(adopted, 'row')} already in the table"
            if kept:
                text += f"; {plural(kept, 'row')} kept what was set here since"
            if reopened.dropped_on_errors:
                unreadable = plural(reopened.dropped_on_errors, "unreadable photo")
                text += f"; a class set on {unreadable} left out (such a photo goes to _error)"
            self.message.emit(text)
            self.opened.emit(self._recovered, not reopened.missing)
        self._set_busy(False)

    def _name(self) -> str:
        """The CSV as the worker knows it: its name, or what the app's own copy is."""
        return "the earlier session's review" if self._recovered else Path(self._path).name

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.busy_changed.emit()

    def _ask_sort_folder(self, missing: Sequence[str]) -> str | None:
        """The folder a sort moved the missing photos into, as the worker shows it; None
        when they leave them out."""
        box = QMessageBox(self._window())
        box.setIcon(QMessageBox.Icon.Information)
        box.setWindowTitle("Some photos are not where the CSV says")
        box.setText(
            f"{_listing(self._name(), missing)}\n\n"
            "If a sort moved them, show the folder it sorted them into."
        )
        find = box.addButton("Find them in a sort folder…", QMessageBox.ButtonRole.ActionRole)
        box.addButton("Leave them out", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        if box.clickedButton() is not find:
            return None
        title = "The folder the photos were sorted into"
        return QFileDialog.getExistingDirectory(self._window(), title) or None

    def _window(self) -> QWidget:
        return self.parent()  # type: ignore[return-value]


def _read_with_moves(
    path: str, names: list[str], dest: str, missing: Sequence[str]
) -> tuple[ReopenedResults | None, list[str]]:
    """The CSV read again with the missing photos where the sort in `dest` moved them (None
    when it moved none of them), and the photos still missing. SortError when `dest` is no
    sort folder."""
    places = current_places(dest, wanted=missing)
    moved = {source: places[source] for source in missing if source in places}
    still = [source for source in missing if source not in moved]
    return (read_results_csv(path, names, moved) if moved else None), still


def _listing(name: str, missing: Sequence[str]) -> str:
    listed = "\n".join(missing[:MAX_MISSING_LISTED])
    more = len(missing) - MAX_MISSING_LISTED
    return f"Photos of {name} not found where it says ({len(missing)}):\n{listed}" + (
        f"\n… and {more} more" if more > 0 else ""
    )

"""The results table: a QAbstractTableModel over plain rows (filtered by results_filter).

Rows arrive a whole batch at a time (one beginInsertRows/endInsertRows per batch), so a few
thousand results cost a few dozen view updates, not thousands. Every cell also exposes a
typed value under SORT_ROLE: confidences sort as numbers, not as the text "9.5 %" > "10.2 %".

Sorting is done here, by Python's sort over those typed values, and the proxy
(`desktop.gui.results_filter`) only filters: its sort() forwards to this model.
QSortFilterProxyModel's own sort would call data() twice per comparison through the Python
binding: about 70,000 calls, half a second, for a header click on 3,000 rows. A key sort
over the plain rows takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
    Slot,
)

from desktop.core.csv_export import readable_text
from desktop.core.discovery import file_state
from desktop.core.results import (
    RETRY,
    STATUS_ERROR,
    STATUS_LABELS,
    STATUS_OK,
    STATUS_REVIEW,
    STATUS_UNKNOWN,
    FileState,
    status_of,
)
from desktop.core.wording import percent
from desktop.gui.review_threshold import ReviewThreshold
from desktop.gui.style import SECONDARY_TEXT_COLOR, STATUS_COLORS, path_tooltip

if TYPE_CHECKING:
    from desktop.core.engine import Prediction

SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
ROW_ROLE = int(Qt.ItemDataRole.UserRole) + 2  # the ResultRow behind a cell (preview, tests)
# Plain ints: data() runs thousands of times per repaint, enum lookups there add up.
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_ANSWERED_ROLES = frozenset({_DISPLAY, _TOOLTIP, _FOREGROUND, _ALIGNMENT, SORT_ROLE, ROW_ROLE})

# What a worker reads for each photo comes first, so a small screen (1024 pixels) still
# shows the status and the confirmed class beside the preview; the folder comes last.
COL_FILE, COL_CLASS, COL_CONFIDENCE, COL_STATUS, COL_CONFIRMED, COL_TOP3, COL_FOLDER = range(7)
FIXED_HEADERS = (
    "File",
    "Predicted class",
    "Confidence",
    "Status",
    "Confirmed class",
    "Top 3",
    "Folder",
)
# What a person did with a row. It settles the row, as the sort and the summary say: its
# Status shows this instead of the model's verdict, and it is no longer "left to review".
CONFIRMED, CORRECTED = "confirmed", "corrected"
STATE_LABELS = {**STATUS_LABELS, CONFIRMED: "confirmed", CORRECTED: "corrected"}
FIRST_PROB_COLUMN = len(FIXED_HEADERS)

# Sorting by status puts the rows that need a person's attention last in ascending order.
_STATE_ORDER = {
    state: rank
    for rank, state in enumerate(
        (STATUS_OK, CONFIRMED, CORRECTED, STATUS_REVIEW, STATUS_UNKNOWN, STATUS_ERROR)
    )
}
_STATE_COLORS = {
    **STATUS_COLORS,
    CONFIRMED: STATUS_COLORS[STATUS_OK],
    CORRECTED: STATUS_COLORS[STATUS_OK],
}
# From this many rows, a table sorted by a column re-sorts for arriving batches at most once
# a RESORT_PAUSE_MS (new rows wait at the end until then): re-sorting 20,000 rows at every
# batch of 32 froze the window for up to a second at a time during a run.
LARGE_TABLE_ROWS = 5_000
RESORT_PAUSE_MS = 1_000
_NO_VALUE = -1.0  # sort value of a missing number: error rows sort below every real score

_ALIGN_NUMBER = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_NEAREST_COLOR = SECONDARY_TEXT_COLOR  # an unknown item's class and confidence: greyed


def _is_nearest_only(row: ResultRow, column: int) -> bool:
    """A cell that shows an unknown item's nearest class or its confidence among the known
    classes: greyed, and explained in its tooltip."""
    return row.status == STATUS_UNKNOWN and column in (COL_CLASS, COL_CONFIDENCE)


class ResultRow:
    """One classified (or failed) file, with the derived values the table shows."""

    __slots__ = (
        "prediction",
        "arrival",
        "path",
        "name",
        "folder",
        "top_index",
        "confidence",
        "top3",
        "status",
        "predicted",
        "confirmed",
        "cleared",
    )

    def __init__(
        self,
        prediction: Prediction,
        class_names: Sequence[str],
        threshold: float,
        arrival: int = 0,
    ) -> None:
        self.arrival = arrival  # position in arrival order: "unsorted" restores it
        self._judge(prediction, class_names, threshold)
        self.confirmed: str | None = None  # the class a person confirmed or corrected
        self.cleared = False  # a person cleared the class it had, in this session

    def reclassify(
        self, prediction: Prediction, class_names: Sequence[str], threshold: float
    ) -> None:
        """The photo changed and was classified again: this row now shows it, and what a
        person said about the photo that was there before goes."""
        self._judge(prediction, class_names, threshold)
        self.confirmed, self.cleared = None, False

    def _judge(self, prediction: Prediction, class_names: Sequence[str], threshold: float) -> None:
        self._set_prediction(prediction)
        if prediction.ok:
            self.top_index: int | None = int(prediction.top_index)
            self.confidence = float(prediction.confidence)
            # A runner-up under 1 % says nothing and pushes the one that matters out of a
            # narrow cell ("Washing Machine 84 % · …r 15 % · …").
            top = [
                (i, p) for rank, (i, p) in enumerate(prediction.top_k(3)) if rank == 0 or p >= 0.01
            ]
            self.top3 = " · ".join(f"{class_names[i]} {percent(p, 0)}" for i, p in top)
        else:
            self.top_index = None
            self.confidence = _NO_VALUE
            self.top3 = ""
        self.status = status_of(prediction, threshold)
        self.predicted = None if self.top_index is None else class_names[self.top_index]

    def _set_prediction(self, prediction: Prediction) -> None:
        self.prediction = prediction
        # Shown as text: a file name that is not valid UTF-8 keeps its odd bytes as \xNN.
        self.path = path = readable_text(prediction.path)
        self.name = os.path.basename(path) or path
        self.folder = os.path.dirname(path)

    def move_to(self, path: str, state: FileState | None) -> None:
        """The photo now lives at `path` (a sort moved it, or an undo put it back), whose
        size and time are `state` there."""
        self._set_prediction(dataclasses.replace(self.prediction, path=path, file_state=state))

    @property
    def corrected(self) -> bool:
        """A person set another class than the predicted one."""
        return self.confirmed is not None and self.confirmed != self.predicted

    @property
    def state(self) -> str:
        """The model's status until a person confirmed or corrected the row (an error row
        stays one: a class read from an older CSV does not make its photo readable)."""
        if self.confirmed is None or self.top_index is None:
            return self.status
        return CORRECTED if self.corrected else CONFIRMED

    @property
    def error(self) -> str:
        return readable_text(self.prediction.error or "")

    def probability(self, class_index: int) -> float:
        probabilities = self.prediction.probabilities
        return _NO_VALUE if probabilities is None else float(probabilities[class_index])


class ResultsModel(QAbstractTableModel):
    """All results of the session, in arrival order; the proxy sorts and filters them.

    Statuses follow `threshold`: when it changes, every row is re-judged.
    """

    confirmations_changed = Signal()  # a person confirmed, corrected or cleared rows
    reclassified = Signal()  # rows of photos that changed show their new classification
    relocated = Signal()  # rows follow photos a sort moved or an undo put back
    # [(row, the row it goes into)], just before relocate() removes such rows: a view
    # showing one of them can show the other instead.
    rows_merging = Signal(object)

    def __init__(
        self,
        class_names: Sequence[str],
        threshold: ReviewThreshold,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._class_names = tuple(class_names)
        self._threshold = threshold
        threshold.changed.connect(self._rejudge)
        self._rows: list[ResultRow] = []
        self._paths: set[str] = set()  # each row's photo: one row per photo
        # Size and modification time of each row's photo when classified (runs record it; a
        # reopened CSV does not): the same photo dropped again is left out, a changed one is
        # classified again (see `listed_states`).
        self._file_states: dict[str, FileState | None] = {}
        self._arrivals = 0
        # The confirmed classes as the last CSV written or opened holds them (path -> class):
        # where the table differs is a person's work in no CSV (see `unsaved_review`).
        self._in_csv: dict[str, str] = {}
        self._sort_column = -1  # -1: arrival order
        self._sort_order = Qt.SortOrder.AscendingOrder
        # Set by calls, not keyword properties: under a Turkish locale PySide6 looks for
        # "setİnterval" (a dotted capital I) and the window never opened.
        self._resort_timer = QTimer(self)
        self._resort_timer.setSingleShot(True)
        self._resort_timer.setInterval(RESORT_PAUSE_MS)
        self._resort_timer.timeout.connect(self._resort)

    # -- data -------------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    @property
    def threshold(self) -> float:
        return self._threshold.value

    @property
    def rows(self) -> Sequence[ResultRow]:
        return self._rows

    def predictions(self) -> list[Prediction]:
        return [row.prediction for row in self._rows]

    def row_at(self, row: int) -> ResultRow:
        return self._rows[row]

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Switch to another model's classes; the columns change, so existing rows go, and
        so does the sort (a probability column may not exist any more): arrival order."""
        self.beginResetModel()
        self._class_names = tuple(class_names)
        self._rows.clear()
        self._paths.clear()
        self._file_states.clear()
        self._in_csv.clear()
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self.endResetModel()

    def listed_states(self) -> dict[str, FileState | None]:
        """Each photo in the table -> its size and modification time when classified (None
        when not known: a reopened CSV's rows), for the next run to leave out what is here.
        An error row's is RETRY: a file missing or unreadable then may be fine now."""
        return {
            row.prediction.path: (
                self._file_states.get(row.prediction.path) if row.prediction.ok else RETRY
            )
            for row in self._rows
        }

    def append_predictions(
        self,
        predictions: Iterable[Prediction],
        confirmed: Mapping[str, str] | None = None,
        *,
        in_csv: bool = True,
    ) -> None:
        """Append one batch with a single insert notification (`confirmed`: the classes a
        person set earlier, by path, for a reopened CSV; `in_csv`: they are in that CSV,
        not only in the app's copy of an unsaved review). One row per photo: a batch naming
        a photo twice gives its last row; a photo the table holds already is classified
        again only when it changed (a new photo under a camera's reused name), and then its
        row shows it; a reopened CSV's row never replaces the table's, nor is it replaced
        (as a run leaves it out: see `listed_states`) by a run that started before it came."""
        latest = {prediction.path: prediction for prediction in predictions}
        start = self._arrivals
        fresh: list[Prediction] = []
        replaced = unconfirmed = 0
        position: dict[str, int] | None = None  # built only when a row is replaced
        for path, prediction in latest.items():
            if path not in self._paths:
                fresh.append(prediction)
                self._file_states[path] = prediction.file_state
            elif prediction.file_state is not None:
                if position is None:
                    position = {row.prediction.path: i for i, row in enumerate(self._rows)}
                held = self._rows[position[path]].prediction
                if self._file_states.get(path) is None and held.ok:
                    continue  # a reopened CSV's row, taken as it is (see listed_states)
                unconfirmed += self._reclassify(position[path], prediction)
                replaced += 1
        if replaced:  # once a batch: the preview shows its row again
            self.reclassified.emit()
        if unconfirmed:
            self.confirmations_changed.emit()
        new_rows = [
            ResultRow(p, self._class_names, self._threshold.value, start + i)
            for i, p in enumerate(fresh)
        ]
        if new_rows:
            self._paths.update(p.path for p in fresh)
            for row in new_rows:
                row.confirmed = (confirmed or {}).get(row.prediction.path)
                # A reopened CSV's classes are in that CSV (unless it is the app's copy of an
                # unsaved review); a new row has none to lose.
                self._in_csv.pop(row.prediction.path, None)
                if row.confirmed is not None and in_csv:
                    self._in_csv[row.prediction.path] = row.confirmed
            self._arrivals += len(new_rows)
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new_rows) - 1)
            self._rows.extend(new_rows)
            self.endInsertRows()
        if self._sort_column >= 0 and (new_rows or replaced):
            # One layout change moves new and replaced rows into place: at once in a small
            # table, in a large one with those of the batches arriving until the pause ends.
            if len(self._rows) < LARGE_TABLE_ROWS:
                self._resort()
            elif not self._resort_timer.isActive():
                self._resort_timer.start()

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self._paths.clear()
        self._file_states.clear()
        self._in_csv.clear()
        self.endResetModel()

    def mark_saved(self, confirmed: Mapping[str, str]) -> None:
        """A CSV holding these confirmed classes (`confirmed_classes()` when it was asked
        for) was written."""
        self._in_csv = dict(confirmed)

    def unsaved_review(self) -> int:
        """How many photos' classes, as a person set or cleared them, are in no CSV yet."""
        return sum(
            1 for row in self._rows if row.confirmed != self._in_csv.get(row.prediction.path)
        )

    def _reclassify(self, index: int, prediction: Prediction) -> bool:
        """Show a changed photo's new prediction in its row; True if that dropped the
        class a person had set."""
        row = self._rows[index]
        had_confirmation = row.confirmed is not None
        row.reclassify(prediction, self._class_names, self._threshold.value)
        self._file_states[prediction.path] = prediction.file_state
        self.dataChanged.emit(self.index(index, 0), self.index(index, self.columnCount() - 1))
        return had_confirmation

    @Slot(float)
    def _rejudge(self, threshold: float) -> None:
        """Re-evaluate every row's status for a new threshold; no inference is re-run."""
        for row in self._rows:
            row.status = status_of(row.prediction, threshold)
        if self._rows:
            self.dataChanged.emit(
                self.index(0, COL_STATUS), self.index(len(self._rows) - 1, COL_STATUS)
            )
            if self._sort_column == COL_STATUS:
                self._resort()

    def set_confirmed(
        self, rows: Iterable[int], class_name: str | None, *, as_predicted: bool = False
    ) -> int:
        """Set the class a person confirmed for these source rows: `class_name` (None
        clears it), or with `as_predicted` each row's own prediction. Error rows are left
        alone: nobody saw the photo, and the preview's picker is off for them too. So are
        unknown items `as_predicted`: the model named none of the classes for them, and
        its nearest is no class to confirm. Returns how many rows changed."""
        if class_name is not None and class_name not in self._class_names:
            raise ValueError(f"unknown class {class_name!r}")
        touched = []
        for index in rows:
            row = self._rows[index]
            if row.top_index is None and (as_predicted or class_name is not None):
                continue
            if as_predicted and row.status == STATUS_UNKNOWN:
                continue
            confirmed = row.predicted if as_predicted else class_name
            # A class cleared is a person's word too: the next sort files the photo where
            # the model does, not where the class that was cleared had sent it.
            row.cleared = confirmed is None and (row.cleared or row.confirmed is not None)
            row.confirmed = confirmed
            touched.append(index)
        self._show_confirmations(touched)
        return len(touched)

    def _show_confirmations(self, touched: list[int]) -> None:
        """Repaint the rows whose confirmed class changed, and say that it did."""
        if touched:
            first, last = min(touched), max(touched)
            self.dataChanged.emit(self.index(first, COL_CLASS), self.index(last, COL_CONFIRMED))
            self.confirmations_changed.emit()

    def adopt_confirmed(self, confirmed: Mapping[str, str], *, in_csv: bool) -> tuple[int, int]:
        """A reopened CSV's classes (path -> class) for rows the table held before it, which
        `append_predictions` leaves as they are: set on those that have none; kept where a
        person set another, or cleared one, here since. Returns (set, kept different)."""
        position = {row.prediction.path: i for i, row in enumerate(self._rows)}
        touched, different = [], 0
        for path, class_name in confirmed.items():
            index = position.get(path)
            if index is None:
                continue
            if in_csv:  # what that CSV holds: a row kept different from it is unsaved
                self._in_csv[path] = class_name
            row = self._rows[index]
            if row.confirmed == class_name:
                continue
            if row.confirmed is not None or row.cleared:
                different += 1
                continue
            row.confirmed = class_name
            touched.append(index)
        self._show_confirmations(touched)
        return len(touched), different

    @Slot(object, object)
    def confirm_row(self, row: ResultRow, class_name: str | None) -> None:
        """Set one row's confirmed class (the preview's picker)."""
        self.set_confirmed([self._rows.index(row)], class_name)

    def relocate(
        self, moved: Mapping[str, str], states: Mapping[str, FileState | None] | None = None
    ) -> None:
        """Follow the photos a sort moved or an undo put back (old path -> new path), so the
        preview, the CSV and the next sort find them. A row led to a photo that has a row
        already (a copy's row, once an undo deleted the copy) goes into that row: one row
        per photo, keeping the class a person set on either. `states`: the new paths' size
        and time, taken off the GUI thread; a path missing there is looked at here."""
        states = states or {}
        moving = {
            index: moved[row.prediction.path]
            for index, row in enumerate(self._rows)
            if row.prediction.path in moved
        }
        if not moving:
            return
        # Every old place first: a photo may move to where another has just left.
        left = {index: self._leave(self._rows[index].prediction.path) for index in moving}
        taken = {row.prediction.path: i for i, row in enumerate(self._rows) if i not in moving}
        merged = []
        for index, new_path in moving.items():
            row, (state, in_csv) = self._rows[index], left[index]
            keeper = taken.get(new_path)
            if keeper is not None:
                kept = self._rows[keeper]
                kept.confirmed = kept.confirmed or row.confirmed
                kept.cleared = kept.confirmed is None and (kept.cleared or row.cleared)
                merged.append((index, keeper))
                continue
            taken[new_path] = index
            # As the file is there: a copy to another file system keeps its time only as
            # finely as that one can (FAT: 2 s). None stays None: a reopened CSV's row.
            if state is not None:
                state = states[new_path] if new_path in states else file_state(new_path)
            row.move_to(new_path, state)
            self._paths.add(new_path)
            self._file_states[new_path] = state
            if in_csv is not None:  # a CSV of before the sort finds it (reopen)
                self._in_csv[new_path] = in_csv
        # Every row's new place and class shown first: the proxy then filters the rows that
        # take a merged row's class as they are now, for a view to show them instead.
        last = len(self._rows) - 1
        self.dataChanged.emit(self.index(0, COL_FILE), self.index(last, self.columnCount() - 1))
        if merged:
            self.rows_merging.emit([(self._rows[i], self._rows[keeper]) for i, keeper in merged])
        for index, _ in sorted(merged, reverse=True):
            self.beginRemoveRows(QModelIndex(), index, index)
            del self._rows[index]
            self.endRemoveRows()
        self.relocated.emit()
        if merged:
            self.confirmations_changed.emit()

    def _leave(self, path: str) -> tuple[FileState | None, str | None]:
        """Forget `path` as a row's place; its file state and class in the last CSV."""
        self._paths.discard(path)
        return self._file_states.pop(path, None), self._in_csv.pop(path, None)

    def person_words(self) -> dict[str, str | None]:
        """Path -> the class a person set, or None where they cleared one (sorting)."""
        return {
            row.prediction.path: row.confirmed
            for row in self._rows
            if row.confirmed is not None or row.cleared
        }

    def confirmed_classes(self) -> dict[str, str]:
        """Path -> the class a person set, for every confirmed row (CSV, sorting)."""
        return {row.prediction.path: row.confirmed for row in self._rows if row.confirmed}

    def state_counts(self) -> dict[str, int]:
        """Rows per state: per status among those nobody settled, and the settled ones."""
        counts = dict.fromkeys(STATE_LABELS, 0)
        for row in self._rows:
            counts[row.state] += 1
        return counts

    # -- sorting ------------------------------------------------------------------------------
    @property
    def sort_column(self) -> int:
        return self._sort_column

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort rows by the SORT_ROLE value of `column` (-1: arrival order), stably."""
        self._sort_column = column if 0 <= column < self.columnCount() else -1
        self._sort_order = order
        self._resort()

    def _resort(self) -> None:
        self._resort_timer.stop()  # this one sorts whatever the pause held back
        if not self._rows:
            return
        column = self._sort_column
        if column < 0:
            keys = [row.arrival for row in self._rows]
            descending = False
        else:
            keys = [self._sort_value(row, column) for row in self._rows]
            descending = self._sort_order == Qt.SortOrder.DescendingOrder
        order = sorted(range(len(keys)), key=keys.__getitem__, reverse=descending)
        if order == list(range(len(order))):
            return
        self.layoutAboutToBeChanged.emit()
        new_position = [0] * len(order)
        for new, old in enumerate(order):
            new_position[old] = new
        self._rows = [self._rows[old] for old in order]
        # Selection and current row follow their rows (persistent indexes are few).
        before = self.persistentIndexList()
        after = [
            self.index(new_position[index.row()], index.column()) if index.isValid() else index
            for index in before
        ]
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    # -- Qt model interface -----------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else FIRST_PROB_COLUMN + len(self._class_names)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            if section < FIRST_PROB_COLUMN:
                return FIXED_HEADERS[section]
            return self._class_names[section - FIRST_PROB_COLUMN]
        if role == Qt.ItemDataRole.ToolTipRole and section >= FIRST_PROB_COLUMN:
            return f"Probability of {self._class_names[section - FIRST_PROB_COLUMN]}"
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        # The view asks ~8 roles per painted cell; most are answered by the first line.
        if role not in _ANSWERED_ROLES or not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == _DISPLAY:
            return self._display(row, column)
        if role == SORT_ROLE:
            return self._sort_value(row, column)
        if role == _TOOLTIP:
            return self._tooltip(row, column)
        if role == _FOREGROUND:
            if column == COL_STATUS:
                return _STATE_COLORS[row.state]
            return _NEAREST_COLOR if _is_nearest_only(row, column) else None
        if role == _ALIGNMENT:
            return (
                _ALIGN_NUMBER if column == COL_CONFIDENCE or column >= FIRST_PROB_COLUMN else None
            )
        return row  # ROW_ROLE

    def _display(self, row: ResultRow, column: int) -> str:
        if column == COL_FILE:
            return row.name
        if column == COL_FOLDER:
            return row.folder
        if column == COL_STATUS:
            return STATE_LABELS[row.state]
        if column == COL_CONFIRMED:
            return row.confirmed or ""
        if row.top_index is None:
            # An error row has no classes to show: its wide Top 3 cell says why instead,
            # readable where the narrow Status column would cut it to "error: H…it".
            return row.error if column == COL_TOP3 else ""
        if column == COL_CLASS:
            # An unknown item is most likely none of the classes: a worker scanning this
            # column must not read its nearest class as the verdict (and bin it there). In
            # brackets and grey (the tooltip says "nearest"): "nearest: " cut the name.
            name = self._class_names[row.top_index]
            return f"({name})" if row.status == STATUS_UNKNOWN else name
        if column == COL_CONFIDENCE:
            return percent(row.confidence)
        if column == COL_TOP3:
            return row.top3
        return percent(row.probability(column - FIRST_PROB_COLUMN))

    def _sort_value(self, row: ResultRow, column: int) -> Any:
        if column == COL_FILE:
            return row.name.casefold()
        if column == COL_FOLDER:
            return row.folder.casefold()
        if column == COL_CLASS:
            return "" if row.top_index is None else self._class_names[row.top_index].casefold()
        if column == COL_CONFIDENCE:
            return row.confidence
        if column == COL_TOP3:
            return row.top3.casefold()
        if column == COL_STATUS:
            return _STATE_ORDER[row.state]
        if column == COL_CONFIRMED:
            return (row.confirmed or "").casefold()
        return row.probability(column - FIRST_PROB_COLUMN)

    def _tooltip(self, row: ResultRow, column: int) -> str | None:
        if column == COL_STATUS:
            if row.state in (CONFIRMED, CORRECTED):
                return (
                    f"A person {row.state} it as {row.confirmed}; the model's verdict: "
                    f"{STATUS_LABELS[row.status]} at {percent(row.confidence)}"
                )
            if row.status == STATUS_ERROR:
                return path_tooltip(f"Could not classify {row.path}:", row.error)
            if row.status == STATUS_REVIEW:
                return (
                    f"Confidence {percent(row.confidence)} is below the review threshold "
                    f"{percent(self._threshold.value)}: a person should check this item."
                )
            return None
        if column == COL_CONFIRMED and row.corrected:
            return (
                f"Predicted {row.predicted or 'nothing'}; a person corrected it to {row.confirmed}"
            )
        if column in (COL_FILE, COL_FOLDER):
            return path_tooltip(row.path)
        if _is_nearest_only(row, column):
            return (
                f"An unknown item: most likely none of the {len(self._class_names)} classes. "
                f"The nearest is {self._class_names[row.top_index]}, at "
                f"{percent(row.confidence)} among the known classes."
            )
        if column == COL_TOP3 and (row.top3 or row.error):
            return row.top3 or row.error
        return None

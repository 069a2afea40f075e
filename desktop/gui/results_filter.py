"""The proxy between the results model and the table: filters by class and status.

It never sorts by itself: sort() forwards to `ResultsModel.sort` (see that module for why).
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt

from desktop.gui.results_model import SORT_ROLE, STATE_LABELS, ResultsModel

# What the status filter accepts: a status of the rows nobody settled yet, or what a
# person did with the row (see ResultRow.state).
FILTERS = tuple(STATE_LABELS)

_HAS_FILTER_CHANGE = hasattr(QSortFilterProxyModel, "Direction") and hasattr(
    QSortFilterProxyModel, "beginFilterChange"
)


class ResultsFilterProxy(QSortFilterProxyModel):
    """Sorts by SORT_ROLE and keeps the rows matching a class and a status filter."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        # Keeps filtering up to date as rows arrive or change status; never sorts itself.
        self.setDynamicSortFilter(True)
        self._class_index: int | None = None
        self._status: str | None = None

    def set_class_filter(self, class_index: int | None) -> None:
        """Keep rows predicted as `class_index` (None: every class)."""
        if class_index != self._class_index:
            self._begin_filter_change()
            self._class_index = class_index
            self._end_filter_change()

    def set_status_filter(self, status: str | None) -> None:
        """Keep rows in this state: a status ("review": still waiting for a person), or
        confirmed as predicted ("confirmed") or corrected ("corrected"); None: every row."""
        if status is not None and status not in FILTERS:
            raise ValueError(f"unknown status filter {status!r}; expected one of {FILTERS}")
        if status != self._status:
            self._begin_filter_change()
            self._status = status
            self._end_filter_change()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting is the source model's job (see the module docstring)."""
        model = self.sourceModel()
        if isinstance(model, ResultsModel):
            model.sort(column, order)
        else:
            super().sort(column, order)

    def filterAcceptsRow(
        self,
        source_row: int,
        source_parent: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        # Read the plain row instead of going through data(): this runs once per row.
        if self._class_index is None and self._status is None:
            return True
        model = self.sourceModel()
        if not isinstance(model, ResultsModel):
            return True
        row = model.row_at(source_row)
        if self._class_index is not None and row.top_index != self._class_index:
            return False
        return self._status is None or row.state == self._status

    # beginFilterChange/endFilterChange(Direction) arrived in Qt 6.10 and replace the
    # deprecated invalidate calls; older Qt (the pyproject allows 6.6) has only the latter.
    def _begin_filter_change(self) -> None:
        if _HAS_FILTER_CHANGE:
            self.beginFilterChange()

    def _end_filter_change(self) -> None:
        if _HAS_FILTER_CHANGE:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

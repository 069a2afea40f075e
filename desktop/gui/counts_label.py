"""The summary beside the filters: how many results are ok, need review, failed, and how
many a person has checked (those are no longer left to review)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QWidget

from desktop.core.results import STATUS_ERROR, STATUS_OK, STATUS_REVIEW, STATUS_UNKNOWN
from desktop.core.wording import counts_line
from desktop.gui.results_model import CONFIRMED, CORRECTED, ResultsModel

MIN_WIDTH = 100  # cut, never widening the window, when it is narrow


class CountsLabel(QLabel):
    """Follows the results model: rows added, re-judged (a new threshold), merged or
    cleared."""

    def __init__(self, results: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._results = results
        self._full_text = ""  # shown cut at the end when the window is narrow
        # A fixed preferred width: a label that resizes with its text re-lays out (and
        # repaints) the whole window on every batch. It may still shrink in a narrow window.
        self._width = self.fontMetrics().horizontalAdvance(
            "00000 results: 00000 ok · 00000 need review · 00000 unknown · 00000 errors"
            " · 00000 checked by a person"
        )
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        results.rowsInserted.connect(self._update)
        results.rowsRemoved.connect(self._update)  # a copy's row gone into its photo's
        results.dataChanged.connect(self._update)
        results.modelReset.connect(self._update)

    def sizeHint(self) -> QSize:
        return QSize(self._width, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(MIN_WIDTH, super().minimumSizeHint().height())

    @property
    def full_text(self) -> str:
        return self._full_text

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._show_fitting()

    def _show_fitting(self) -> None:
        # Cut at the end, where the least-read counts are, never at the start: a label
        # aligned right that is too narrow would otherwise lose "357 results".
        width = self.contentsRect().width()
        metrics = self.fontMetrics()
        self.setText(metrics.elidedText(self._full_text, Qt.TextElideMode.ElideRight, width))
        self.setToolTip(self._full_text if self.text() != self._full_text else "")

    @Slot()
    def _update(self, *_args: object) -> None:
        total = self._results.rowCount()
        self._full_text = "" if not total else self._counts_text(total)
        self._show_fitting()

    def _counts_text(self, total: int) -> str:
        counts = self._results.state_counts()
        return counts_line(
            total,
            counts[STATUS_OK],
            counts[STATUS_REVIEW],
            counts[STATUS_UNKNOWN],
            counts[STATUS_ERROR],
            checked=counts[CONFIRMED] + counts[CORRECTED],
        )

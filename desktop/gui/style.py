"""The app's colours, in one place: the status colours follow the core's status vocabulary."""

from __future__ import annotations

from PySide6.QtGui import QColor

from desktop.core.results import STATUS_ERROR, STATUS_OK, STATUS_REVIEW, STATUS_UNKNOWN

OK_COLOR = QColor(27, 122, 61)  # green: confident enough
REVIEW_COLOR = QColor(176, 96, 0)  # amber: under the review threshold
UNKNOWN_COLOR = QColor(120, 60, 170)  # purple: probably none of the classes
ERROR_COLOR = QColor(190, 30, 30)  # red: the file could not be classified, a model problem
ACCENT_COLOR = QColor(74, 128, 196)  # blue: probability bars, an active drop area
MUTED_COLOR = QColor(154, 154, 154)  # grey: an idle drop area

STATUS_COLORS = {
    STATUS_OK: OK_COLOR,
    STATUS_REVIEW: REVIEW_COLOR,
    STATUS_UNKNOWN: UNKNOWN_COLOR,
    STATUS_ERROR: ERROR_COLOR,
}


def css(color: QColor) -> str:
    """The colour as a style-sheet / rich-text value, e.g. "#be1e1e"."""
    return color.name()

"""The app's colours, in one place (the status colours are the batch summary's, and follow the
core's status vocabulary), and how a long path is shown in a tooltip."""

from __future__ import annotations

import html

from PySide6.QtGui import QColor

from desktop.core.results import STATUS_ERROR, STATUS_OK, STATUS_REVIEW, STATUS_UNKNOWN
from desktop.core.summary import COLOURS

OK_COLOR = QColor(*COLOURS[STATUS_OK])  # green: confident enough
REVIEW_COLOR = QColor(*COLOURS[STATUS_REVIEW])  # amber: under the review threshold
UNKNOWN_COLOR = QColor(*COLOURS[STATUS_UNKNOWN])  # purple: probably none of the classes
ERROR_COLOR = QColor(*COLOURS[STATUS_ERROR])  # red: a file not classified, a model problem
ACCENT_COLOR = QColor(74, 128, 196)  # blue: probability bars, an active drop area
MUTED_COLOR = QColor(154, 154, 154)  # grey: an idle drop area
SECONDARY_TEXT_COLOR = QColor(85, 85, 85)  # grey: a path's folder, 6.5:1 on the window
# The table's selection while the keys go elsewhere: grey, unlike the focused blue.
UNFOCUSED_SELECTION_COLOR = QColor(204, 204, 204)
UNFOCUSED_SELECTION_TEXT_COLOR = QColor(0, 0, 0)

STATUS_COLORS = {
    STATUS_OK: OK_COLOR,
    STATUS_REVIEW: REVIEW_COLOR,
    STATUS_UNKNOWN: UNKNOWN_COLOR,
    STATUS_ERROR: ERROR_COLOR,
}


def css(color: QColor) -> str:
    """The colour as a style-sheet / rich-text value, e.g. "#be1e1e"."""
    return color.name()


def breakable_path(path: str) -> str:
    """`path` as rich text that may wrap after its separators: a long path is one word to
    Qt, which runs it off a small screen (tooltips, message boxes), losing its end."""
    breakable = html.escape(path)
    for separator in ("/", "\\", "_", "-", "."):
        breakable = breakable.replace(separator, separator + "\u200b")  # a zero-width space
    return breakable


def path_tooltip(path: str, then: str = "") -> str:
    """`path` (and a line of text after it) as a tooltip that wraps (`breakable_path`)."""
    return f"<p>{breakable_path(path)}{'<br>' + html.escape(then) if then else ''}</p>"

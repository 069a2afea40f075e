"""The review threshold: held here once, edited by the filter bar, followed by everyone else.

The results model and the preview connect to `changed` and re-judge; the filter bar shows the
value and sets it. With settings, every change is remembered for the next session.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from desktop.core.results import DEFAULT_REVIEW_THRESHOLD
from desktop.gui.settings import AppSettings


class ReviewThreshold(QObject):
    """A probability in 0..1: a result under it is marked "needs review"."""

    changed = Signal(float)

    def __init__(self, settings: AppSettings | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._settings = settings
        self._value = (
            DEFAULT_REVIEW_THRESHOLD
            if settings is None
            else settings.review_threshold(DEFAULT_REVIEW_THRESHOLD)
        )

    @property
    def value(self) -> float:
        return self._value

    def set_value(self, value: float) -> None:
        """Change the threshold (stored, then `changed` emitted); the same value does nothing."""
        value = float(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"review threshold must be within 0..1, got {value}")
        if value == self._value:
            return
        self._value = value
        if self._settings is not None:
            self._settings.set_review_threshold(value)
        self.changed.emit(value)

"""Progress of the current run (done / total, images per second), or of a sort, and its
Cancel button. A sort, once it shows, keeps the panel until `end_sorting()`: a run of photos
a watched folder sends meanwhile must not take it over (its Cancel stops the sort, as Esc
does), nor leave "Done" and a greyed-out Cancel while the sort goes on."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget


class ProgressPanel(QWidget):
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setMinimumWidth(180)
        self.bar.setTextVisible(True)
        self.bar.setAccessibleName("Progress")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._sorting = False
        self._held_back: Callable[[], None] | None = None  # a run's last word during a sort
        self.set_idle("Ready")

    def set_idle(self, text: str) -> None:
        if self._sorting:
            self._held_back = partial(self.set_idle, text)
            return
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat(text)
        self.cancel_button.setEnabled(False)

    def set_scanning(self) -> None:
        if self._sorting:
            self._held_back = self.set_scanning
            return
        self.bar.setRange(0, 0)  # busy indicator while folders are walked
        self.bar.setFormat("Looking for images…")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setToolTip("Stop classifying; the results so far are kept (Esc)")

    def set_sorting(self, what: str, done: int, total: int) -> None:
        """A sort's or an undo's progress (`what`: "Sorting", "Putting back"); with `total`
        0, a busy bar until the count is known."""
        self._sorting = True
        self.bar.setUpdatesEnabled(False)  # painted with the window: see set_progress
        self.bar.setRange(0, total)  # (0, 0): a busy indicator
        self.bar.setValue(done)
        self.bar.setFormat(f"{what}: {done} / {total} photos" if total else f"{what}…")
        self.bar.setUpdatesEnabled(True)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setToolTip("Stop after the photo in hand; it stays whole (Esc)")

    def end_sorting(self) -> None:
        """The sort or undo ended: the panel is the run's again, as its last word left it."""
        self._sorting = False
        held_back, self._held_back = self._held_back, None
        if held_back is None:
            self.set_idle("Ready")
        else:
            held_back()

    def set_progress(self, done: int, total: int, images_per_s: float) -> None:
        if self._sorting:
            self._held_back = partial(self.set_progress, done, total, images_per_s)
            return
        rate = f" · {images_per_s:.1f} images/s" if images_per_s > 0 else ""
        # QProgressBar.setValue repaints synchronously, and a synchronous paint in a Python
        # app re-takes the GIL for every widget it touches, which the worker threads hold
        # most of the time: ~100 ms per batch on a busy CPU. With updates off, the new
        # value is painted with the rest of the window in the next normal (coalesced) paint.
        self.bar.setUpdatesEnabled(False)
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.bar.setFormat(self._fitting(f"{done} / {total} images", rate))
        self.bar.setUpdatesEnabled(True)  # schedules that one paint
        self.cancel_button.setEnabled(True)

    def _fitting(self, text: str, extra: str) -> str:
        """`text` with `extra` where the bar is wide enough for both, else `text` alone:
        at 2x scale the bar's 180 pixels cut "123 / 4567 images · 182.3 images/s" in two.
        The whole line is in the bar's tooltip either way."""
        self.bar.setToolTip(text + extra)
        room = self.bar.contentsRect().width() - 8
        fits = self.bar.fontMetrics().horizontalAdvance(text + extra) <= room
        return text + extra if fits else text

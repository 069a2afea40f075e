"""The window's central area: accepts dropped files and folders, shows an empty state.

Drops work anywhere over the results too (the table does not accept drops itself, so Qt
hands them to this parent). Only local files count; a drop of web links is refused at
drag-enter, so the cursor shows "no" instead of accepting and then doing nothing.
"""

from __future__ import annotations

import os
from urllib.parse import unquote_to_bytes

from PySide6.QtCore import QMimeData, Qt, QUrl, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from desktop.gui.style import ACCENT_COLOR, ERROR_COLOR, MUTED_COLOR, css

SUPPORTED_TEXT = "JPEG, PNG, BMP, WebP, TIFF and GIF · folders are searched recursively"


def local_paths(mime: QMimeData) -> list[str]:
    """The local file and folder paths carried by a drag (empty: nothing we can use)."""
    if not mime.hasUrls():
        return []
    return [path for url in mime.urls() if url.isLocalFile() and (path := local_path(url))]


def local_path(url: QUrl) -> str:
    """A file URL's path as this system names the file. On Linux a name is bytes, not always
    UTF-8 ("caf\\xe9.jpg" from a Windows zip): Qt's decoding turns those into U+FFFD, a
    file that is not there, so the URL's own bytes are decoded as Python names files."""
    if os.name == "nt" or url.host():  # drive letters and shares: Qt's rules
        return url.toLocalFile()
    encoded = url.path(QUrl.ComponentFormattingOption.FullyEncoded)
    return os.fsdecode(unquote_to_bytes(encoded))


class EmptyState(QFrame):
    """What the user sees before the first result: how to start, or why they cannot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        self.headline = QLabel("Drop images or folders here")
        self.headline.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.headline.setFont(font)
        self.details = QLabel(f"{SUPPORTED_TEXT}\nor use File › Open images… / Open folder…")
        self.details.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.problem = QLabel()
        self.problem.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setStyleSheet(f"color: {css(ERROR_COLOR)};")
        self.problem.hide()
        # An earlier session's review in no CSV (it crashed, or the power went): offered back.
        self.recovery = QLabel()
        self.recovery.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.recovery.setWordWrap(True)
        self.reopen_recovery = QPushButton("Re&open that review")
        self.discard_recovery = QPushButton("&Discard it")
        recovery_buttons = QHBoxLayout()
        recovery_buttons.addStretch(1)
        recovery_buttons.addWidget(self.reopen_recovery)
        recovery_buttons.addWidget(self.discard_recovery)
        recovery_buttons.addStretch(1)
        self._recovery_widgets = (self.recovery, self.reopen_recovery, self.discard_recovery)
        self.offer_recovery(None)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.headline)
        layout.addWidget(self.details)
        layout.addSpacing(12)
        layout.addWidget(self.problem)
        layout.addSpacing(12)
        layout.addWidget(self.recovery)
        layout.addLayout(recovery_buttons)
        layout.addStretch(1)
        self.set_highlight(False)

    def offer_recovery(self, saved_at: str | None, more: int = 0) -> None:
        """Offer back a review an earlier session left in no CSV (None: nothing to offer);
        `more`: how many older ones wait behind it."""
        if saved_at:
            older = f" ({more} older one{'s' if more > 1 else ''} after it)" if more else ""
            self.recovery.setText(
                f"The session that ended {saved_at} left what a person confirmed or "
                f"corrected in no CSV{older}."
            )
        for widget in self._recovery_widgets:
            widget.setVisible(bool(saved_at))

    def set_problem(self, text: str | None) -> None:
        """Show a blocking problem (the model did not load) under the instructions."""
        self.problem.setText(text or "")
        self.problem.setVisible(bool(text))

    def set_highlight(self, on: bool) -> None:
        color = css(ACCENT_COLOR if on else MUTED_COLOR)
        self.setStyleSheet(
            f"#emptyState {{ border: 2px dashed {color}; border-radius: 12px; margin: 24px; }}"
        )


class DropArea(QWidget):
    """Stacks the empty state over the results page and turns drops into `paths_dropped`."""

    # list[str], files and folders as dropped; object, not list: Qt would convert the list to
    # its own strings and lose a name's undecodable bytes.
    paths_dropped = Signal(object)
    results_shown = Signal(bool)  # the table took the empty state's place (False: back)

    def __init__(self, results_page: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.empty_state = EmptyState()
        self.results_page = results_page
        self._stack = QStackedLayout(self)
        self._stack.addWidget(self.empty_state)
        self._stack.addWidget(results_page)

    def show_results(self, on: bool) -> None:
        self._stack.setCurrentWidget(self.results_page if on else self.empty_state)
        self.results_shown.emit(on)

    @property
    def showing_results(self) -> bool:
        return self._stack.currentWidget() is self.results_page

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
            self.empty_state.set_highlight(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: object) -> None:
        self.empty_state.set_highlight(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self.empty_state.set_highlight(False)
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.paths_dropped.emit(paths)

"""View > Batch summary…: the shift report's picture of the current batch, and Save PNG."""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from desktop.core.summary import BatchSummary, render, save_png
from desktop.gui.save_dialog import ask_save_name


class SummaryDialog(QDialog):
    """Shows `desktop.core.summary.render` of a batch (the picture `--summary` writes)."""

    def __init__(
        self, summary: BatchSummary, parent: QWidget | None = None, folder: str = ""
    ) -> None:
        """`folder`: where Save PNG… starts (the exports' folder)."""
        super().__init__(parent)
        self.setWindowTitle("Batch summary")
        self.summary = summary
        self._folder = folder
        # Drawn at the screen's scale (2 at 200 %), so the text is sharp, not magnified.
        ratio = max(1, math.ceil((parent or self).devicePixelRatioF()))
        buffer = io.BytesIO()
        render(summary, scale=ratio).save(buffer, format="PNG")
        pixmap = QPixmap()
        pixmap.loadFromData(buffer.getvalue(), "PNG")
        pixmap.setDevicePixelRatio(ratio)
        self.picture = QLabel()
        self.picture.setPixmap(pixmap)
        self.picture.setAccessibleName("Batch summary chart")
        self.picture.setAccessibleDescription(summary.as_text())  # the bars are pixels only
        # Scrolled on a screen lower than the picture (1024x600, a 2x scale), so Save PNG…
        # and Close stay on the screen.
        scroll = QScrollArea()
        scroll.setWidget(self.picture)
        scroll.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.saved_note = QLabel()  # where the last Save PNG… went
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        save = buttons.addButton("Save PNG…", QDialogButtonBox.ButtonRole.ActionRole)
        save.clicked.connect(lambda: self.save_png())
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(self.saved_note)
        layout.addWidget(buttons)
        whole = self.sizeHint().expandedTo(pixmap.deviceIndependentSize().toSize() + QSize(48, 96))
        screen = (parent.screen() if parent else self.screen()).availableGeometry()
        self.resize(whole.boundedTo(screen.size() * 0.95))

    def save_png(self, path: str | os.PathLike[str] | None = None) -> str | None:
        """Write the picture (asking where unless given); the path written, or None (the
        user cancelled, or was told why it could not be written)."""
        if path is None:
            # A name typed without ".png" gets it: still a PNG to open later.
            name = time.strftime("ewaste-summary-%Y%m%d-%H%M.png")  # a day's: side by side
            suggestion = str(Path(self._folder) / name) if self._folder else name
            path = ask_save_name(self, "Save summary", suggestion, "PNG (*.png)", ".png")
            if path is None:
                return None
        try:
            written = str(save_png(self.summary, path))
        except OSError as exc:
            QMessageBox.warning(
                self, "Summary not saved", f"Cannot write {path}: {exc.strerror or exc}"
            )
            return None
        self.saved_note.setText(f"Saved to {written}")
        return written

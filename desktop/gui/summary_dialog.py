"""View > Batch summary…: the shift report's picture of the current batch, and Save PNG."""

from __future__ import annotations

import io
import os

from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from desktop.core.summary import BatchSummary, render, save_png


class SummaryDialog(QDialog):
    """Shows `desktop.core.summary.render` of a batch (the picture `--summary` writes)."""

    def __init__(self, summary: BatchSummary, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch summary")
        self.summary = summary
        buffer = io.BytesIO()
        render(summary).save(buffer, format="PNG")
        pixmap = QPixmap()
        pixmap.loadFromData(buffer.getvalue(), "PNG")
        self.picture = QLabel()
        self.picture.setPixmap(pixmap)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        save = buttons.addButton("Save PNG…", QDialogButtonBox.ButtonRole.ActionRole)
        save.clicked.connect(lambda: self.save_png())
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture)
        layout.addWidget(buttons)

    def save_png(self, path: str | os.PathLike[str] | None = None) -> str | None:
        """Write the picture (asking where unless given); the path written, or None."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save summary", "", "PNG (*.png)")
            if not path:
                return None
        return str(save_png(self.summary, path))

"""The save dialog of the app's exports (a CSV, the summary's PNG): a name typed without
its extension gets it, and an existing file under that name is asked about too."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


def ask_save_name(
    parent: QWidget, title: str, suggestion: str, filters: str, suffix: str
) -> str | None:
    """The save dialog's answer ending in `suffix` (added to a name typed without it), or
    None when the user cancelled.

    The dialog asks before replacing the name it was given ("shift"), not the one written
    ("shift.csv"): an existing file under the extended name is asked about here, and a No
    opens the dialog again.
    """
    while True:
        chosen, _ = QFileDialog.getSaveFileName(parent, title, suggestion, filters)
        if not chosen:
            return None
        if chosen.lower().endswith(suffix):
            return chosen
        extended = chosen + suffix
        if not os.path.lexists(extended):
            return extended
        answer = QMessageBox.question(
            parent,
            title,
            f"{Path(extended).name} already exists.\nDo you want to replace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            return extended
        suggestion = extended

"""File > Open CSV…: reopen a reviewed batch from its CSV (the batch's file format)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from desktop.core.csv_import import CsvImportError, ReopenedResults, read_results_csv
from desktop.gui.results_model import ResultsModel

MAX_MISSING_LISTED = 20


def open_results_csv(
    parent: QWidget, results: ResultsModel, path: str | None = None
) -> ReopenedResults | None:
    """Add the rows of a results CSV (asked for unless given) to the table, corrections
    included, for the photos that still exist; say which are missing. None if nothing
    was opened (cancelled, or not a results CSV of this model's classes: said in a box)."""
    if path is None:
        path, _ = QFileDialog.getOpenFileName(parent, "Open results", "", "CSV files (*.csv)")
        if not path:
            return None
    try:
        reopened = read_results_csv(path, list(results.class_names))
    except CsvImportError as exc:
        QMessageBox.warning(parent, "Cannot open these results", str(exc))
        return None
    results.append_predictions(reopened.predictions, reopened.confirmed)
    if reopened.missing:
        listed = "\n".join(reopened.missing[:MAX_MISSING_LISTED])
        more = len(reopened.missing) - MAX_MISSING_LISTED
        QMessageBox.information(
            parent,
            "Some photos are not where the CSV says",
            f"Photos of {Path(path).name} not found where it says ({len(reopened.missing)}), "
            "left out: moved by a sort since (open the CSV exported after it), renamed or "
            f"deleted.\n{listed}" + (f"\n… and {more} more" if more > 0 else ""),
        )
    return reopened

"""File > Open CSV…: reopen a reviewed batch from its CSV (the batch's file format).

Photos a sort moved since the CSV was written are not where it says: the worker is asked
for the folder they were sorted into, whose manifest says where each one went.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from desktop.core.csv_import import CsvImportError, ReopenedResults, read_results_csv
from desktop.core.sorting import SortError, current_places
from desktop.core.wording import sentence
from desktop.gui.results_model import ResultsModel

MAX_MISSING_LISTED = 20


def open_results_csv(
    parent: QWidget, results: ResultsModel, path: str | None = None
) -> ReopenedResults | None:
    """Add the rows of a results CSV (asked for unless given) to the table, corrections
    included, for the photos that still exist or that a sort moved; say which are missing.
    None if nothing was opened (cancelled, or not a results CSV of this model's classes:
    said in a box)."""
    if path is None:
        path, _ = QFileDialog.getOpenFileName(parent, "Open results", "", "CSV files (*.csv)")
        if not path:
            return None
    names = list(results.class_names)
    try:
        reopened = read_results_csv(path, names)
        if reopened.missing and (moved := _moved_by_a_sort(parent, path, reopened.missing)):
            reopened = read_results_csv(path, names, moved)
    except CsvImportError as exc:
        QMessageBox.warning(parent, "Cannot open these results", str(exc))
        return None
    results.append_predictions(reopened.predictions, reopened.confirmed)
    return reopened


def _moved_by_a_sort(parent: QWidget, path: str, missing: Sequence[str]) -> dict[str, str]:
    """Where a sort the worker points to moved the missing photos (path -> path now);
    empty when they leave them out, or that folder's sort moved none of them."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Information)
    box.setWindowTitle("Some photos are not where the CSV says")
    box.setText(
        f"{_listing(path, missing)}\n\nIf a sort moved them, show the folder it sorted them into."
    )
    find = box.addButton("Find them in a sort folder…", QMessageBox.ButtonRole.ActionRole)
    box.addButton("Leave them out", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    if box.clickedButton() is not find:
        return {}
    dest = QFileDialog.getExistingDirectory(parent, "The folder the photos were sorted into")
    if not dest:
        return {}
    try:
        places = current_places(dest)
    except SortError as exc:
        QMessageBox.warning(parent, "Not a sort folder", sentence(str(exc)))
        return {}
    moved = {source: places[source] for source in missing if source in places}
    still = [source for source in missing if source not in moved]
    if still:
        QMessageBox.information(
            parent, "Some photos are still missing", f"{_listing(path, still)}\n\nLeft out."
        )
    return moved


def _listing(path: str, missing: Sequence[str]) -> str:
    listed = "\n".join(missing[:MAX_MISSING_LISTED])
    more = len(missing) - MAX_MISSING_LISTED
    return f"Photos of {Path(path).name} not found where it says ({len(missing)}):\n{listed}" + (
        f"\n… and {more} more" if more > 0 else ""
    )

"""File > Export CSV…: write every result (arrival order) to a CSV off the GUI thread."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from desktop.core.csv_export import results_csv_name, write_results_csv
from desktop.core.wording import plural
from desktop.gui.background import BackgroundCall
from desktop.gui.results_model import ResultsModel
from desktop.gui.save_dialog import ask_save_name
from desktop.gui.settings import AppSettings


class CsvExport(QObject):
    """Owns the export in progress; `message(text)` for the status bar, `busy_changed`."""

    message = Signal(str)
    busy_changed = Signal()
    finished = Signal(bool)  # whether the CSV was written

    def __init__(self, results: ResultsModel, settings: AppSettings, parent: QWidget) -> None:
        super().__init__(parent)  # the window is our Qt parent(): no Python reference to it
        self._results, self._settings = results, settings
        self._call: BackgroundCall | None = None
        self._path = ""
        self._confirmed: dict[str, str] = {}  # the classes the export in progress writes
        self._written = 0  # its rows (more may come in while it writes)

    @property
    def exporting(self) -> bool:
        return self._call is not None and not self._call.done

    def export(self, path: str | os.PathLike[str] | None = None) -> BackgroundCall | None:
        """Write the CSV to `path` (asked for unless given); None when nothing started."""
        if not self._results.rowCount() or self.exporting:
            return None
        if path is None:
            path = self._ask_where()
            if path is None:
                return None
        target = Path(path)
        self._settings.set_last_dir("export", target.parent)
        # A snapshot: the rows are immutable, the list is ours, so the thread shares nothing.
        confirmed = self._results.confirmed_classes()
        predictions = self._results.predictions()
        job = partial(
            write_results_csv,
            target,
            predictions,
            self._results.class_names,
            self._results.threshold,
            confirmed,
        )
        self._confirmed, self._written = confirmed, len(predictions)
        call = BackgroundCall(job)
        call.succeeded.connect(self._on_done)
        call.failed.connect(self._on_failed)
        self._call, self._path = call, str(target)
        self.busy_changed.emit()
        self.message.emit(f"Writing {target.name}…")
        return call.start()

    def _ask_where(self) -> str | None:
        suggestion = Path(self._settings.last_dir("export")) / results_csv_name()
        return ask_save_name(
            self.parent(),  # type: ignore[arg-type]
            f"Export all {plural(self._results.rowCount(), 'result')}",
            str(suggestion),
            "CSV files (*.csv)",
            ".csv",
        )

    @Slot(object)
    def _on_done(self, _result: object) -> None:
        self._results.mark_saved(self._confirmed)
        self.message.emit(f"Exported {plural(self._written, 'result')} to {self._path}")
        self.busy_changed.emit()
        self.finished.emit(True)

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        # The system's reason alone: the OSError names the hidden temporary file the CSV
        # is written to first (see replaced_whole), a name the user never chose.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        text = f"Could not write {self._path}: {reason}"
        self.message.emit(text)
        self.busy_changed.emit()
        QMessageBox.warning(self.parent(), "Export failed", text)  # type: ignore[arg-type]
        self.finished.emit(False)

"""The main window: builds the widgets, wires their signals, and owns the session state.

Every job lives in its own widget or object (drop area, results view, preview, filter bar,
progress panel, run controller, settings); this class connects them and holds the few
things that are truly window-wide: the loaded engine and the user's requests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop.core.csv_export import write_results_csv
from desktop.core.model_info import ModelError
from desktop.core.preprocessing import SUPPORTED_SUFFIXES
from desktop.core.results import DEFAULT_REVIEW_THRESHOLD
from desktop.gui.background import BackgroundCall
from desktop.gui.drop_area import DropArea
from desktop.gui.filter_bar import FilterBar
from desktop.gui.preview import PreviewPanel
from desktop.gui.progress_panel import ProgressPanel
from desktop.gui.results_model import ResultRow, ResultsFilterProxy, ResultsModel
from desktop.gui.results_view import ResultsView
from desktop.gui.run_controller import RunController
from desktop.gui.settings import AppSettings
from desktop.gui.style import ERROR_COLOR, css
from desktop.gui.worker import DEFAULT_BATCH_SIZE, RunSummary

if TYPE_CHECKING:
    from desktop.core.engine import Engine

APP_TITLE = "E-Waste Sorter"
IMAGE_FILTER = "Images ({})".format(" ".join(f"*{s}" for s in sorted(SUPPORTED_SUFFIXES)))


def _load_engine(model_path: str | None, threads: int | None) -> Engine:
    # Imported here, on the pool thread: ONNX Runtime loads while the window paints.
    from desktop.core.engine import Engine

    return Engine(model_path, threads=threads)


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: AppSettings,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.threads = threads
        self.engine: Engine | None = None
        self.model_error: str | None = None
        self.last_summary: RunSummary | None = None
        self._pending: list[list[str]] = []  # requests made before a model was ready
        self._model_call: BackgroundCall | None = None
        self._export_call: BackgroundCall | None = None
        self._export_path = ""
        self.setWindowTitle(APP_TITLE)

        threshold = settings.review_threshold(DEFAULT_REVIEW_THRESHOLD)
        self.results = ResultsModel((), threshold, self)
        self.proxy = ResultsFilterProxy(self)
        self.proxy.setSourceModel(self.results)
        self.view = ResultsView(self.proxy)
        self.view.set_hidden_classes(settings.hidden_classes())
        self.preview = PreviewPanel()
        self.preview.set_threshold(threshold)
        self.preview.set_show_cam(settings.show_cam())  # shown once a model with CAM loads
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.preview)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([900, 380])
        # The filters sit above the table they filter, so the toolbar stays narrow enough
        # for Cancel to be visible on a 1024-pixel screen.
        self.filter_bar = FilterBar(threshold)
        results_page = QWidget()
        page_layout = QVBoxLayout(results_page)
        page_layout.setContentsMargins(0, 4, 0, 0)
        page_layout.addWidget(self.filter_bar)
        page_layout.addWidget(self.splitter, stretch=1)
        self.drop_area = DropArea(results_page)
        self.setCentralWidget(self.drop_area)

        self.progress_panel = ProgressPanel()
        self.controller = RunController(batch_size, self)

        self._build_actions()
        self.flip_average_action.setChecked(settings.flip_average())
        self.controller.flip_average = settings.flip_average()
        self._build_menus_and_toolbar()
        self._build_status_bar()
        self._connect()
        self._restore_layout()
        self._update_actions()

    # -- construction -------------------------------------------------------------------------
    def _build_actions(self) -> None:
        def action(
            text: str, slot: Callable[[], object], shortcut: object = None, tip: str = ""
        ) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(shortcut)
            if tip:
                act.setStatusTip(tip)
                act.setToolTip(tip)
            # Drop `checked`: the slots take optional arguments (a path) of their own.
            act.triggered.connect(lambda _checked=False: slot())
            return act

        self.open_images_action = action(
            "Open &images…",
            self.open_images,
            QKeySequence.StandardKey.Open,
            "Classify one or more image files",
        )
        self.open_folder_action = action(
            "Open &folder…",
            self.open_folder,
            QKeySequence("Ctrl+Shift+O"),
            "Classify every image in a folder and its subfolders",
        )
        self.open_model_action = action(
            "Open &model…",
            self.open_model,
            QKeySequence("Ctrl+M"),
            "Load another classifier (.onnx exported by ewaste-convert)",
        )
        self.export_action = action(
            "&Export CSV…",
            self.export_csv,
            QKeySequence("Ctrl+E"),
            "Save all results as a CSV file",
        )
        self.clear_action = action(
            "&Clear results", self.clear_results, None, "Remove all results from the table"
        )
        self.cancel_action = action(
            "Ca&ncel",
            self.cancel,
            QKeySequence(Qt.Key.Key_Escape),
            "Stop classifying; results so far are kept",
        )
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.about_action = action("&About the model", self.show_about)
        # Checkable, so built here rather than by action(): it carries its state.
        self.flip_average_action = QAction("&Average with mirrored image", self, checkable=True)
        tip = (
            "Also classify each image mirrored left-right and average the two: can be a "
            "little more accurate, at half the speed (applies to images added from now on)"
        )
        self.flip_average_action.setStatusTip(tip)
        self.flip_average_action.setToolTip(tip)

    def _build_menus_and_toolbar(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.open_images_action, self.open_folder_action])
        file_menu.addSeparator()
        file_menu.addAction(self.open_model_action)
        file_menu.addSeparator()
        file_menu.addActions([self.export_action, self.clear_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        view_menu = menu.addMenu("&View")
        self.columns_menu = view_menu.addMenu("Probability &columns")
        self.columns_menu.aboutToShow.connect(
            partial(self.view.populate_columns_menu, self.columns_menu)
        )
        self.preview_action = QAction("&Preview pane", self, checkable=True, checked=True)
        self.preview_action.toggled.connect(self.preview.setVisible)
        view_menu.addAction(self.preview_action)

        run_menu = menu.addMenu("&Run")
        run_menu.addAction(self.cancel_action)
        run_menu.addSeparator()
        run_menu.addAction(self.flip_average_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.about_action)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolbar")  # saveState() needs a name
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.addActions([self.open_images_action, self.open_folder_action])
        toolbar.addSeparator()
        toolbar.addActions([self.export_action, self.clear_action])
        spacer = QWidget()  # pushes the progress panel to the right edge
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addWidget(self.progress_panel)
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.counts_label = QLabel()
        # A fixed width: a label that resizes with its text re-lays out (and repaints) the
        # whole window on every batch.
        self.counts_label.setMinimumWidth(
            self.counts_label.fontMetrics().horizontalAdvance(
                "00000 results: 00000 ok · 00000 need review · 00000 errors"
            )
        )
        self.counts_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.model_label = QLabel("Loading model…")
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar.addPermanentWidget(self.counts_label)
        bar.addPermanentWidget(self.model_label)
        bar.showMessage("Drop images or folders on the window to classify them")

    def _connect(self) -> None:
        self.drop_area.paths_dropped.connect(self.add_paths)
        self.filter_bar.class_filter_changed.connect(self.proxy.set_class_filter)
        self.filter_bar.status_filter_changed.connect(self.proxy.set_status_filter)
        self.filter_bar.threshold_changed.connect(self.set_threshold)
        self.view.current_row_changed.connect(self._on_current_row)
        self.view.hidden_classes_changed.connect(self._on_hidden_classes)
        self.preview.show_cam_changed.connect(self._on_show_cam)
        self.flip_average_action.toggled.connect(self._on_flip_average)
        self.progress_panel.cancel_requested.connect(self.cancel)
        c = self.controller
        c.started.connect(self._on_run_started)
        c.discovered.connect(self._on_discovered)
        c.batch_ready.connect(self._on_batch)
        c.progress.connect(self.progress_panel.set_progress)
        c.finished.connect(self._on_run_finished)
        c.failed.connect(self._on_run_failed)
        c.busy_changed.connect(self._update_actions)

    def _restore_layout(self) -> None:
        geometry = self.settings.blob("geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1360, 820)
        state = self.settings.blob("state")
        if state is not None:
            self.restoreState(state)
        splitter = self.settings.blob("splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def _save_layout(self) -> None:
        self.settings.set_blob("geometry", self.saveGeometry())
        self.settings.set_blob("state", self.saveState())
        self.settings.set_blob("splitter", self.splitter.saveState())
        self.settings.set_review_threshold(self.results.threshold)
        self.settings.set_hidden_classes(self.view.hidden_classes)
        self.settings.sync()

    # -- model ----------------------------------------------------------------------------------
    @property
    def model_loading(self) -> bool:
        return self._model_call is not None and not self._model_call.done

    def load_model(self, model_path: str | os.PathLike[str] | None = None) -> None:
        """Load a model in the background (None: the shipped one); requests wait for it."""
        path = None if model_path is None else str(model_path)
        self.model_label.setText("Loading model…")
        self.model_label.setStyleSheet("")
        call = BackgroundCall(partial(_load_engine, path, self.threads))
        call.succeeded.connect(self._on_model_loaded)
        call.failed.connect(self._on_model_failed)
        self._model_call = call
        self._update_actions()
        call.start()

    @Slot(object)
    def _on_model_loaded(self, engine: Engine) -> None:
        if self.sender() is not self._model_call:
            return  # an older request finished after a newer one
        names = tuple(engine.info.class_names)
        self.engine = engine
        self.controller.set_engine(engine)  # before any stop below starts a queued request
        if names != self.results.class_names:
            # Other classes, other columns: rows of the previous model cannot stay, nor can
            # a run still making them (its later batches are dropped; queued requests run
            # with the new model).
            self.controller.cancel(clear_queue=False)
            self.results.set_class_names(names)
            self.drop_area.show_results(False)
            self._update_counts()
            self.preview.set_class_names(names)
            self.filter_bar.set_class_names(names)  # the view re-applies hidden columns itself
        self.model_error = None
        self.preview.set_cam_available(engine.has_cam)
        self.drop_area.empty_state.set_problem(None)
        self._show_model_label()
        self.statusBar().showMessage(f"Model {engine.model_path.name} loaded", 5000)
        self._model_call = None
        self._submit_pending()
        self._update_actions()

    @Slot(object)
    def _on_model_failed(self, error: BaseException) -> None:
        if self.sender() is not self._model_call:
            return
        self._model_call = None
        message = str(error) if str(error) else type(error).__name__
        if not isinstance(error, ModelError):  # ModelError messages are written for users
            message = f"{type(error).__name__}: {message}"
        self.model_error = message
        if self.engine is None:
            self.model_label.setText("No model")
            self.model_label.setStyleSheet(f"color: {css(ERROR_COLOR)};")
            waiting = sum(len(paths) for paths in self._pending)
            later = (
                f" · {waiting} item{'s' if waiting != 1 else ''} wait for a model"
                if waiting
                else ""
            )
            self.statusBar().showMessage(f"Cannot load the model: {message}{later}")
            self.drop_area.empty_state.set_problem(
                f"Cannot load the model: {message}\n\nChoose File › Open model… to pick a "
                "model file (.onnx exported by ewaste-convert)."
            )
        else:
            self._show_model_label()
            self.statusBar().showMessage(
                f"Cannot load that model (still using {self.engine.model_path.name}): {message}"
            )
            self._submit_pending()  # requests made while it loaded: the current model runs them
        self._update_actions()

    def _submit_pending(self) -> None:
        for paths in self._pending:
            self.controller.submit(paths)
        self._pending.clear()

    def _show_model_label(self) -> None:
        engine = self.engine
        if engine is None:
            return
        self.model_label.setStyleSheet("")
        backbone = f" · {engine.info.backbone}" if engine.info.backbone else ""
        self.model_label.setText(
            f"Model: {engine.model_path.name} · {engine.info.num_classes} classes{backbone} · "
            f"{engine.provider}"
        )
        summary = engine.info.metadata.get("summary")
        self.model_label.setToolTip(
            f"{engine.model_path}\n{summary}" if summary else str(engine.model_path)
        )

    def open_model(self, path: str | None = None) -> None:
        """File > Open model: pick an .onnx file (or load `path` directly)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open model", self.settings.last_dir("model"), "ONNX models (*.onnx)"
            )
            if not path:
                return
            if self.results.rowCount() and (
                QMessageBox.question(
                    self,
                    "Open model",
                    "Results from the current model stay in the table if the new model has "
                    "the same classes, and are cleared otherwise. Continue?",
                )
                != QMessageBox.StandardButton.Yes
            ):
                return
        self.settings.set_last_dir("model", Path(path).parent)
        self.load_model(path)

    def show_about(self) -> None:
        if self.engine is None:
            text = f"No model loaded.\n\n{self.model_error or ''}"
        else:
            info = self.engine.info
            meta = info.metadata
            lines = [
                f"Model file: {self.engine.model_path}",
                *([str(meta["summary"])] if meta.get("summary") else []),
                f"Classes ({info.num_classes}): {', '.join(info.class_names)}",
                f"Input: {info.input_size[1]}x{info.input_size[0]} RGB, resized by {info.resize}",
                f"Runtime: ONNX Runtime, {self.engine.provider}",
            ]
            for key in ("weights", "metrics", "training", "export"):
                if key in meta:
                    lines.append(f"{key.capitalize()}: {meta[key]}")
            text = "\n".join(lines)
        QMessageBox.information(self, f"About {APP_TITLE}", text)

    # -- requests -------------------------------------------------------------------------------
    @Slot(list)
    def add_paths(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Classify files and folders (drop, Open, command line); queued while busy.

        While a model loads, requests wait for it: a run started with the previous model
        would deliver rows for classes the table no longer has.
        """
        request = [os.path.abspath(str(p)) for p in paths if str(p)]
        if not request:
            return
        first = Path(request[0])
        self.settings.set_last_dir("images", first if first.is_dir() else first.parent)
        if self.engine is None or self.model_loading:
            self._pending.append(request)
            self._update_actions()  # Cancel also drops waiting requests
            if self.model_error and not self.model_loading:
                self.statusBar().showMessage(
                    f"No model loaded ({self.model_error}); the {len(request)} item(s) will be "
                    "classified once a model is opened (File › Open model…)"
                )
            else:
                self.statusBar().showMessage("Waiting for the model to load…")
            return
        if self.controller.busy:
            self.statusBar().showMessage(
                f"Queued {len(request)} item(s); they start when the current run ends", 5000
            )
        self.controller.submit(request)

    def open_images(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open images", self.settings.last_dir("images"), IMAGE_FILTER
        )
        if files:
            self.add_paths(files)

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open folder", self.settings.last_dir("folder")
        )
        if folder:
            self.settings.set_last_dir("folder", folder)
            self.add_paths([folder])

    @Slot()
    def cancel(self) -> None:
        if self._pending:
            self._pending.clear()
        if self.controller.busy:
            self.controller.cancel()

    def clear_results(self) -> None:
        self.controller.cancel()
        self._pending.clear()
        self.results.clear()
        self.preview.show_result(None)
        self.drop_area.show_results(False)
        self.progress_panel.set_idle("Ready")
        self._update_counts()
        self._update_actions()

    # -- run signals ------------------------------------------------------------------------------
    @Slot(int)
    def _on_run_started(self, queued: int) -> None:
        self.progress_panel.set_scanning()
        more = f" ({queued} more queued)" if queued else ""
        self.statusBar().showMessage(f"Looking for images…{more}")

    @Slot(int, int, int)
    def _on_discovered(self, images: int, skipped: int, problems: int) -> None:
        self.progress_panel.set_progress(0, images, 0.0)
        text = f"Classifying {images} image{'s' if images != 1 else ''}"
        if skipped:
            text += f"; {skipped} non-image file{'s' if skipped != 1 else ''} skipped"
        if problems:
            text += f"; {problems} path{'s' if problems != 1 else ''} could not be read"
        self.statusBar().showMessage(text + "…")

    @Slot(list)
    def _on_batch(self, batch: list) -> None:
        self.results.append_predictions(batch)
        if not self.drop_area.showing_results:
            self.drop_area.show_results(True)
        if not self.view.currentIndex().isValid() and self.proxy.rowCount():
            self.view.select_proxy_row(0)  # something in the preview from the first batch
        self._update_counts()
        self._update_actions()

    @Slot(object)
    def _on_run_finished(self, summary: RunSummary) -> None:
        self.last_summary = summary
        text = summary.describe()
        self.progress_panel.set_idle(
            f"Cancelled: {summary.done} / {summary.images}"
            if summary.cancelled
            else f"Done: {summary.done} images"
        )
        if summary.images == 0 and not summary.problems:
            text = "No supported images found" + (
                f" ({summary.skipped} other file{'s' if summary.skipped != 1 else ''} skipped)"
                if summary.skipped
                else ""
            )
        self.statusBar().showMessage(text)
        self._update_actions()

    @Slot(str)
    def _on_run_failed(self, message: str) -> None:
        self.progress_panel.set_idle("Stopped by an error")
        self.statusBar().showMessage(message)
        self._update_actions()

    # -- results -------------------------------------------------------------------------------
    @Slot(float)
    def set_threshold(self, threshold: float) -> None:
        """Re-judge existing rows with a new review threshold (no inference is re-run)."""
        if abs(self.filter_bar.threshold - threshold) > 1e-9:
            self.filter_bar.set_threshold(threshold)  # comes back here through the signal
            return
        self.results.set_threshold(threshold)
        self.preview.set_threshold(threshold)
        self.settings.set_review_threshold(threshold)
        self._update_counts()

    @Slot(object)
    def _on_current_row(self, row: ResultRow | None) -> None:
        self.preview.show_result(row)

    @Slot(object)
    def _on_hidden_classes(self, names: set[str]) -> None:
        self.settings.set_hidden_classes(names)

    @Slot(bool)
    def _on_show_cam(self, show: bool) -> None:
        self.settings.set_show_cam(show)

    @Slot(bool)
    def _on_flip_average(self, on: bool) -> None:
        self.controller.flip_average = on
        self.settings.set_flip_average(on)

    def _update_counts(self) -> None:
        if not self.results.rowCount():
            self.counts_label.setText("")
            return
        counts = self.results.status_counts()
        errors = counts["error"]
        self.counts_label.setText(
            f"{self.results.rowCount()} results: {counts['ok']} ok · "
            f"{counts['review']} need review · {errors} error{'s' if errors != 1 else ''}"
        )

    # -- export --------------------------------------------------------------------------------
    @property
    def exporting(self) -> bool:
        return self._export_call is not None and not self._export_call.done

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> BackgroundCall | None:
        """Write all results (arrival order) to CSV off the GUI thread; ask where if no path."""
        if not self.results.rowCount() or self.exporting:
            return None
        if path is None:
            suggestion = Path(self.settings.last_dir("export")) / time.strftime(
                "ewaste-results-%Y%m%d-%H%M.csv"
            )
            chosen, _ = QFileDialog.getSaveFileName(
                self,
                f"Export all {self.results.rowCount()} results",
                str(suggestion),
                "CSV files (*.csv)",
            )
            if not chosen:
                return None
            path = chosen if chosen.lower().endswith(".csv") else chosen + ".csv"
        target = Path(path)
        self.settings.set_last_dir("export", target.parent)
        # A snapshot: the rows are immutable, the list is ours, so the thread shares nothing.
        job = partial(
            write_results_csv,
            target,
            self.results.predictions(),
            self.results.class_names,
            self.results.threshold,
        )
        call = BackgroundCall(job)
        call.succeeded.connect(self._on_export_done)
        call.failed.connect(self._on_export_failed)
        self._export_call, self._export_path = call, str(target)
        self._update_actions()
        self.statusBar().showMessage(f"Writing {target.name}…")
        return call.start()

    @Slot(object)
    def _on_export_done(self, _result: object) -> None:
        self.statusBar().showMessage(
            f"Exported {self.results.rowCount()} results to {self._export_path}"
        )
        self._update_actions()

    @Slot(object)
    def _on_export_failed(self, error: BaseException) -> None:
        message = f"Could not write {self._export_path}: {error}"
        self.statusBar().showMessage(message)
        self._update_actions()
        QMessageBox.warning(self, "Export failed", message)

    # -- state -----------------------------------------------------------------------------------
    def _update_actions(self, *_args: object) -> None:
        busy = self.controller.busy
        has_rows = self.results.rowCount() > 0
        self.export_action.setEnabled(has_rows and not self.exporting)
        self.clear_action.setEnabled(has_rows or busy)
        self.cancel_action.setEnabled(busy or bool(self._pending))
        self.open_model_action.setEnabled(not busy and not self.model_loading)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._save_layout()
        self.controller.shutdown()  # no worker thread may outlive the window
        super().closeEvent(event)

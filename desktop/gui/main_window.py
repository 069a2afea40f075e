"""The main window: builds the widgets and the objects that own the session's state, and
connects them.

Each piece of state has one owner that emits a signal when it changes, and the widgets
follow it: the review threshold (ReviewThreshold), the model in use (ModelLoader), the
requests and runs (RunController), the results (ResultsModel). What is left here are the
user's commands (open, export, clear) and what a newly loaded model means for the window.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QCloseEvent, QResizeEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop import package_version
from desktop.core.preprocessing import PHOTO_SUFFIXES
from desktop.core.results import FileState
from desktop.core.summary import summarise
from desktop.core.wording import plural
from desktop.gui.background import BackgroundCall
from desktop.gui.counts_label import CountsLabel
from desktop.gui.csv_export_command import CsvExport
from desktop.gui.drop_area import DropArea
from desktop.gui.filter_bar import FilterBar
from desktop.gui.folder_watch import FolderWatch
from desktop.gui.model_loader import ModelLoader
from desktop.gui.model_status import ModelLabel, about_text, model_record
from desktop.gui.open_csv import CsvReopen
from desktop.gui.preview import PreviewPanel, ScrolledPane
from desktop.gui.progress_panel import ProgressPanel
from desktop.gui.recovery_offer import RecoveryOffer
from desktop.gui.results_filter import ResultsFilterProxy
from desktop.gui.results_model import ResultRow, ResultsModel
from desktop.gui.results_view import ResultsView, key_legend
from desktop.gui.review_recovery import ReviewRecovery
from desktop.gui.review_threshold import ReviewThreshold
from desktop.gui.run_controller import RunController
from desktop.gui.run_reporter import RunReporter
from desktop.gui.settings import AppSettings
from desktop.gui.sort_commands import SortCommands
from desktop.gui.summary_dialog import SummaryDialog
from desktop.gui.window_actions import WindowActions, build_menus_and_toolbar
from desktop.gui.worker import DEFAULT_BATCH_SIZE, RunSummary

if TYPE_CHECKING:
    from desktop.core.engine import Engine

APP_TITLE = "E-Waste Sorter"
FIRST_SIZE = (1360, 820)  # the window at its first start, on a screen that fits it
WATCHING_LABEL_WIDTH = 260  # the folder's name is shortened to it; the tooltip has the path
MODEL_LABEL_SHARE = 0.3  # of the window's width at most, the rest for the messages
# A close by the program waits this long for a sort to stop: one photo's copy and fsync,
# even to a slow USB stick.
SORT_STOP_WAIT_S = 10.0
# HEIC and RAW are offered too, so a phone's photos can be picked and their rows say what to do.
IMAGE_FILTER = "Photos ({})".format(" ".join(f"*{s}" for s in sorted(PHOTO_SUFFIXES)))


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
        self.last_summary: RunSummary | None = None
        # A Clear or Quit put off until the export asked for is written, and the rows then.
        self._after_export: tuple[Callable[[], None], int] | None = None
        self._quit_after_sort = False  # Quit chosen while a sort ran: once it has stopped
        self.setWindowTitle(APP_TITLE)

        # The owners of the session's state; the widgets below follow their signals.
        self.review_threshold = ReviewThreshold(settings, self)
        self.model_loader = ModelLoader(threads, self)
        self.controller = RunController(batch_size, self)
        self.controller.flip_average = settings.flip_average()
        self.results = ResultsModel((), self.review_threshold, self)
        self.sorting = SortCommands(self.results, self)
        self.folder_watch = FolderWatch(self)
        self.csv_export = CsvExport(self.results, settings, self)
        self.reopen = CsvReopen(self.results, self)
        self.recovery = ReviewRecovery(self.results, settings.data_folder(), self)

        self._build_results_page()
        self.progress_panel = ProgressPanel()
        self.commands = WindowActions(self)
        self.commands.flip_average.setChecked(settings.flip_average())
        self.toolbar = build_menus_and_toolbar(self, self.commands)
        self._build_status_bar()
        self.run_reporter = RunReporter(
            self.controller, self.progress_panel, self.statusBar(), self
        )
        self.recovery_offer = RecoveryOffer(self.recovery, self.reopen, self.drop_area, self)
        self.statusBar().insertPermanentWidget(0, self.recovery_offer.waiting)
        self._connect()
        self._restore_layout()
        self._update_actions()

    # -- the model, as the rest of the app asks about it ---------------------------------------
    @property
    def engine(self) -> Engine | None:
        return self.model_loader.engine

    @property
    def model_error(self) -> str | None:
        return self.model_loader.error

    @property
    def model_loading(self) -> bool:
        return self.model_loader.loading

    def load_model(self, model_path: str | os.PathLike[str] | None = None) -> None:
        """Load a model in the background (None: the shipped one); requests wait for it."""
        self.model_loader.load(model_path)

    # -- construction -------------------------------------------------------------------------
    def _build_results_page(self) -> None:
        self.proxy = ResultsFilterProxy(self)
        self.proxy.setSourceModel(self.results)
        self.view = ResultsView(self.proxy)
        self.view.set_hidden_classes(self.settings.hidden_classes())
        self.preview = PreviewPanel(self.review_threshold)
        self.preview.set_show_cam(self.settings.show_cam())  # shown once a model with CAM loads
        self.preview_scroll = ScrolledPane(self.preview)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.preview_scroll)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([900, 380])
        # The filters sit above the table they filter, so the toolbar stays narrow enough
        # for Cancel to be visible on a 1024-pixel screen.
        self.filter_bar = FilterBar(self.review_threshold)
        # The counts sit beside the filters they help choose, which also leaves the status
        # bar's width to its messages (a sort's result, a path) and the model line.
        self.counts_label = CountsLabel(self.results)
        self.counts_label.setContentsMargins(0, 0, 8, 0)
        filter_row = QHBoxLayout()
        filter_row.addWidget(self.filter_bar, stretch=1)
        filter_row.addWidget(self.counts_label)
        results_page = QWidget()
        page_layout = QVBoxLayout(results_page)
        page_layout.setContentsMargins(0, 4, 0, 0)
        page_layout.addLayout(filter_row)
        page_layout.addWidget(self.splitter, stretch=1)
        self.key_legend = QLabel()  # the review keys, in the model's class order
        self.key_legend.setContentsMargins(6, 2, 6, 2)
        self.key_legend.setWordWrap(True)  # two lines in a narrow window, never a wide one
        page_layout.addWidget(self.key_legend)
        self.drop_area = DropArea(results_page)
        self.setCentralWidget(self.drop_area)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = ModelLabel(self.model_loader)
        # It may be cut in a narrow window (its tooltip and Help › About say it all); the
        # window must still shrink to a small screen.
        self.model_label.setMinimumWidth(160)
        # While a folder is watched the run messages come and go; this one stays, so the
        # worker always knows photos are being picked up, and where from.
        self.watching_label = QLabel()
        self.watching_label.setTextFormat(Qt.TextFormat.PlainText)  # a folder "cam<b>01"
        self.watching_label.setVisible(False)
        bar.addPermanentWidget(self.watching_label)
        bar.addPermanentWidget(self.model_label)
        # A message cut at the window's edge still reads whole on hover (what to do after a
        # stopped sort is at its end). Through a lambda: setToolTip itself as the slot made
        # libpyside warn it cannot add a dynamic method, on every start.
        bar.messageChanged.connect(lambda text: bar.setToolTip(text))
        bar.showMessage("Drop images or folders on the window to classify them")

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        # The model line gives way to the messages: at 1024 px it would take half the bar,
        # and cut the end of "Sorting stopped: ... sort again to finish, or undo them".
        self.model_label.setMaximumWidth(max(160, int(self.width() * MODEL_LABEL_SHARE)))
        super().resizeEvent(event)

    def _connect(self) -> None:
        self.drop_area.paths_dropped.connect(self.add_paths)
        self.filter_bar.class_filter_changed.connect(self.proxy.set_class_filter)
        self.filter_bar.status_filter_changed.connect(self.proxy.set_status_filter)
        self.view.current_row_changed.connect(self.preview.show_result)
        self.view.said.connect(self.statusBar().showMessage)
        # Remembered as soon as the user changes them (the threshold remembers itself).
        self.view.hidden_classes_changed.connect(self.settings.set_hidden_classes)
        self.preview.show_cam_changed.connect(self.settings.set_show_cam)
        self.commands.flip_average.toggled.connect(self._on_flip_average)
        self.progress_panel.cancel_requested.connect(self.cancel_work)
        self.sorting.started.connect(self.statusBar().showMessage)
        self.sorting.progress.connect(self._show_sort_progress)
        self.sorting.finished.connect(self.statusBar().showMessage)
        self.folder_watch.photos_ready.connect(self._classify_arrivals)
        self.folder_watch.watching_changed.connect(self._show_watching)
        self.folder_watch.unreachable_changed.connect(self._show_unreachable)
        self.folder_watch.photos_left.connect(self._show_photos_left)
        self.csv_export.message.connect(self.statusBar().showMessage)
        self.csv_export.busy_changed.connect(self._update_actions)
        self.csv_export.finished.connect(self._on_exported)
        self.reopen.message.connect(self.statusBar().showMessage)
        self.reopen.busy_changed.connect(self._update_actions)
        self.reopen.opened.connect(lambda *_: self._show_results())
        self.csv_export.finished.connect(self.recovery.schedule)  # no unsaved review: no copy
        self.recovery_offer.message.connect(self.statusBar().showMessage)
        self.preview.confirm_requested.connect(self._confirm_from_preview)
        self.results.confirmations_changed.connect(
            lambda: self.preview.show_result(self.preview.row)
        )
        self.results.reclassified.connect(lambda: self.preview.show_result(self.preview.row))
        self.results.rows_merging.connect(self.view.follow_merged_rows)
        self.results.relocated.connect(self._show_relocated_row)
        self.sorting.busy_changed.connect(self._update_actions)
        self.sorting.busy_changed.connect(self._on_sorting_busy)
        self.model_loader.started.connect(self._on_model_loading)
        self.model_loader.loaded.connect(self._on_model_loaded)
        self.model_loader.failed.connect(self._on_model_failed)
        self.controller.listed = self.results.listed_states
        self.controller.batch_ready.connect(self._on_batch)
        self.controller.finished.connect(self._on_run_finished)
        self.controller.busy_changed.connect(self._update_actions)
        self.controller.queue_changed.connect(self._update_actions)

    def _restore_layout(self) -> None:
        geometry = self.settings.blob("geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            # The first start: a set size, or the whole screen when that is smaller (a
            # window taller than the screen hides the key legend and the status bar).
            screen = self.screen().availableGeometry()
            if screen.width() < FIRST_SIZE[0] or screen.height() < FIRST_SIZE[1]:
                self.resize(screen.size())  # where no window manager maximises (a kiosk)
                self.setWindowState(Qt.WindowState.WindowMaximized)
            else:
                self.resize(*FIRST_SIZE)
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

    # -- model --------------------------------------------------------------------------------
    @Slot()
    def _on_model_loading(self) -> None:
        # Requests wait for it: a run started with the previous model would deliver rows
        # for classes the table no longer has.
        self.controller.set_engine(None)
        self._update_actions()

    @Slot(object)
    def _on_model_loaded(self, engine: Engine) -> None:
        names = tuple(engine.info.class_names)
        if names != self.results.class_names:
            # Other classes, other columns: rows of the previous model cannot stay, nor can
            # a run still making them (its later batches are dropped; queued requests wait
            # for the engine below).
            self.controller.cancel(clear_queue=False)
            self.results.set_class_names(names)
            self.drop_area.show_results(False)
            self.preview.set_class_names(names)
            self.filter_bar.set_class_names(names)  # the view re-applies hidden columns itself
            self.key_legend.setText(key_legend(names))
            self.folder_watch.start_again()  # its photos' rows went too: all of them again
        self.preview.set_cam_available(engine.has_cam)
        self.preview.set_model_input(engine.input_size, engine.info.resize)
        self.drop_area.empty_state.set_problem(None)
        self.statusBar().showMessage(f"Model {engine.model_path.name} loaded", 5000)
        self.controller.set_engine(engine)  # queued requests start now, with this model
        self._update_actions()

    @Slot(str)
    def _on_model_failed(self, message: str) -> None:
        engine = self.model_loader.engine
        if engine is not None:
            self.statusBar().showMessage(
                f"Cannot load that model (still using {engine.model_path.name}): {message}"
            )
            self.controller.set_engine(engine)  # requests made while it loaded run with it
        else:
            waiting = self.controller.queued_paths
            later = f" · {plural(waiting, 'item')} waiting for a model" if waiting else ""
            self.statusBar().showMessage(f"Cannot load the model: {message}{later}")
            self.drop_area.empty_state.set_problem(
                f"Cannot load the model: {message}\n\nChoose File › Open model… to pick a "
                "model file (.onnx exported by ewaste-convert)."
            )
        self._update_actions()

    def open_model(self, path: str | None = None) -> None:
        """File > Open model: pick an .onnx file (or load `path` directly)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open model", self.settings.last_dir("model"), "ONNX models (*.onnx)"
            )
            if not path:
                return
            if self.results.unsaved_review():
                again = partial(self.open_model, path)
                lost = "if the new model's classes differ (same classes: the table stays)"
                if not self._review_may_be_lost("Open model", "Open &anyway", again, lost):
                    return
            elif self.results.rowCount() and (
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
        self.model_loader.load(path)

    def show_summary(self) -> SummaryDialog | None:
        """View > Batch summary…: the current batch as a shift report's chart."""
        if self.engine is None or not self.results.rowCount():
            return None
        summary = summarise(
            self.results.predictions(),
            self.results.class_names,
            self.results.threshold,
            model_name=self.engine.model_path.name,
            model_sha256=self.engine.model_sha256,
            confirmed=self.results.confirmed_classes(),
        )
        self.summary_dialog = SummaryDialog(summary, self, self.settings.last_dir("export"))
        self.summary_dialog.show()
        return self.summary_dialog

    def show_about(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Information,
            f"About {APP_TITLE}",
            f"{APP_TITLE} {package_version()}\n\n{about_text(self.model_loader)}",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setDetailedText(model_record(self.model_loader))  # "Show Details…": all of it
        box.exec()

    # -- requests -------------------------------------------------------------------------------
    @Slot(object)
    def add_paths(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Classify files and folders (drop, Open, command line); queued while busy, and
        while no model is ready."""
        request = [os.path.abspath(str(p)) for p in paths if str(p)]
        if not request:
            return
        first = Path(request[0])
        self.settings.set_last_dir("images", first if first.is_dir() else first.parent)
        models = self.model_loader
        if models.engine is None and models.error and not models.loading:
            self.statusBar().showMessage(
                f"No model loaded ({models.error}); {plural(len(request), 'item')} will be "
                "classified once a model is opened (File › Open model…)"
            )
        elif models.engine is None or models.loading:
            self.statusBar().showMessage("Waiting for the model to load…")
        elif self.controller.busy:
            self.statusBar().showMessage(
                f"Queued {plural(len(request), 'item')}; they start when the current run ends",
                5000,
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

    def clear_results(self) -> None:
        if not self._review_may_be_lost("Clear results", "Clear &anyway", self.clear_results):
            return
        self.recovery.discard()  # nothing to keep, or the person chose to lose it
        self.controller.cancel()
        self.results.clear()
        self.preview.show_result(None)
        self.drop_area.show_results(False)
        self.progress_panel.set_idle("Ready")
        self.statusBar().showMessage("Results cleared")  # not the last run's "Classified …"
        self._update_actions()

    # -- runs (the progress and status messages are the RunReporter's) -------------------------
    @Slot(list)
    def _on_batch(self, batch: list) -> None:
        self.results.append_predictions(batch)
        self._show_results()
        if not self.view.currentIndex().isValid() and self.proxy.rowCount():
            self.view.select_proxy_row(0)  # something in the preview from the first batch
        self._update_actions()

    def _show_results(self) -> None:
        """The table instead of the drop hint, with the keyboard in it: 1-9, 0, Enter and
        the arrows work at once (else the focus was nowhere, and on the next activation
        Qt gave it to the class filter, where the arrows filtered the table away)."""
        if not self.drop_area.showing_results:
            self.drop_area.show_results(True)
            self.view.setFocus()

    @Slot(object)
    def _on_run_finished(self, summary: RunSummary) -> None:
        self.last_summary = summary

    @Slot(bool)
    def _on_flip_average(self, on: bool) -> None:
        self.controller.flip_average = on
        self.settings.set_flip_average(on)

    # -- files: watch, open, export --------------------------------------------------------------
    @property
    def exporting(self) -> bool:
        return self.csv_export.exporting

    def export_csv(self, path: str | os.PathLike[str] | None = None) -> BackgroundCall | None:
        """Write all results to CSV off the GUI thread; ask where if no path."""
        return self.csv_export.export(path)

    def set_watching(self, on: bool, folder: str | None = None) -> None:
        """File > Watch folder…: start (asking which folder unless given) or stop."""
        if on and not self.folder_watch.folder:
            folder = folder or QFileDialog.getExistingDirectory(
                self, "Watch folder", self.settings.last_dir("watch")
            )
            if folder:
                self.settings.set_last_dir("watch", folder)
                self.folder_watch.start(folder)
                self.statusBar().showMessage(f"Watching {folder} for new photos")
        elif not on:
            self.folder_watch.stop()
        self.commands.watch.setChecked(bool(self.folder_watch.folder))

    def _set_watching_text(self, what: str, folder: str) -> None:
        # Shortened: a long folder name took the status bar, leaving no room for messages.
        name = os.path.basename(folder.rstrip("/\\")) or folder
        left = self.folder_watch.left_count
        note = f" · {left} left unclassified" if left else ""  # lasts, unlike a message
        metrics = self.watching_label.fontMetrics()
        text = metrics.elidedText(
            f"{what} {name}{note}", Qt.TextElideMode.ElideMiddle, WATCHING_LABEL_WIDTH
        )
        self.watching_label.setText(text)

    @Slot(list)
    def _classify_arrivals(self, arrivals: list[tuple[str, FileState | None]]) -> None:
        """A watched folder's new photos. One an undo put back keeps its row without a run
        (which would only say it is in the table already, over the undo's report)."""
        listed = self.results.listed_states()
        self.add_paths(
            [path for path, state in arrivals if path not in listed or listed[path] != state]
        )

    @Slot(str)
    def _show_watching(self, folder: str) -> None:
        self._set_watching_text("Watching", folder)
        self.watching_label.setToolTip(
            f"New photos in {folder} are classified as they arrive; "
            "untick File > Watch folder… to stop" + self._photos_left_words(folder)
        )
        self.watching_label.setVisible(bool(folder))

    @Slot(str)
    def _show_unreachable(self, reason: str) -> None:
        folder = self.folder_watch.folder
        if not reason:
            self._show_watching(folder)
            self.statusBar().showMessage(f"{folder} is back: watching it again")
            return
        self._set_watching_text("Cannot see", folder)
        self.watching_label.setToolTip(
            f"{folder} cannot be read ({reason}): is the camera or the share connected? "
            "Its photos are classified once it is back"
        )
        self.statusBar().showMessage(f"Cannot see {folder} ({reason}); waiting for it")

    @Slot(int)
    def _show_photos_left(self, _count: int) -> None:
        # Without it, a watch that another program empties (a service sorting with --move)
        # shows some of the shift's photos and misses the rest in silence. In the watching
        # label too: the next run's messages replace the status bar's at once.
        folder = self.folder_watch.folder
        self._show_watching(folder)
        self.statusBar().showMessage(self._photos_left_words(folder).removeprefix(". "))

    def _photos_left_words(self, folder: str) -> str:
        count = self.folder_watch.left_count
        if not count:
            return ""
        they = "it was" if count == 1 else "they were"
        return (
            f". {plural(count, 'photo')} left {folder} before {they} classified here: "
            "is another program moving them (a watch sorting with --move)?"
        )

    def open_csv(self, path: str | None = None) -> None:
        """File > Open results CSV… (see desktop.gui.open_csv; `reopen.busy` until done)."""
        if self.engine is not None:  # asked for where the CSVs are exported, unless given
            self.reopen.open(path, start_dir=self.settings.last_dir("export"))

    # -- state -----------------------------------------------------------------------------------
    def _update_actions(self, *_args: object) -> None:
        busy = self.controller.busy
        has_rows = self.results.rowCount() > 0
        self.commands.export.setEnabled(has_rows and not self.exporting)
        self.commands.summary.setEnabled(has_rows and self.engine is not None)
        self.commands.open_csv.setEnabled(
            self.engine is not None and not busy and not self.reopen.busy
        )
        self.commands.sort.setEnabled(has_rows and not busy and not self.sorting.busy)
        self.commands.undo_sort.setEnabled(not self.sorting.busy)
        self.commands.clear.setEnabled(has_rows or busy)
        self.commands.cancel.setEnabled(busy or self.controller.queued > 0 or self.sorting.busy)
        self.commands.open_model.setEnabled(not busy and not self.model_loader.loading)
        self.recovery_offer.set_ready(
            self.engine is not None and not busy and not self.controller.queued
        )

    @Slot()
    def _show_relocated_row(self) -> None:
        """The preview's photo where it is now (the view made the row a merged row went
        into current); nothing, if its row went and the view shows no other."""
        row = self.preview.row
        self.preview.show_result(row if row in self.results.rows else None)

    @Slot(object, object)
    def _confirm_from_preview(self, row: ResultRow, class_name: str | None) -> None:
        """The preview's picker: as the keys do, a row the filter then hides hands the
        selection to the next one."""
        self.results.confirm_row(row, class_name)
        self.view.select_next_if_filtered_out()

    def cancel_work(self) -> None:
        """Run > Cancel (Esc): stop a sort or undo after the photo in hand, or else
        classifying, the requests queued behind it included (photos arriving meanwhile are
        not lost to an Esc meant for the sort)."""
        if self.sorting.busy:
            self.sorting.cancel()
            return
        dropped = self.controller.queued_paths
        self.controller.cancel()
        if dropped:  # said: the Cancel keeps what is done, and these were not begun
            note = f"; {plural(dropped, 'queued item')} not started: open them again to classify"
            self.statusBar().showMessage(self.statusBar().currentMessage() + note)

    def quit(self) -> None:
        """File > Quit: asks first when a sort runs, or a person's confirmations are in no
        CSV yet."""
        if not self._no_sort_running():
            return
        if self._review_may_be_lost("Quit", "Quit &anyway", self.quit):
            self.recovery.discard()  # nothing to keep, or the person chose to lose it
            self.close()

    def _no_sort_running(self) -> bool:
        """True when no sort or undo runs. Otherwise asks whether to stop it and quit once
        it has stopped: a window gone while the sort went on would leave the photos it moved
        unknown to the rows, and an undo run meanwhile could not put them back."""
        if not self.sorting.busy:
            return True
        answer = QMessageBox.question(
            self,
            "Quit",
            "A sort is running. Stop it after the photo in hand, then quit? Every photo "
            "filed by then is whole and in its manifest.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        if not self.sorting.busy:  # it ended while the question was open
            return True
        self._quit_after_sort = True
        self.sorting.cancel()
        self.statusBar().showMessage("Stopping the sort; quitting once it has stopped")
        return False

    @Slot(str, int, int)
    def _show_sort_progress(self, what: str, done: int, total: int) -> None:
        if self.sorting.busy:  # not a late one from a sort a close stopped and waited for
            self.progress_panel.set_sorting(what, done, total)

    @Slot(bool)
    def _on_sorting_busy(self, busy: bool) -> None:
        if not busy:
            self.progress_panel.end_sorting()
        if not busy and self._quit_after_sort:
            self._quit_after_sort = False
            self.quit()  # its rows follow the photos by now, and it has said what it did

    def _review_may_be_lost(
        self, title: str, anyway: str, then: Callable[[], None], lost_if: str = ""
    ) -> bool:
        """True when no class a person set would be lost, or they choose to lose it. With
        Export CSV… chosen, `then` is done again once the CSV is written. `lost_if`: when it
        would be lost, where not for certain."""
        unsaved = self.results.unsaved_review()
        if not unsaved:
            return True
        if self.exporting:  # its CSV may lack the latest; a second one cannot start now
            self.statusBar().showMessage(f"Writing a CSV: {title} once it is written")
            return False
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(title)
        box.setText(
            f"What a person confirmed, corrected or cleared for {plural(unsaved, 'photo')} is "
            f"in no CSV yet: export it first, or it is lost{' ' + lost_if if lost_if else ''}."
        )
        export = box.addButton("&Export CSV…", QMessageBox.ButtonRole.AcceptRole)
        anyway_button = box.addButton(anyway, QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(export)
        box.exec()
        if box.clickedButton() is anyway_button:
            return True
        if box.clickedButton() is export and self.export_csv() is not None:
            self._after_export = (then, self.results.rowCount())
        return False

    @Slot(bool)
    def _on_exported(self, written: bool) -> None:
        pending, self._after_export = self._after_export, None
        if not written or pending is None:
            return
        then, rows = pending
        if rows != self.results.rowCount() or self.controller.busy or self.controller.queued:
            # Photos came in while it was written: they are not what the worker chose to
            # clear or leave, nor in that CSV.
            self.statusBar().showMessage("Exported; photos added meanwhile are still in the table")
            return
        then()

    def closeEvent(self, event: QCloseEvent) -> None:
        # The title bar's close button or a log-out (spontaneous); File > Quit asked already,
        # and a close by the program (at exit, in tests) must not wait for an answer.
        if event.spontaneous():
            if not self._no_sort_running() or not self._review_may_be_lost(
                "Quit", "Quit &anyway", self.quit
            ):
                event.ignore()
                return
            self.recovery.discard()
        # A close by the program (Ctrl+C in the terminal, at exit): the sort stops after the
        # photo in hand, and the rows, and the kept copy of a review, follow its photos.
        self.sorting.stop_and_wait(SORT_STOP_WAIT_S)
        self.recovery.release()  # a close by the program keeps the copy: a review is kept
        self._save_layout()
        self.controller.shutdown()  # no worker thread may outlive the window
        super().closeEvent(event)

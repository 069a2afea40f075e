"""The window's commands (menu and toolbar actions, shortcuts, tips) and where they appear."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QSizePolicy, QToolBar, QWidget

if TYPE_CHECKING:
    from desktop.gui.main_window import MainWindow

FLIP_AVERAGE_TIP = (
    "Also classify each image mirrored left-right and average the two, at half the speed. "
    "It helps some models, not the shipped one (0.3 points less on validation). Applies to "
    "images added from now on."
)


def _action(
    window: MainWindow,
    text: str,
    slot: Callable[[], object],
    shortcut: object = None,
    tip: str = "",
) -> QAction:
    act = QAction(text, window)
    if shortcut is not None:
        act.setShortcut(shortcut)
    if tip:
        act.setStatusTip(tip)
        act.setToolTip(tip)
    # Drop `checked`: the slots take optional arguments (a path) of their own.
    act.triggered.connect(lambda _checked=False: slot())
    return act


class WindowActions:
    """One QAction per command; the window enables them (see MainWindow._update_actions)."""

    def __init__(self, window: MainWindow) -> None:
        self.open_images = _action(
            window,
            "Open &images…",
            window.open_images,
            QKeySequence.StandardKey.Open,
            "Classify one or more image files",
        )
        self.open_folder = _action(
            window,
            "Open &folder…",
            window.open_folder,
            QKeySequence("Ctrl+Shift+O"),
            "Classify every image in a folder and its subfolders",
        )
        self.open_model = _action(
            window,
            "Open &model…",
            window.open_model,
            QKeySequence("Ctrl+M"),
            "Load another classifier (.onnx exported by ewaste-convert)",
        )
        self.export = _action(
            window,
            "&Export CSV…",
            window.export_csv,
            QKeySequence("Ctrl+E"),
            "Save all results as a CSV file",
        )
        self.open_csv = _action(
            window,
            "Open &results CSV…",
            window.open_csv,
            QKeySequence("Ctrl+Shift+R"),
            "Reopen a reviewed batch from its CSV, corrections included",
        )
        self.watch = QAction("&Watch folder…", window, checkable=True)
        self.watch.setShortcut(QKeySequence("Ctrl+Shift+W"))
        self.watch.setStatusTip("Classify the photos a camera saves into a folder, as they come")
        self.watch.toggled.connect(window.set_watching)
        self.sort = _action(
            window,
            "&Sort into folders…",
            window.sorting.sort_into_folders,
            QKeySequence("Ctrl+Shift+S"),
            "Copy or move the photos into one folder per class, with a manifest",
        )
        self.undo_sort = _action(
            window,
            "&Undo a sort…",
            window.sorting.undo_sort,
            QKeySequence("Ctrl+Shift+Z"),  # Ctrl+Shift+U starts Unicode entry under IBus
            "Put the photos of an earlier sort back where they were",
        )
        self.clear = _action(
            window,
            "&Clear results",
            window.clear_results,
            None,
            "Remove all results from the table",
        )
        self.cancel = _action(
            window,
            "Ca&ncel",
            window.cancel_work,
            QKeySequence(Qt.Key.Key_Escape),
            "Stop classifying or sorting; what is done so far is kept",
        )
        self.quit = _action(window, "&Quit", window.quit, QKeySequence.StandardKey.Quit)
        self.about = _action(window, "&About the model", window.show_about)
        # Checkable, so not made by _action(): it carries a state (the window remembers it).
        self.flip_average = QAction("&Average with mirrored image", window, checkable=True)
        self.flip_average.setStatusTip(FLIP_AVERAGE_TIP)
        self.flip_average.setToolTip(FLIP_AVERAGE_TIP)
        self.summary = _action(
            window,
            "Batch &summary…",
            window.show_summary,
            QKeySequence("Ctrl+B"),
            "Counts per class and status as a chart, with the model, threshold and date",
        )
        self.show_preview = QAction("&Preview pane", window, checkable=True, checked=True)
        self.show_preview.toggled.connect(window.preview_scroll.setVisible)


def build_menus_and_toolbar(window: MainWindow, actions: WindowActions) -> QToolBar:
    """Fill the window's menu bar and add its toolbar (returned)."""
    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addActions([actions.open_images, actions.open_folder, actions.watch])
    file_menu.addSeparator()
    file_menu.addActions([actions.open_model, actions.open_csv])
    file_menu.addSeparator()
    file_menu.addActions([actions.export, actions.sort, actions.undo_sort, actions.clear])
    file_menu.addSeparator()
    file_menu.addAction(actions.quit)

    view_menu = menu.addMenu("&View")
    columns_menu = view_menu.addMenu("Probability &columns")
    columns_menu.aboutToShow.connect(partial(window.view.populate_columns_menu, columns_menu))
    view_menu.addAction(actions.show_preview)
    view_menu.addAction(actions.summary)

    run_menu = menu.addMenu("&Run")
    run_menu.addAction(actions.cancel)
    run_menu.addSeparator()
    run_menu.addAction(actions.flip_average)
    help_menu = menu.addMenu("&Help")
    help_menu.addAction(actions.about)

    toolbar = QToolBar("Main", window)
    toolbar.setObjectName("mainToolbar")  # saveState() needs a name
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    toolbar.addActions([actions.open_images, actions.open_folder])
    toolbar.addSeparator()
    toolbar.addActions([actions.export, actions.clear])
    spacer = QWidget()  # pushes the progress panel to the right edge
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    toolbar.addWidget(spacer)
    toolbar.addWidget(window.progress_panel)
    window.addToolBar(toolbar)
    return toolbar

"""The results table view: sortable, uniform rows, per-class probability columns hideable."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QKeyEvent, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QMenu, QTableView, QWidget

from desktop.core.results import STATUS_UNKNOWN
from desktop.core.wording import plural
from desktop.gui.results_filter import ResultsFilterProxy
from desktop.gui.results_model import (
    COL_CLASS,
    COL_CONFIDENCE,
    COL_CONFIRMED,
    COL_FILE,
    COL_FOLDER,
    COL_STATUS,
    COL_TOP3,
    FIRST_PROB_COLUMN,
    ROW_ROLE,
    ResultRow,
    ResultsModel,
)
from desktop.gui.style import UNFOCUSED_SELECTION_COLOR, UNFOCUSED_SELECTION_TEXT_COLOR

# Sized so the seven fixed columns fit a 1366-pixel-wide screen beside the preview pane,
# and the first five (up to Confirmed class, what the number keys set) a 1024-pixel one.
_INITIAL_WIDTHS = {
    COL_FILE: 135,
    COL_CLASS: 122,  # "(Washing Machine)": an unknown item's nearest class, whole
    COL_CONFIDENCE: 75,
    COL_STATUS: 95,
    COL_CONFIRMED: 105,
    COL_TOP3: 303,
    COL_FOLDER: 100,
}
# Number keys set a class: 1 the first class ... 9 the ninth, 0 the tenth.
_DIGIT_KEYS = {int(Qt.Key.Key_0) + d: d for d in range(10)}
_CONFIRM_KEYS = {int(Qt.Key.Key_Return), int(Qt.Key.Key_Enter)}
_CLEAR_KEYS = {int(Qt.Key.Key_Delete), int(Qt.Key.Key_Backspace)}


def class_key(index: int) -> str:
    """The key that sets class `index` ("1".."9", "0" for the tenth), or "" past ten."""
    return str((index + 1) % 10) if index < 10 else ""


def key_legend(class_names: Iterable[str]) -> str:
    """The legend of the review keys, in the order the keys follow."""
    keys = [f"{class_key(i)} {name}" for i, name in enumerate(class_names) if class_key(i)]
    parts = ["Enter confirms the selection", "Delete clears", *keys]
    # Non-breaking spaces inside each part and before its "·": a narrow window (800 px, or
    # a 2x scale) wraps between parts only, never "8 / Printer" or "0 Washing / Machine".
    return "\u00a0· ".join(part.replace(" ", "\u00a0") for part in parts)


_PROB_WIDTH = 82


class ResultsView(QTableView):
    """Shows the proxy; reports the current row and which class columns are hidden."""

    current_row_changed = Signal(object)  # ResultRow | None
    hidden_classes_changed = Signal(object)  # set[str]
    said = Signal(str)  # for the status bar

    def __init__(self, proxy: ResultsFilterProxy, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._proxy = proxy
        self._hidden: set[str] = set()
        self.setModel(proxy)
        self.setAccessibleName("Results")
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Tab leaves the table (to the filters, the preview's picker) instead of walking
        # its cells: rows are chosen with the arrows, and nothing in a cell is edited.
        self.setTabKeyNavigation(False)
        self.setAlternatingRowColors(True)
        # A selection in the blue of a focused table while the keys went elsewhere (Tab to the
        # preview's picker) said that digits and Enter still set its class. Qt paints a table
        # without the focus in its Inactive colours: a grey there, the blue only with the keys.
        palette = self.palette()
        inactive = QPalette.ColorGroup.Inactive
        palette.setColor(inactive, QPalette.ColorRole.Highlight, UNFOCUSED_SELECTION_COLOR)
        palette.setColor(
            inactive, QPalette.ColorRole.HighlightedText, UNFOCUSED_SELECTION_TEXT_COLOR
        )
        self.setPalette(palette)
        self.setWordWrap(False)
        # Middle elision keeps both ends of folders ("/data/…/batch 7") and file names
        # ("IMG_20…_0413.jpg"). One mode for all columns: a per-column Python delegate costs
        # more per repaint than all of data().
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)

        # Uniform row heights: the view never measures a row, so thousands stay smooth.
        rows = self.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        rows.hide()

        header = self.horizontalHeader()
        header.setSectionsMovable(True)
        header.setHighlightSections(False)
        header.setStretchLastSection(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._show_header_menu)
        # Arrival order until the user clicks a header; a third click returns to it.
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header.setSortIndicatorClearable(True)
        self.setSortingEnabled(True)

        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._show_row_menu)
        self.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        proxy.modelReset.connect(self._apply_columns)
        self._apply_columns()

    # -- columns ------------------------------------------------------------------------------
    @property
    def results_model(self) -> ResultsModel:
        model = self._proxy.sourceModel()
        assert isinstance(model, ResultsModel)  # the window always builds it this way
        return model

    @property
    def hidden_classes(self) -> set[str]:
        return set(self._hidden)

    def set_hidden_classes(self, names: Iterable[str]) -> None:
        """Hide the probability columns of these classes (unknown names are remembered)."""
        names = set(names)
        if names != self._hidden:
            self._hidden = names
            self._apply_columns()
            self.hidden_classes_changed.emit(set(self._hidden))

    def set_class_visible(self, name: str, visible: bool) -> None:
        hidden = set(self._hidden)
        if visible:
            hidden.discard(name)
        else:
            hidden.add(name)
        self.set_hidden_classes(hidden)

    def _apply_columns(self) -> None:
        header = self.horizontalHeader()
        if self.results_model.sort_column < 0 and header.sortIndicatorSection() >= 0:
            # The model went back to arrival order (other classes): so does the arrow.
            header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        for column, width in _INITIAL_WIDTHS.items():
            self.setColumnWidth(column, width)
        for i, name in enumerate(self.results_model.class_names):
            column = FIRST_PROB_COLUMN + i
            self.setColumnWidth(column, _PROB_WIDTH)
            self.setColumnHidden(column, name in self._hidden)

    def populate_columns_menu(self, menu: QMenu) -> None:
        """Fill `menu` with one checkable action per class column (View menu, header menu)."""
        menu.clear()
        names = self.results_model.class_names
        show_all = menu.addAction("Show all probabilities")
        show_all.triggered.connect(lambda: self.set_hidden_classes(set()))
        hide_all = menu.addAction("Hide all probabilities")
        hide_all.triggered.connect(lambda: self.set_hidden_classes(set(names)))
        menu.addSeparator()
        for name in names:
            action = QAction(name, menu)
            action.setCheckable(True)
            action.setChecked(name not in self._hidden)
            action.toggled.connect(lambda on, n=name: self.set_class_visible(n, on))
            menu.addAction(action)

    def _show_header_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        menu.setTitle("Probability columns")
        self.populate_columns_menu(menu)
        menu.exec(self.horizontalHeader().mapToGlobal(pos))

    # -- confirming and correcting (the rows' owner, the model, keeps the result) ------------
    def selected_source_rows(self) -> list[int]:
        rows = self.selectionModel().selectedRows()
        if not rows and self.currentIndex().isValid():
            # A filter that hid the selection leaves Qt a current row with nothing selected:
            # the preview shows that row, so the keys and the menu act on it.
            rows = [self.currentIndex()]
        return sorted({self._proxy.mapToSource(index).row() for index in rows})

    def confirm_selected(self, class_name: str | None = None, *, as_predicted: bool = False):
        """Set the selected rows' confirmed class (None with `as_predicted` False clears)."""
        rows = self.selected_source_rows()
        if rows:
            model = self.results_model
            model.set_confirmed(rows, class_name, as_predicted=as_predicted)
            # Those Enter leaves without a class (one a person set stays, and is no news).
            unknown = sum(
                model.row_at(row).status == STATUS_UNKNOWN and model.row_at(row).confirmed is None
                for row in rows
            )
            if as_predicted and unknown:
                self.said.emit(
                    f"{plural(unknown, 'unknown item')} left unconfirmed: none of the classes, "
                    "says the model; set one with its key (1-9, 0) if it is one"
                )
        self.select_next_if_filtered_out()

    def select_next_if_filtered_out(self) -> None:
        """After a confirmation: when the status filter hid the rows just settled ("needs
        review" lists what is left), select the next one, so the worker goes on key after
        key (or click after click in the preview's picker)."""
        current = self.currentIndex()
        if current.isValid() and not self.selectionModel().selectedRows():
            self.select_proxy_row(current.row())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, plain = event.key(), not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier)
        names = self.results_model.class_names
        if plain and key in _CONFIRM_KEYS:
            self.confirm_selected(as_predicted=True)
        elif plain and key in _CLEAR_KEYS:
            self.confirm_selected(None)
        elif plain and key in _DIGIT_KEYS and (_DIGIT_KEYS[key] - 1) % 10 < len(names):
            self.confirm_selected(names[(_DIGIT_KEYS[key] - 1) % 10])
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def row_menu(self) -> QMenu:
        """The rows' context menu: confirm, set a class (with its key), clear."""
        menu = QMenu(self)
        confirm = menu.addAction("Confirm as predicted\tEnter")
        confirm.triggered.connect(lambda: self.confirm_selected(as_predicted=True))
        classes = menu.addMenu("Set class")
        for index, name in enumerate(self.results_model.class_names):
            key = class_key(index)
            action = classes.addAction(f"{name}\t{key}" if key else name)
            action.triggered.connect(lambda _on=False, n=name: self.confirm_selected(n))
        clear = menu.addAction("Clear confirmation\tDelete")
        clear.triggered.connect(lambda: self.confirm_selected(None))
        has_rows = bool(self.selected_source_rows())
        for action in (confirm, classes.menuAction(), clear):
            action.setEnabled(has_rows)
        return menu

    def _show_row_menu(self, pos: QPoint) -> None:
        self.row_menu().exec(self.viewport().mapToGlobal(pos))

    # -- selection ----------------------------------------------------------------------------
    def current_result(self) -> ResultRow | None:
        index = self.currentIndex()
        row = index.data(ROW_ROLE) if index.isValid() else None
        return row if isinstance(row, ResultRow) else None

    def follow_merged_rows(self, merging: list[tuple[ResultRow, ResultRow]]) -> None:
        """The current row goes into another row (a copy's row into its original's, after
        an undo): make that one current, beside the other rows selected, so the preview
        and the keys stay on the photo; or, if a filter hides it, no row current (Qt would
        make a neighbour current, and a key press would set another photo's class)."""
        current = self.current_result()
        kept = next((into for row, into in merging if row is current), None)
        if kept is None:
            return
        model = self.results_model
        index = self._proxy.mapFromSource(model.index(model.rows.index(kept), 0))
        selection = self.selectionModel()
        if not index.isValid():
            selection.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.NoUpdate)
            return
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        selection.setCurrentIndex(index, flags)
        self.scrollTo(index)

    def select_proxy_row(self, row: int) -> None:
        index = self._proxy.index(row, 0)
        self.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.scrollTo(index)

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row = current.data(ROW_ROLE) if current.isValid() else None
        self.current_row_changed.emit(row if isinstance(row, ResultRow) else None)

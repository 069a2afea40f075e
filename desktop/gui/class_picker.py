"""The preview's "Confirmed class" picker: set the shown row's class by hand."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QWheelEvent
from PySide6.QtWidgets import QComboBox, QWidget

NOT_CONFIRMED = "(not confirmed)"
# Besides Up and Down, the keys with which a closed QComboBox commits another item.
_MOVE_KEYS = (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown, Qt.Key.Key_Home, Qt.Key.Key_End)


class ClassPicker(QComboBox):
    """Shows a row's confirmed class; `picked(name or None)` when the user changes it."""

    picked = Signal(object)  # str | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("The class a person confirmed for this photo (keys: see below the table)")
        self.setAccessibleName("Confirmed class")
        # Chosen from the opened list only, never by the wheel or a key on the closed
        # picker: scrolling the pane over it, or Down for the next photo, would set a class
        # nobody chose.
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.set_class_names(())
        self.activated.connect(self._on_activated)  # user choices only, not show_confirmed

    def set_class_names(self, class_names: Sequence[str]) -> None:
        with QSignalBlocker(self):
            self.clear()
            self.addItem(NOT_CONFIRMED, None)
            for name in class_names:
                self.addItem(name, name)

    def show_confirmed(self, class_name: str | None) -> None:
        with QSignalBlocker(self):
            self.setCurrentIndex(max(self.findData(class_name), 0))

    def wheelEvent(self, event: QWheelEvent) -> None:
        event.ignore()  # to the scroll area around the pane

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Closed, a QComboBox commits another class on an arrow key or a typed letter: a
        # worker who tabbed here and pressed Down for the next photo set this one's class.
        # A class is chosen from the opened list only; Up and Down open it.
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            self.showPopup()
        elif event.key() in _MOVE_KEYS or (event.text().strip() and event.text().isprintable()):
            event.accept()  # nothing: neither a move nor a search by first letter
        else:
            super().keyPressEvent(event)  # Space, F4, Alt+Down open; Enter, Esc go on

    @Slot(int)
    def _on_activated(self, position: int) -> None:
        self.picked.emit(self.itemData(position))

"""The preview's "Confirmed class" picker: set the shown row's class by hand."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Qt, Signal, Slot
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QComboBox, QWidget

NOT_CONFIRMED = "(not confirmed)"


class ClassPicker(QComboBox):
    """Shows a row's confirmed class; `picked(name or None)` when the user changes it."""

    picked = Signal(object)  # str | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("The class a person confirmed for this photo (keys: see below the table)")
        # Chosen by a click or the keys, never by the wheel: scrolling the preview pane
        # over it would set a class nobody chose.
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

    @Slot(int)
    def _on_activated(self, position: int) -> None:
        self.picked.emit(self.itemData(position))

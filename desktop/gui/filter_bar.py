"""Toolbar controls that decide which rows show and how they are judged."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QSignalBlocker, Signal, Slot
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from desktop.core.results import STATUS_LABELS, STATUSES
from desktop.gui.results_model import CONFIRMED, CORRECTED
from desktop.gui.review_threshold import ReviewThreshold

STATUS_CHOICES: tuple[tuple[str, str | None], ...] = (
    ("All", None),
    *((STATUS_LABELS[status], status) for status in STATUSES),
    ("confirmed by a person", CONFIRMED),
    ("corrected by a person", CORRECTED),
)


class FilterBar(QWidget):
    """Class and status filters (it emits what changed) and the review threshold's editor."""

    class_filter_changed = Signal(object)  # int | None
    status_filter_changed = Signal(object)  # str | None

    def __init__(self, threshold: ReviewThreshold, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._threshold = threshold
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Show only results predicted as this class")
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.status_combo = QComboBox()
        self.status_combo.setToolTip("Show only results with this status")
        for label, status in STATUS_CHOICES:
            self.status_combo.addItem(label, status)
        # Percent in the UI (what a worker reads), a 0..1 probability everywhere else.
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 100.0)
        self.threshold_spin.setDecimals(0)
        self.threshold_spin.setSingleStep(5.0)
        self.threshold_spin.setSuffix(" %")
        self.threshold_spin.setValue(round(threshold.value * 100))
        self.threshold_spin.setToolTip(
            "Results whose confidence is below this value are marked 'needs review'. "
            "Changing it re-checks existing results without classifying again."
        )

        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        # Alt+C, Alt+T, Alt+B reach each control from the table, without the mouse.
        for text, control in (
            ("&Class:", self.class_combo),
            ("S&tatus:", self.status_combo),
            ("Review &below:", self.threshold_spin),
        ):
            label = QLabel(text)
            label.setBuddy(control)
            if control is not self.class_combo:
                layout.addSpacing(8)
            layout.addWidget(label)
            layout.addWidget(control)
        layout.addStretch(1)

        self.set_class_names(())
        self.class_combo.currentIndexChanged.connect(self._on_class_changed)
        self.status_combo.currentIndexChanged.connect(self._on_status_changed)
        self.threshold_spin.valueChanged.connect(self._on_spin_changed)
        threshold.changed.connect(self._show_threshold)

    def set_class_names(self, names: Sequence[str]) -> None:
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem("All classes", None)
        for i, name in enumerate(names):
            self.class_combo.addItem(name, i)
        self.class_combo.blockSignals(False)
        self.class_filter_changed.emit(None)

    def set_class_filter(self, class_index: int | None) -> None:
        position = self.class_combo.findData(class_index)
        self.class_combo.setCurrentIndex(max(position, 0))

    def set_status_filter(self, status: str | None) -> None:
        position = self.status_combo.findData(status)
        self.status_combo.setCurrentIndex(max(position, 0))

    def _on_class_changed(self, position: int) -> None:
        self.class_filter_changed.emit(self.class_combo.itemData(position))

    def _on_status_changed(self, position: int) -> None:
        self.status_filter_changed.emit(self.status_combo.itemData(position))

    @Slot(float)
    def _on_spin_changed(self, percent: float) -> None:
        self._threshold.set_value(percent / 100.0)

    @Slot(float)
    def _show_threshold(self, value: float) -> None:
        # Silently: the value came from the owner, sending it back would round it to a percent.
        with QSignalBlocker(self.threshold_spin):
            self.threshold_spin.setValue(round(value * 100))

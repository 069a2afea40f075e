"""Toolbar controls that decide which rows show and how they are judged."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from desktop.core.results import STATUS_LABELS, STATUSES

STATUS_CHOICES: tuple[tuple[str, str | None], ...] = (
    ("All", None),
    *((STATUS_LABELS[status], status) for status in STATUSES),
)


class FilterBar(QWidget):
    """Class filter, status filter and review threshold; it only emits what changed."""

    class_filter_changed = Signal(object)  # int | None
    status_filter_changed = Signal(object)  # str | None
    threshold_changed = Signal(float)  # probability, 0..1

    def __init__(self, threshold: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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
        self.threshold_spin.setValue(round(threshold * 100))
        self.threshold_spin.setToolTip(
            "Results whose confidence is below this value are marked 'needs review'. "
            "Changing it re-checks existing results without classifying again."
        )

        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.addWidget(QLabel("Class:"))
        layout.addWidget(self.class_combo)
        layout.addSpacing(8)
        layout.addWidget(QLabel("Status:"))
        layout.addWidget(self.status_combo)
        layout.addSpacing(8)
        layout.addWidget(QLabel("Review below:"))
        layout.addWidget(self.threshold_spin)
        layout.addStretch(1)

        self.set_class_names(())
        self.class_combo.currentIndexChanged.connect(self._on_class_changed)
        self.status_combo.currentIndexChanged.connect(self._on_status_changed)
        self.threshold_spin.valueChanged.connect(self._on_threshold_changed)

    def set_class_names(self, names: Sequence[str]) -> None:
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem("All classes", None)
        for i, name in enumerate(names):
            self.class_combo.addItem(name, i)
        self.class_combo.blockSignals(False)
        self.class_filter_changed.emit(None)

    @property
    def threshold(self) -> float:
        return self.threshold_spin.value() / 100.0

    def set_threshold(self, value: float) -> None:
        self.threshold_spin.setValue(round(value * 100))

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

    def _on_threshold_changed(self, percent: float) -> None:
        self.threshold_changed.emit(percent / 100.0)

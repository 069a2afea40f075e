"""A horizontal bar chart of every class probability, painted with QPainter."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop.core.wording import percent
from desktop.gui.style import ACCENT_COLOR, OK_COLOR, REVIEW_COLOR

_BAR_COLOR = ACCENT_COLOR
_TOP_COLOR = OK_COLOR  # the predicted class, when the caller gives no status colour
_THRESHOLD_COLOR = REVIEW_COLOR  # the threshold line
_MIN_BAR_WIDTH = 60  # what long class names leave the bars, at the least


class ProbabilityChart(QWidget):
    """One labelled bar per class, in model order, the predicted class highlighted.

    Model order (not sorted by value) keeps every class on the same line from one image to
    the next, so a worker stepping through rows sees the bars move, not the labels.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._names: tuple[str, ...] = ()
        self._values: tuple[float, ...] = ()
        self._highlight: int | None = None
        self._threshold: float | None = None
        self._top_color = _TOP_COLOR
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.setAccessibleName("Class probabilities")

    def set_probabilities(
        self,
        class_names: Sequence[str],
        values: Sequence[float] | None,
        highlight: int | None = None,
        threshold: float | None = None,
        top_color: QColor | None = None,
    ) -> None:
        """Show `values` (None: clear the bars, keep nothing); `threshold` draws a marker;
        the highlighted bar takes `top_color`, the colour of the row's status."""
        self._names = tuple(class_names) if values is not None else ()
        self._values = tuple(float(v) for v in values) if values is not None else ()
        self._highlight = highlight
        self._threshold = threshold
        self._top_color = top_color or _TOP_COLOR
        self.setToolTip(
            "\n".join(f"{n}: {percent(v)}" for n, v in zip(self._names, self._values, strict=True))
        )
        self.updateGeometry()
        self.update()

    @property
    def values(self) -> tuple[float, ...]:
        return self._values

    def _row_height(self) -> int:
        return self.fontMetrics().height() + 8

    def sizeHint(self) -> QSize:
        return QSize(320, max(1, len(self._names)) * self._row_height() + 8)

    def minimumSizeHint(self) -> QSize:
        return QSize(200, max(1, len(self._names)) * self._row_height() + 8)

    def paintEvent(self, _event: object) -> None:
        if not self._values:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        bold = QFont(self.font())
        bold.setBold(True)
        # Measured in bold, as the predicted class is drawn: in the regular font the
        # longest name, when predicted, ran off the left edge ("/ashing Machine").
        metrics = QFontMetrics(bold)
        text_color = self.palette().color(QPalette.ColorRole.WindowText)
        track_color = self.palette().color(QPalette.ColorRole.Midlight)
        row_h = self._row_height()
        value_w = metrics.horizontalAdvance("100.0 %") + 8
        # Long names (a retrained model's) are cut short, never the bars or the values:
        # the full names are in the tooltip.
        widest_label = self.width() - value_w - _MIN_BAR_WIDTH - 8
        label_w = min(max(metrics.horizontalAdvance(n) for n in self._names) + 10, widest_label)
        left = 4 + label_w
        bar_w = max(20, self.width() - left - value_w - 4)

        for i, (name, value) in enumerate(zip(self._names, self._values, strict=True)):
            top = 4 + i * row_h
            is_top = i == self._highlight
            painter.setFont(bold if is_top else self.font())
            painter.setPen(text_color)
            label_rect = QRectF(4, top, label_w - 6, row_h)
            shown = metrics.elidedText(name, Qt.TextElideMode.ElideRight, int(label_rect.width()))
            painter.drawText(
                label_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, shown
            )
            track = QRectF(left, top + 3, bar_w, row_h - 6)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(track_color)
            painter.drawRoundedRect(track, 3, 3)
            filled = QRectF(
                track.left(), track.top(), bar_w * min(max(value, 0.0), 1.0), track.height()
            )
            painter.setBrush(self._top_color if is_top else _BAR_COLOR)
            if filled.width() >= 1:
                painter.drawRoundedRect(filled, 3, 3)
            painter.setPen(text_color)
            painter.drawText(
                QRectF(left + bar_w + 4, top, value_w, row_h),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                percent(value),
            )

        if self._threshold is not None:
            # The review threshold as a dashed line across the bars.
            x = left + bar_w * self._threshold
            pen = painter.pen()
            pen.setColor(_THRESHOLD_COLOR)
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(int(x), 2, int(x), 4 + len(self._values) * row_h)
        painter.end()

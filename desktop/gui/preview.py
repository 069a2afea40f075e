"""The preview pane: the selected image, its prediction and the probability chart.

The image is decoded off the GUI thread by the model's own decoder (so it shows what the
model saw), at preview size (JPEG draft mode decodes a phone photo at 1/8 scale), and only
the latest request is kept, so holding the arrow key down in the table never queues up
decodes or stalls the window.

With "Show where the model looked" on, the class activation map of the predicted class is
painted over the image: a few-cell grid upsampled to OVERLAY_SIDE pixels and coloured on
the GUI thread (about a millisecond), then drawn by QPainter over where the model's input
lies (`input_rect`, found with the decode): the image rect for a model that stretches (the
grid covers the whole image, whatever its aspect ratio), a larger rect cut to the image for
one that letterboxes (the grid covers the padding too), the item's square for one that
crops to the item (see desktop.core.cam).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QObject, QRectF, QSize, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QPainter,
    QPalette,
    QRegion,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.core.cam import cam_heatmap
from desktop.core.preprocessing import ImageLoadError, input_rect, load_display_rgb
from desktop.core.results import STATUS_ERROR, STATUS_LABELS, STATUS_UNKNOWN, status_of
from desktop.core.wording import nearest_class, percent
from desktop.gui.class_picker import ClassPicker
from desktop.gui.probability_chart import ProbabilityChart
from desktop.gui.results_model import ResultRow
from desktop.gui.review_threshold import ReviewThreshold
from desktop.gui.style import (
    ERROR_COLOR,
    SECONDARY_TEXT_COLOR,
    STATUS_COLORS,
    css,
    path_tooltip,
)

PREVIEW_MAX_SIDE = 1024
OVERLAY_SIDE = 256  # the heatmap's longer side in pixels; QPainter scales it to the image
SHOW_CAM_TEXT = "Show where the model looked"
SHOW_CAM_TIP = (
    "Light up the parts of the image that made the model choose its class and dim the rest "
    "(brightest yellow: strongest)"
)
NO_CAM_TIP = (
    "This model has no class activation map output: export it with `ewaste-convert export "
    "--cam` to see where it looked"
)

# Colour and opacity of a heat value 0..1, laid over the photo: black that dims the photo
# where the model did not look, through red to a bright yellow where it looked most. Its
# lightness rises with the heat, so a red-green colour-blind worker finds the strongest
# part too (a blue-green-red "jet" scale put the same yellow at both of its ends for them).
_HEAT_ANCHORS = np.array([0.0, 0.5, 1.0])
_HEAT_COLOURS = np.array([(0, 0, 0, 150), (200, 40, 30, 140), (255, 230, 60, 130)])
_HEAT_LUT = np.empty((256, 4), dtype=np.uint8)
for _channel in range(4):
    _HEAT_LUT[:, _channel] = np.round(
        np.interp(np.linspace(0.0, 1.0, 256), _HEAT_ANCHORS, _HEAT_COLOURS[:, _channel])
    )

_pool: QThreadPool | None = None


def _preview_pool() -> QThreadPool:
    # One thread: previews are decoded in request order and never compete with each other.
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(1)
    return _pool


def wait_for_previews(timeout_ms: int) -> bool:
    """Wait up to `timeout_ms` for a preview decode in flight; True when none is left.

    At exit: a job still running when Python tears the window's objects down would emit
    into a deleted object.
    """
    return _pool is None or _pool.waitForDone(timeout_ms)


def load_preview_image(path: str, max_side: int = PREVIEW_MAX_SIDE) -> QImage:
    """Decode `path` for display, at most `max_side` pixels on a side.

    Decoded by `desktop.core.preprocessing`, exactly as for the model (EXIF orientation,
    16-bit scaling, transparency on white), so the preview shows what the model saw, only
    not squeezed to its square input. Raises ImageLoadError on failure.
    """
    return _qimage(load_display_rgb(path, max_side))


def _qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    qimage = QImage(rgb.tobytes(), width, height, 3 * width, QImage.Format.Format_RGB888)
    return qimage.copy()  # own the pixels: the bytes go away with this function


def heatmap_image(heat: np.ndarray) -> QImage:
    """A (height, width) heatmap in 0..1 as a semi-transparent RGBA colour map image."""
    levels = np.clip(np.round(np.asarray(heat, dtype=np.float32) * 255.0), 0, 255)
    rgba = np.ascontiguousarray(_HEAT_LUT[levels.astype(np.uint8)])
    height, width = levels.shape
    image = QImage(rgba.tobytes(), width, height, 4 * width, QImage.Format.Format_RGBA8888)
    return image.copy()  # own the pixels: the bytes go away with this function


def overlay_size(grid: tuple[int, ...]) -> tuple[int, int]:
    """(height, width) to upsample an (h, w) CAM grid to: an integer multiple, ~OVERLAY_SIDE."""
    rows, cols = grid[0], grid[1]
    scale = max(1, OVERLAY_SIDE // max(rows, cols))
    return rows * scale, cols * scale


class _Bridge(QObject):
    """Carries one decoded image from the pool thread back to the GUI thread.

    One per request and without a Qt parent: the job holds the only lasting reference, so
    the object lives exactly as long as the job may emit, whatever happens to the widget
    (a closed widget's connections are dropped by Qt, and the result with them).
    """

    # Request id, image (null on failure), where the model's input lies over it (see
    # `input_rect`), error text.
    loaded = Signal(int, QImage, object, str)


class PathTitle(QLabel):
    """A file's name in bold over its folder, each shortened in the middle to the label's
    width ("big_4000…00_1.jpg"), the whole path in the tooltip. A long name without spaces
    cannot wrap: cut at the right it lost its extension and any sign of being cut, and
    shown whole it would widen the pane and push the table's columns out of view."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._path: str | None = None
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.show_path(None)

    def show_path(self, path: str | None) -> None:
        self._path = path
        self.setToolTip("" if path is None else path_tooltip(path))
        self._show()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._show()

    def _show(self) -> None:
        if self._path is None:
            self.setText("<b>No image selected</b>")
            return
        folder, name = os.path.split(self._path)
        width = max(self.contentsRect().width(), 40)
        bold = QFont(self.font())
        bold.setBold(True)
        middle = Qt.TextElideMode.ElideMiddle
        name = QFontMetrics(bold).elidedText(name, middle, width)
        folder = self.fontMetrics().elidedText(folder, middle, width)
        grey = css(SECONDARY_TEXT_COLOR)  # Qt's "gray" is 3.4:1 on the window: too faint
        self.setText(
            f"<b>{html.escape(name)}</b><br><span style='color:{grey}'>{html.escape(folder)}</span>"
        )


class ImageView(QWidget):
    """Paints one image scaled to fit, keeping its aspect ratio; a hint when empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = QImage()
        self._path: str | None = None  # the image requested last
        self._overlay = QImage()  # the map over the model's input; null: none
        # The model's input size (height, width) and resize mode, and where that input
        # lies over the image shown (fractions of it): where the map is drawn.
        self._model_input: tuple[tuple[int, int], str] = ((1, 1), "stretch")
        self._input_rect = (0.0, 0.0, 1.0, 1.0)
        self._placeholder = "Select a row to see the image"
        self._request = 0  # id of the latest request
        self._shown = 0  # id of the request on screen
        self._latest = [0]  # the latest request id, as seen by pool jobs
        self.setMinimumSize(160, 120)
        self.setAccessibleName("Photo")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    @property
    def image(self) -> QImage:
        return self._image

    @property
    def overlay(self) -> QImage:
        return self._overlay

    def set_overlay(self, overlay: QImage | None) -> None:
        """Paint `overlay` over the image (None: nothing); it belongs to the latest request."""
        self._overlay = QImage() if overlay is None else overlay
        self.update()

    def set_model_input(self, size: tuple[int, int], resize: str) -> None:
        """The loaded model's input size (height, width) and resize mode; the image shown
        is decoded again to find where the new model's input lies over it."""
        if (size, resize) == self._model_input:
            return
        self._model_input = (size, resize)
        if self._path is not None:
            self.show_path(self._path)

    def overlay_rect(self, target: QRectF) -> QRectF:
        """Where the overlay (the map of the model's whole input) goes for the image drawn
        in `target`: `target` itself when the image filled the input, a larger rect for a
        letterboxed one, the item's square for a model that crops to the item."""
        left, top, width, height = self._input_rect
        return QRectF(
            target.x() + left * target.width(),
            target.y() + top * target.height(),
            width * target.width(),
            height * target.height(),
        )

    @property
    def pending(self) -> bool:
        """True while a requested image is still being decoded."""
        return self._request != self._shown

    def show_path(
        self, path: str | None, placeholder: str = "Select a row to see the image"
    ) -> None:
        """Start decoding `path` in the background (None: clear, showing `placeholder`)."""
        self._request += 1
        request = self._request
        self._latest[0] = request  # tells a queued job of the previous request to skip
        self._path = path
        if path is None:
            self._shown = request
            self._set(QImage(), (0.0, 0.0, 1.0, 1.0), placeholder)
            return
        size, resize = self._model_input
        bridge = _Bridge()
        bridge.loaded.connect(self._on_loaded)
        latest = self._latest  # a plain list: safe to read from the job, widget or not

        def job() -> None:
            if latest[0] != request:  # superseded while waiting: skip the decode
                return
            rect = (0.0, 0.0, 1.0, 1.0)
            try:
                rgb = load_display_rgb(path, PREVIEW_MAX_SIDE)
                image, rect, error = _qimage(rgb), input_rect(rgb, size, resize), ""
            except ImageLoadError as exc:
                image, error = QImage(), f"Cannot show this image: {exc.reason}"
            except Exception as exc:  # noqa: BLE001 - any failure is shown, never raised
                image, error = QImage(), f"Cannot show this image: {exc}"
            bridge.loaded.emit(request, image, rect, error)

        _preview_pool().start(job)

    def _on_loaded(self, request: int, image: QImage, rect: object, error: str) -> None:
        if request != self._request:
            return
        self._shown = request
        self._set(image, rect, error)

    def _set(self, image: QImage, rect: object, placeholder: str) -> None:
        self._image = image
        self._input_rect = rect
        self._placeholder = placeholder
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(360, 300)

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        if self._image.isNull():
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self._placeholder,
            )
            return
        size = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        if size.width() > self._image.width():  # do not blow small images up past 2x
            size = self._image.size().scaled(
                min(self.width(), 2 * self._image.width()),
                min(self.height(), 2 * self._image.height()),
                Qt.AspectRatioMode.KeepAspectRatio,
            )
        x = (self.width() - size.width()) / 2
        y = (self.height() - size.height()) / 2
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        target = QRectF(x, y, size.width(), size.height())
        painter.drawImage(target, self._image)
        # While the next image decodes the previous one stays up: not with the new overlay.
        if not self._overlay.isNull() and not self.pending:
            painter.setClipRect(target)  # a letterboxed image's padding is not shown
            covered = self.overlay_rect(target)
            if covered.contains(target):  # stretched or letterboxed: the map covers it all
                painter.drawImage(covered, self._overlay)
                return
            # Cropped to the item: the map on whole pixels, so that no seam shows between it
            # and the rest, which the model did not look at (dimmed like the map's coolest).
            square = covered.toRect()
            painter.drawImage(QRectF(square), self._overlay)
            painter.setClipRegion(QRegion(target.toAlignedRect()).subtracted(QRegion(square)))
            painter.fillRect(target, QColor(*(int(c) for c in _HEAT_COLOURS[0])))


class PreviewPanel(QWidget):
    """Right-hand pane: file name, verdict, image and probability chart of one result."""

    # The user ticked or cleared "Show where the model looked" (not emitted for set_show_cam).
    show_cam_changed = Signal(bool)
    # The user picked a confirmed class (or none) for the row shown: (ResultRow, str | None).
    confirm_requested = Signal(object, object)

    def heightForWidth(self, _width: int) -> int:
        # None preferred (-1): in its scroll area the pane takes the height it is given,
        # down to its minimum. With one (its labels wrap) it took its preferred height, and
        # the image was never shrunk to keep the chart in view.
        return -1

    def __init__(self, threshold: ReviewThreshold, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._class_names: tuple[str, ...] = ()
        self._threshold = threshold  # the verdict, legend and chart line follow it
        self._row: ResultRow | None = None
        self._want_cam = False  # the user's choice, kept while a model without CAM is loaded
        self._cam_available = False
        self._heatmap: np.ndarray | None = None

        self.title = PathTitle()
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.RichText)
        self.image_view = ImageView()
        self.cam_check = QCheckBox(SHOW_CAM_TEXT)
        self.cam_check.toggled.connect(self._on_cam_toggled)
        self.chart = ProbabilityChart()
        self.class_picker = ClassPicker()
        self.class_picker.picked.connect(self._on_picked)
        # Named, so its value does not read as a second prediction under the verdict.
        self.class_picker_label = QLabel("Confirmed class:")
        self.class_picker_label.setBuddy(self.class_picker)
        self.legend = QLabel()
        # Not the placeholder grey (3.9:1 on the window): text needs 4.5:1.
        self.legend.setStyleSheet(f"color: {css(SECONDARY_TEXT_COLOR)};")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.title)
        layout.addWidget(self.verdict)
        picker_row = QHBoxLayout()
        picker_row.addWidget(self.class_picker_label)
        picker_row.addWidget(self.class_picker, stretch=1)
        layout.addLayout(picker_row)
        layout.addWidget(self.image_view, stretch=1)
        layout.addWidget(self.cam_check)
        layout.addWidget(self.chart)
        layout.addWidget(self.legend)
        self.set_cam_available(False, "No model loaded")
        self.show_result(None)
        threshold.changed.connect(self._on_threshold_changed)

    @property
    def row(self) -> ResultRow | None:
        return self._row

    def set_class_names(self, class_names: Sequence[str]) -> None:
        self._class_names = tuple(class_names)
        self.class_picker.set_class_names(class_names)
        self.show_result(None)

    @Slot(object)
    def _on_picked(self, class_name: str | None) -> None:
        if self._row is not None:
            self.confirm_requested.emit(self._row, class_name)

    @property
    def heatmap(self) -> np.ndarray | None:
        """The (height, width) 0..1 heatmap painted over the image now; None when off."""
        return self._heatmap

    def set_show_cam(self, show: bool) -> None:
        """The remembered choice of the checkbox (shown ticked only when the model has CAM)."""
        self._want_cam = show
        self._sync_cam_check()

    def set_model_input(self, size: tuple[int, int], resize: str) -> None:
        """The loaded model's input size (height, width) and resize mode, for the overlay."""
        self.image_view.set_model_input(size, resize)

    def set_cam_available(self, available: bool, reason: str = NO_CAM_TIP) -> None:
        """Whether the loaded model has a CAM output; `reason` is the tooltip when not."""
        self._cam_available = available
        self.cam_check.setEnabled(available)
        self.cam_check.setToolTip(SHOW_CAM_TIP if available else reason)
        self._sync_cam_check()

    def _sync_cam_check(self) -> None:
        self.cam_check.blockSignals(True)  # not the user's doing: no show_cam_changed
        self.cam_check.setChecked(self._want_cam and self._cam_available)
        self.cam_check.blockSignals(False)
        self._update_overlay()

    @Slot(bool)
    def _on_cam_toggled(self, checked: bool) -> None:
        self._want_cam = checked
        self._update_overlay()
        self.show_cam_changed.emit(checked)

    def _update_overlay(self) -> None:
        row = self._row
        cam = None if row is None else row.prediction.cam
        if cam is None or not (self._cam_available and self.cam_check.isChecked()):
            self._heatmap = None
            self.image_view.set_overlay(None)
            return
        self._heatmap = cam_heatmap(cam, overlay_size(cam.shape))
        self.image_view.set_overlay(heatmap_image(self._heatmap))

    @Slot(float)
    def _on_threshold_changed(self, _threshold: float) -> None:
        self.show_result(self._row)

    def show_result(self, row: ResultRow | None) -> None:
        """Show `row` (None: the empty state)."""
        changed_image = (
            row is None or self._row is None or row.prediction is not self._row.prediction
        )
        self._row = row
        self.legend.setVisible(row is not None and row.status != STATUS_ERROR)
        self.class_picker.setEnabled(row is not None and row.status != STATUS_ERROR)
        self.class_picker.show_confirmed(None if row is None else row.confirmed)
        threshold = self._threshold.value
        self.legend.setText(f"Dashed line: review threshold ({threshold * 100:.0f} %)")
        if row is None:
            self.title.show_path(None)
            self.verdict.setText("Select a result to see the image and all class probabilities.")
            self.chart.set_probabilities((), None)
            self.image_view.show_path(None)
            self._update_overlay()
            return
        self.title.show_path(row.path)
        if row.status == STATUS_ERROR:
            self.verdict.setText(
                f"<span style='color:{css(ERROR_COLOR)}'><b>Error:</b> "
                f"{html.escape(row.error)}</span>"
            )
            self.chart.set_probabilities((), None)
        else:
            name = self._class_names[row.top_index] if row.top_index is not None else "?"
            # Judged here, not read from row.status: the model may re-judge its rows after
            # this panel hears of a new threshold.
            status = status_of(row.prediction, threshold)
            color = css(STATUS_COLORS[status])
            # An unknown item is most likely none of the classes: the nearest is no headline.
            if status == STATUS_UNKNOWN:
                self.verdict.setText(
                    f"<b style='font-size:large;color:{color}'>Unknown item</b> &nbsp;"
                    f"{nearest_class(html.escape(name), row.confidence)}"
                )
            else:
                self.verdict.setText(
                    f"<b style='font-size:large'>{html.escape(name)}</b> &nbsp;"
                    f"{percent(row.confidence)} &nbsp;"
                    f"<span style='color:{color}'>{STATUS_LABELS[status]}</span>"
                )
            self.chart.set_probabilities(
                self._class_names,
                row.prediction.probabilities,
                highlight=row.top_index,
                threshold=threshold,
                top_color=STATUS_COLORS[status],
            )
        if not changed_image:
            return
        if row.status == STATUS_ERROR:
            # Nothing readable to show; the verdict above already says why.
            self.image_view.show_path(None, "No preview: the file could not be read")
        else:
            self.image_view.show_path(row.prediction.path)
        self._update_overlay()


class ScrolledPane(QScrollArea):
    """A pane scrolled when the screen is too low for it (the preview's image, chart and
    picker on a 1024x600 netbook or at 2x scale), so the key legend and status bar below
    stay in view; never narrower than the pane, whose right side the splitter would cut
    off out of reach."""

    def __init__(self, pane: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidget(pane)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # No Tab stop: focused, it showed nothing and no key did anything a worker would
        # see. The wheel and the scroll bar still scroll it.
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # A scroll area brings a child into view only when Tab moves within it; Tab from
        # the table left the class picker focused out of sight on a low screen.
        QApplication.instance().focusChanged.connect(self._show_focused)

    @Slot(QWidget, QWidget)
    def _show_focused(self, _old: QWidget | None, new: QWidget | None) -> None:
        if new is not None and self.widget().isAncestorOf(new):
            self.ensureWidgetVisible(new)

    def minimumSizeHint(self) -> QSize:
        bar = self.verticalScrollBar().sizeHint().width()
        width = self.widget().minimumSizeHint().width() + bar + 2 * self.frameWidth()
        return QSize(width, super().minimumSizeHint().height())

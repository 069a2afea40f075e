"""The window on a small screen and without a mouse: what fits, where the keyboard goes, what
is seen of it and what a screen reader hears.

Qt's offscreen platform has one 800x800 screen, smaller than the window's first size, as a
netbook at a station (1024x600) or a laptop at 2x scale (960x540) is.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QAccessible, QColor, QPalette, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from desktop.gui.main_window import FIRST_SIZE, WATCHING_LABEL_WIDTH
from desktop.gui.results_model import COL_STATUS
from fixtures_images import write_solid
from rich_text import as_read
from tiny_model import PROTOTYPE_COLOURS

TIMEOUT_MS = 60_000
LONG_NAME = "station-2_" + "x" * 180 + "_mouse.png"


@pytest.fixture
def window(make_window, tmp_path: Path, qtbot):
    """A window on its first start, with a folder of photos classified, one of a long name."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("Battery", "Printer", "Television"):
        write_solid(folder / f"{name.lower()}.png", PROTOTYPE_COLOURS[name])
    write_solid(folder / LONG_NAME, PROTOTYPE_COLOURS["Mouse"])
    window = make_window()
    window.last_summary = None
    window.add_paths([str(folder)])
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=TIMEOUT_MS)
    return window


def contrast(one: QColor, other: QColor) -> float:
    """WCAG's contrast ratio of two colours (1 to 21; AA asks 4.5 of text)."""

    def luminance(colour: QColor) -> float:
        channels = [c / 255 for c in (colour.red(), colour.green(), colour.blue())]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def screen_size(window):
    return window.screen().availableGeometry().size()


def test_the_window_and_its_summary_fit_a_small_screen(window, qtbot):
    screen = screen_size(window)
    assert screen.width() < FIRST_SIZE[0] and screen.height() < FIRST_SIZE[1]
    # The first size (1360x820) was kept on any screen: the key legend, the status bar and
    # Cancel were below or beside its edge. With the preview scrolled, nothing in the
    # window asks for more height than the screen has, results shown or not.
    assert window.width() <= screen.width() and window.height() <= screen.height()
    assert window.minimumSizeHint().height() <= screen.height()
    assert window.preview_scroll.widget() is window.preview

    dialog = window.show_summary()
    qtbot.addWidget(dialog)
    assert dialog.width() <= screen.width() and dialog.height() <= screen.height()


def test_a_stopped_sorts_advice_is_not_cut_by_the_model_line(window, qtbot):
    # At a station's 1024 px the model line took half the status bar, and a sort stopped
    # with Esc lost the end of its message, the part that says what to do.
    window.resize(800, window.height())  # the offscreen screen's width: narrower still
    advice = "Sorting stopped: 12 photos filed, each whole and in the manifest: sort again"
    window.statusBar().showMessage(f"{advice} to finish, or undo them")
    qtbot.wait(50)
    assert window.model_label.width() <= 0.3 * window.width()
    room = window.statusBar().width() - window.model_label.width()
    assert window.statusBar().fontMetrics().horizontalAdvance(advice) < room
    assert window.statusBar().toolTip().endswith("sort again to finish, or undo them")


SHARP_SUMMARY = """
from collections import Counter
from PySide6.QtWidgets import QApplication, QWidget
from desktop.core.summary import BatchSummary
from desktop.gui.summary_dialog import SummaryDialog

app = QApplication([])
summary = BatchSummary(["Battery"], 0.7, "m.onnx", "0" * 64, counts=Counter({("Battery", "ok"): 3}))
parent = QWidget()
pixmap = SummaryDialog(summary, parent).picture.pixmap()
print(pixmap.devicePixelRatio(), pixmap.width(), pixmap.deviceIndependentSize().width())
"""


def test_the_batch_summary_is_sharp_on_a_screen_scaled_200_percent():
    # Drawn at 1x, the picture was magnified on such a screen: soft text. Its own process,
    # for a screen scaled from the start as a station's is.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QT_SCALE_FACTOR": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SHARP_SUMMARY], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # Twice the pixels of the picture's size on the screen: 1800 for its 900.
    assert done.stdout.split() == ["2.0", "1800", "900.0"]


def test_the_keyboard_is_in_the_table_once_results_show(window):
    # Without it 1-9 and the arrows did nothing, and once the window was activated again
    # Qt gave the keys to the class filter, where Down filtered the table away.
    assert window.focusWidget() is window.view
    shown = window.proxy.rowCount()
    QTest.keyClick(window.view, Qt.Key.Key_Down)
    assert window.proxy.rowCount() == shown and window.view.currentIndex().row() == 1
    QTest.keyClick(window.view, Qt.Key.Key_2)  # the second class, for the row now current
    assert window.preview.row.confirmed == "Keyboard"  # the preview shows the current row


def test_tab_leaves_the_table_and_alt_keys_reach_the_filters(window, qtbot):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=TIMEOUT_MS)
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Backtab)  # to the control before it, not a cell
    assert QApplication.focusWidget() is window.filter_bar.threshold_spin
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_T, Qt.KeyboardModifier.AltModifier)
    assert QApplication.focusWidget() is window.filter_bar.status_combo
    QTest.keyClick(window.view, Qt.Key.Key_C, Qt.KeyboardModifier.AltModifier)
    assert QApplication.focusWidget() is window.filter_bar.class_combo


def test_long_names_are_shortened_in_the_middle_and_whole_in_the_tooltip(window, tmp_path):
    row = next(i for i, r in enumerate(window.results.rows) if r.name == LONG_NAME)
    window.view.select_proxy_row(window.proxy.mapFromSource(window.results.index(row, 0)).row())
    title = as_read(window.preview.title.text())
    name = title.splitlines()[0]
    # Cut at the right it lost ".png" and any sign of being cut.
    assert name.startswith("station-2_") and name.endswith("_mouse.png") and "…" in name
    assert as_read(window.preview.title.toolTip()) == str(tmp_path / "photos" / LONG_NAME)

    camera = tmp_path / ("camera-of-the-intake-desk-" + "y" * 120)
    camera.mkdir()
    window.set_watching(True, str(camera))
    shown = window.watching_label.text()
    assert shown.startswith("Watching camera-") and "…" in shown
    assert window.watching_label.fontMetrics().horizontalAdvance(shown) <= WATCHING_LABEL_WIDTH
    window.set_watching(False)


def test_the_wheel_scrolls_the_preview_and_never_picks_a_class(window):
    picker = window.preview.class_picker
    assert window.preview.row.confirmed is None
    centre = QPointF(picker.rect().center())
    wheel = QWheelEvent(
        centre,
        QPointF(picker.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, -120),  # one notch down, as over the pane scrolled on a small screen
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(picker, wheel)
    assert window.preview.row.confirmed is None and window.results.unsaved_review() == 0


def test_the_preview_pane_is_never_narrower_than_its_content(window):
    window.splitter.setSizes([10_000, 1])  # dragged to the right edge
    window.splitter.refresh()
    shown = window.preview_scroll.viewport().width()
    assert shown >= window.preview.minimumSizeHint().width()  # nothing cut off unreachable


def legend_lines(label, width: int) -> list[str]:
    """The lines Qt lays the label's text out in, `width` pixels wide (as QLabel does)."""
    from PySide6.QtGui import QTextLayout, QTextOption

    text = label.text()
    layout = QTextLayout(text, label.font())
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WordWrap)
    layout.setTextOption(option)
    layout.beginLayout()
    lines = []
    while (line := layout.createLine()).isValid():
        line.setLineWidth(width)
        lines.append(text[line.textStart() : line.textStart() + line.textLength()])
    layout.endLayout()
    return lines


def test_the_key_legend_wraps_between_keys_never_inside_one(window, qtbot):
    # At 800 px (or a 2x scale) it wrapped "· 8 / Printer" and "0 Washing / Machine": a key
    # at the end of one line, its class at the start of the next.
    legend = window.key_legend
    text = legend.text()
    assert "0\u00a0Washing\u00a0Machine" in text and "2\u00a0Keyboard" in text
    breaking = [i for i, char in enumerate(text) if char.isspace() and char != "\u00a0"]
    assert breaking and all(text[i - 1] == "·" for i in breaking)  # only after a "·"

    window.resize(800, window.height())
    qtbot.wait(50)
    room = legend.contentsRect().width()
    assert room <= 800
    for width in (room, room // 2):  # the window as it is, and at a 2x scale
        lines = legend_lines(legend, width)
        assert len(lines) >= 2, lines  # it does wrap there
        assert all(line.rstrip().endswith("·") for line in lines[:-1]), lines


def test_keys_on_the_closed_preview_picker_never_pick_a_class(window, qtbot):
    # A worker who tabbed to the picker and pressed Down "for the next photo" set the
    # photo's class: Qt's combo box commits the next item on an arrow key or a typed letter.
    picker = window.preview.class_picker
    picker.setFocus()
    for key in (
        Qt.Key.Key_Down,
        Qt.Key.Key_Up,
        Qt.Key.Key_PageDown,
        Qt.Key.Key_PageUp,
        Qt.Key.Key_End,
        Qt.Key.Key_Home,
        Qt.Key.Key_M,  # the first letter of Microwave and Mouse
    ):
        QTest.keyClick(picker, key)
        opened = picker.view().isVisible()
        picker.hidePopup()
        assert window.preview.row.confirmed is None, key
        assert opened == (key in (Qt.Key.Key_Down, Qt.Key.Key_Up)), key  # the list, to pick
    assert window.results.unsaved_review() == 0

    # From the opened list a class is chosen as ever: Down then Enter.
    QTest.keyClick(picker, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(picker.view().isVisible)
    QTest.keyClick(picker.view(), Qt.Key.Key_Down)
    QTest.keyClick(picker.view(), Qt.Key.Key_Return)
    assert window.preview.row.confirmed == picker.itemData(1)


def selection_colour(view):
    """The colour the view paints its current row in, beside the text of its first cell."""
    rect = view.visualRect(view.currentIndex())
    return view.viewport().grab().toImage().pixelColor(rect.left() + 2, rect.top() + 2)


def test_tab_shows_the_table_lost_the_keys_and_stops_only_where_keys_do_something(window, qtbot):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=TIMEOUT_MS)
    window.view.setFocus()
    window.view.select_proxy_row(1)
    focused = selection_colour(window.view)
    # The preview's scroll area took a Tab stop that showed nothing and did nothing.
    QTest.keyClick(window.view, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is window.preview.class_picker
    assert window.preview_scroll.focusPolicy() == Qt.FocusPolicy.NoFocus
    # The selected row looked the same with the keys elsewhere: digits and Enter seemed to
    # still apply to it. (Fusion's own unfocused blue is a shade off: 48,140,198.)
    unfocused = selection_colour(window.view)
    channels = zip(unfocused.getRgb(), focused.getRgb(), strict=True)
    assert sum((a - b) ** 2 for a, b in channels) ** 0.5 > 100, (unfocused, focused)
    palette = window.view.palette()
    text = palette.color(QPalette.ColorGroup.Inactive, QPalette.ColorRole.HighlightedText)
    assert contrast(unfocused, text) >= 4.5
    window.view.setFocus()
    assert selection_colour(window.view) == focused


def heard(widget, what=QAccessible.Text.Name) -> str:
    """What a screen reader is told of `widget` (its name, or `what`)."""
    return QAccessible.queryAccessibleInterface(widget).text(what)


def test_a_screen_reader_hears_a_name_for_each_part_and_the_summarys_counts(window, qtbot):
    # Unnamed, a screen reader said "table", "progress bar", "combo box" and nothing for
    # the pictures; and the picker's value read as a second prediction.
    preview = window.preview
    assert heard(window.view) == "Results"
    assert heard(preview.image_view) == "Photo"
    assert heard(window.progress_panel.bar) == "Progress"
    # A combo box's name is its value on Linux; its label is told as a relation.
    picker = QAccessible.queryAccessibleInterface(preview.class_picker)
    [(label, _relation)] = picker.relations(QAccessible.RelationFlag.Label)
    assert label.object() is preview.class_picker_label and label.object().isVisible()
    assert label.text(QAccessible.Text.Name) == "Confirmed class:"
    assert preview.class_picker.accessibleName() == "Confirmed class"  # elsewhere

    window.view.select_proxy_row(0)
    QTest.keyClick(window.view, Qt.Key.Key_2)  # a person's Keyboard
    dialog = window.show_summary()
    qtbot.addWidget(dialog)
    assert heard(dialog.picture) == "Batch summary chart"
    said = heard(dialog.picture, QAccessible.Text.Description)
    assert said.startswith("4 photos") and "Keyboard: 1 ok · 0 to review" in said
    assert "Battery: 0 ok · 0 to review" in said and "0 could not be read" in said


def text_colours(rich_text: str) -> list[QColor]:
    return [QColor(value) for value in re.findall(r"color:\s*(#[0-9a-fA-F]{6}|\w+)", rich_text)]


def test_status_and_folder_text_read_at_aa_contrast_on_the_window_and_the_rows(window):
    # "needs review" in amber was 4.0:1 on the window and 4.3:1 on the alternate rows, the
    # preview's folder line in gray 3.4:1: under the 4.5:1 that text needs (WCAG AA).
    window.filter_bar.threshold_spin.setValue(100)  # every row needs review
    palette = window.view.palette()
    rows = [
        palette.color(role) for role in (QPalette.ColorRole.Base, QPalette.ColorRole.AlternateBase)
    ]
    status = window.proxy.index(0, COL_STATUS)
    assert status.data() == "needs review"
    colour = QColor(status.data(Qt.ItemDataRole.ForegroundRole))
    assert min(contrast(colour, row) for row in rows) >= 4.5

    window.view.select_proxy_row(0)
    pane = window.preview.palette().color(QPalette.ColorRole.Window)
    coloured = text_colours(window.preview.title.text()) + text_colours(
        window.preview.verdict.text()
    )
    assert len(coloured) == 2  # the folder and "needs review"
    assert min(contrast(colour, pane) for colour in coloured) >= 4.5
    legend = window.preview.legend  # "Dashed line: review threshold (100 %)"
    assert legend.isVisible() and legend.text().startswith("Dashed line")
    painted = legend.grab().toImage()
    pixels = (
        painted.pixelColor(x, y) for y in range(painted.height()) for x in range(painted.width())
    )
    darkest = min(pixels, key=QColor.lightness)  # the glyphs' cores: the text's own colour
    assert contrast(darkest, pane) >= 4.5


def test_progress_and_cancel_stay_on_the_toolbar_of_a_laptop_at_2x(window, qtbot):
    # A 1366x768 laptop at 2x scale gives the window 683 logical pixels: the progress bar
    # and Cancel went into the toolbar's "»" menu, which only a mouse opens.
    window.resize(683, 384)
    qtbot.waitUntil(lambda: window.width() == 683)
    panel = window.progress_panel
    qtbot.waitUntil(lambda: panel.isVisible())
    toolbar = window.toolbar
    assert panel.cancel_button.isVisible() and panel.bar.width() >= 100
    right_edge = panel.mapTo(toolbar, QPoint(panel.width(), 0)).x()
    assert right_edge <= toolbar.width()


def test_tab_from_the_table_brings_the_class_picker_into_view(window, qtbot):
    # At 2x (683x384) the preview pane scrolls; read down to its chart, a Tab from the
    # table focused the class picker out of sight, and Down then opened its list alone.
    window.resize(683, 384)
    qtbot.waitUntil(lambda: window.width() == 683)
    window.view.select_proxy_row(0)
    bar = window.preview_scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(bar.maximum())
    picker = window.preview.class_picker
    assert picker.visibleRegion().isEmpty()
    window.activateWindow()
    window.view.setFocus()
    qtbot.waitUntil(window.view.hasFocus)
    QTest.keyClick(window.view, Qt.Key.Key_Tab)
    qtbot.waitUntil(picker.hasFocus)
    qtbot.waitUntil(lambda: not picker.visibleRegion().isEmpty())
    assert picker.visibleRegion().boundingRect().size() == picker.size()


def test_the_progress_line_leaves_out_the_rate_when_the_bar_is_narrow(qtbot):
    # At 2x the bar's 180 pixels cut "123 / 4567 images · 182.3 images/s" in two lines,
    # both half hidden: the count must stay readable; the rate is in the tooltip.
    from desktop.gui.progress_panel import ProgressPanel

    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.show()
    for width, shown in ((700, "123 / 4567 images · 182.3 images/s"), (180, "123 / 4567 images")):
        panel.bar.setFixedWidth(width)
        qtbot.waitUntil(lambda width=width: panel.bar.width() == width)
        panel.set_progress(123, 4567, 182.3)
        assert panel.bar.format() == shown
        assert panel.bar.toolTip() == "123 / 4567 images · 182.3 images/s"

"""GUI building blocks without a window or an engine: table model, proxy, chart, settings.

Rows are real `Prediction`s with chosen probabilities, so each assertion states exactly
what the table must show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QByteArray, QModelIndex, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette

from desktop.core.argtypes import batch_size, thread_count
from desktop.core.cli import build_parser as cli_build_parser
from desktop.core.preprocessing import ImageLoadError, load_rgb
from desktop.core.results import Prediction
from desktop.gui.app import AppOptions, build_parser, parse_args
from desktop.gui.preview import heatmap_image, load_preview_image
from desktop.gui.probability_chart import _BAR_COLOR, _TOP_COLOR, ProbabilityChart
from desktop.gui.results_filter import ResultsFilterProxy
from desktop.gui.results_model import (
    COL_CLASS,
    COL_CONFIDENCE,
    COL_FILE,
    COL_FOLDER,
    COL_STATUS,
    COL_TOP3,
    FIRST_PROB_COLUMN,
    SORT_ROLE,
    ResultsModel,
)
from desktop.gui.review_threshold import ReviewThreshold
from desktop.gui.settings import AppSettings
from fixtures_images import write_grey16_png, write_rgba_png
from rich_text import as_read
from tiny_model import CLASS_NAMES

DISPLAY = Qt.ItemDataRole.DisplayRole


def probs(top: int, confidence: float, runner_up: int | None = None) -> np.ndarray:
    """10 probabilities: `confidence` on `top`, the rest on `runner_up` (or spread evenly)."""
    values = np.zeros(len(CLASS_NAMES), dtype=np.float32)
    rest = 1.0 - confidence
    if runner_up is None:
        values[:] = rest / (len(CLASS_NAMES) - 1)
    else:
        values[runner_up] = rest
    values[top] = confidence
    return values


def prediction(name: str, top: int, confidence: float, runner_up: int | None = None):
    return Prediction(f"/photos/{name}", probs(top, confidence, runner_up))


@pytest.fixture
def threshold() -> ReviewThreshold:
    return ReviewThreshold()  # the default, not remembered anywhere


@pytest.fixture
def model(threshold: ReviewThreshold) -> ResultsModel:
    return ResultsModel(CLASS_NAMES, threshold)


@pytest.fixture
def proxy(model: ResultsModel) -> ResultsFilterProxy:
    proxy = ResultsFilterProxy()
    proxy.setSourceModel(model)
    return proxy


def column(proxy: ResultsFilterProxy, col: int, role: int = DISPLAY) -> list[object]:
    return [proxy.index(r, col).data(role) for r in range(proxy.rowCount())]


def test_appends_one_insert_notification_per_batch(model: ResultsModel) -> None:
    inserted: list[tuple[int, int]] = []
    model.rowsInserted.connect(lambda _parent, first, last: inserted.append((first, last)))
    model.append_predictions([prediction(f"a{i}.jpg", 0, 0.9) for i in range(32)])
    model.append_predictions([prediction(f"b{i}.jpg", 1, 0.9) for i in range(5)])
    model.append_predictions([])
    assert inserted == [(0, 31), (32, 36)]
    assert model.rowCount() == 37
    assert model.columnCount() == FIRST_PROB_COLUMN + len(CLASS_NAMES)


def test_one_row_per_photo_a_changed_one_reclassified_in_its_row(model: ResultsModel) -> None:
    from dataclasses import replace

    run = replace(prediction("a.jpg", 0, 0.9), file_state=(100, 1))
    model.append_predictions([run, prediction("b.jpg", 1, 0.9)])
    row = model.row_at(0)
    model.set_confirmed([0, 1], CLASS_NAMES[2])
    renewed: list[bool] = []
    model.reclassified.connect(lambda: renewed.append(True))

    # A reopened CSV naming the photos again, once twice: the table's rows and the
    # person's word stay; a photo new to the table gets the CSV's last row for it.
    csv_rows = [prediction("a.jpg", 3, 0.9), prediction("c.jpg", 4, 0.5)]
    model.append_predictions([*csv_rows, prediction("c.jpg", 5, 0.9)])
    assert model.rowCount() == 3 and not renewed
    confirmed = CLASS_NAMES[2]
    assert model.confirmed_classes() == {"/photos/a.jpg": confirmed, "/photos/b.jpg": confirmed}
    assert model.row_at(2).predicted == CLASS_NAMES[5]

    # A run over the photo after it changed: the same row object (the preview holds it)
    # shows the new class, without the confirmation given to the photo that was there.
    model.append_predictions([replace(prediction("a.jpg", 6, 0.9), file_state=(120, 9))])
    assert model.rowCount() == 3 and renewed and model.row_at(0) is row
    assert row.predicted == CLASS_NAMES[6] and row.confirmed is None
    assert model.listed_states() == {
        "/photos/a.jpg": (120, 9),
        "/photos/b.jpg": None,
        "/photos/c.jpg": None,
    }


def test_a_run_started_before_a_csv_reopened_keeps_the_csvs_classes(model: ResultsModel) -> None:
    from dataclasses import replace

    # A folder dropped while its exported CSV was being reopened: the run, which listed no
    # row when it started, classifies the photos the CSV then brought back with a person's
    # classes. Those rows are taken as they are, as a run started after them would.
    reopened = [prediction("a.jpg", 3, 0.9), prediction("b.jpg", 4, 0.9)]
    failed = Prediction.failed("/photos/c.jpg", "cut short")  # a CSV's error row: retried
    model.append_predictions([*reopened, failed], {"/photos/a.jpg": CLASS_NAMES[7]})
    run = [prediction(name, 1, 0.9) for name in ("a.jpg", "b.jpg", "c.jpg")]
    model.append_predictions([replace(p, file_state=(100, 1)) for p in run])
    assert model.confirmed_classes() == {"/photos/a.jpg": CLASS_NAMES[7]}
    assert [model.row_at(i).predicted for i in range(3)] == [
        CLASS_NAMES[3],
        CLASS_NAMES[4],
        CLASS_NAMES[1],  # the error row, now read
    ]


def test_an_unknown_items_class_cells_say_nearest_and_are_greyed(model: ResultsModel) -> None:
    # A blank frame at 26 % "Washing Machine", a microwave-like lookalike at 98.7 %: a
    # worker scanning the Predicted class column must not bin them as that class.
    sure = prediction("mouse.jpg", 4, 0.9, runner_up=1)
    odd = Prediction("/photos/blank.jpg", probs(9, 0.26), unknown_score=3.2, unknown=True)
    model.append_predictions([sure, odd])
    cell = lambda row, col, role=DISPLAY: model.index(row, col).data(role)  # noqa: E731
    assert (cell(1, COL_CLASS), cell(1, COL_STATUS)) == ("(Washing Machine)", "unknown item")
    assert cell(1, COL_CONFIDENCE) == "26.0 %"
    foreground = Qt.ItemDataRole.ForegroundRole
    grey = QColor(85, 85, 85)
    assert cell(1, COL_CLASS, foreground) == cell(1, COL_CONFIDENCE, foreground) == grey
    tip = as_read(cell(1, COL_CLASS, Qt.ItemDataRole.ToolTipRole))
    assert tip == (
        "An unknown item: most likely none of the 10 classes. The nearest is Washing Machine, "
        "at 26.0 % among the known classes."
    )
    assert model.row_at(1).predicted == "Washing Machine"  # what the CSV and the sort keep
    # A known item's cells are as they were.
    assert (cell(0, COL_CLASS), cell(0, COL_CLASS, foreground)) == ("Mouse", None)
    assert cell(0, COL_CONFIDENCE, Qt.ItemDataRole.ToolTipRole) is None


def test_cells_show_class_confidence_top3_status_and_probabilities(model: ResultsModel) -> None:
    model.append_predictions([prediction("mouse.jpg", 4, 0.9, runner_up=1)])
    cell = lambda col: model.index(0, col).data(DISPLAY)  # noqa: E731
    assert cell(COL_FILE) == "mouse.jpg"
    assert cell(COL_FOLDER) == "/photos"
    assert cell(COL_CLASS) == "Mouse"
    assert cell(COL_CONFIDENCE) == "90.0 %"
    assert cell(COL_TOP3) == "Mouse 90 % · Keyboard 10 %"  # Battery's 0 % is left out
    assert cell(COL_STATUS) == "ok"
    assert cell(FIRST_PROB_COLUMN + 4) == "90.0 %"
    assert model.headerData(FIRST_PROB_COLUMN + 9, Qt.Orientation.Horizontal) == "Washing Machine"
    tip = model.index(0, COL_FILE).data(Qt.ItemDataRole.ToolTipRole)
    assert as_read(tip) == "/photos/mouse.jpg"


def test_a_confidence_just_under_the_threshold_never_reads_as_reaching_it(
    model: ResultsModel,
) -> None:
    # 0.6996 rounds to "70.0 %", which would sit beside "needs review (under 70 %)".
    model.append_predictions([prediction("unsure.jpg", 4, 0.6996), prediction("sure.jpg", 4, 0.7)])
    cell = lambda row, col: model.index(row, col).data(DISPLAY)  # noqa: E731
    assert (cell(0, COL_CONFIDENCE), cell(0, COL_STATUS)) == ("69.9 %", "needs review")
    assert cell(0, COL_TOP3).startswith("Mouse 69 % · ")
    tip = model.index(0, COL_STATUS).data(Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("Confidence 69.9 % is below the review threshold 70.0 %")
    # A float32 0.7 is 0.699999988; the CSV writes 0.7, and it reaches 70 % as written.
    assert (cell(1, COL_CONFIDENCE), cell(1, COL_STATUS)) == ("70.0 %", "ok")


def test_error_rows_show_the_reason_in_cell_and_tooltip(model: ResultsModel) -> None:
    model.append_predictions([Prediction.failed("/photos/bad.jpg", "corrupt or truncated image")])
    status = model.index(0, COL_STATUS)
    assert status.data(DISPLAY) == "error"
    # The wide Top 3 cell, empty for an error, gives the reason in full.
    assert model.index(0, COL_TOP3).data(DISPLAY) == "corrupt or truncated image"
    assert model.index(0, COL_CLASS).data(DISPLAY) == ""
    tip = as_read(status.data(Qt.ItemDataRole.ToolTipRole))
    assert tip.startswith("Could not classify /photos/bad.jpg:\n")  # the reason on its own line
    assert "corrupt or truncated image" in tip
    assert status.data(Qt.ItemDataRole.ForegroundRole) == QColor(190, 30, 30)
    assert model.index(0, COL_CLASS).data(DISPLAY) == ""
    assert model.index(0, COL_CONFIDENCE).data(SORT_ROLE) == -1.0

    # A class set on an error row (an older version's CSV) does not make it readable.
    model.append_predictions(
        [Prediction.failed("/photos/old.jpg", "empty file (0 bytes)")],
        confirmed={"/photos/old.jpg": "Mouse"},
    )
    assert model.index(1, COL_STATUS).data(DISPLAY) == "error"
    assert "empty file" in model.index(1, COL_STATUS).data(Qt.ItemDataRole.ToolTipRole)
    assert model.state_counts()["error"] == 2


def test_sorting_by_confidence_is_numeric_not_textual(
    model: ResultsModel, proxy: ResultsFilterProxy
) -> None:
    # As text "100.0 %" < "15.0 %" < "50.0 %"; as numbers 15 < 50 < 100.
    model.append_predictions(
        [
            prediction("high.jpg", 0, 1.0),
            prediction("low.jpg", 1, 0.15),
            prediction("mid.jpg", 2, 0.5),
        ]
    )
    model.append_predictions([Prediction.failed("/photos/broken.jpg", "empty file (0 bytes)")])
    proxy.sort(COL_CONFIDENCE, Qt.SortOrder.AscendingOrder)
    assert column(proxy, COL_FILE) == ["broken.jpg", "low.jpg", "mid.jpg", "high.jpg"]
    assert column(proxy, COL_CONFIDENCE) == ["", "15.0 %", "50.0 %", "100.0 %"]
    proxy.sort(COL_CONFIDENCE, Qt.SortOrder.DescendingOrder)
    assert column(proxy, COL_FILE) == ["high.jpg", "mid.jpg", "low.jpg", "broken.jpg"]
    # A per-class probability column sorts numerically too.
    proxy.sort(FIRST_PROB_COLUMN + 1, Qt.SortOrder.DescendingOrder)
    assert column(proxy, COL_FILE)[0] == "low.jpg"


def test_new_batches_land_in_sorted_position(
    model: ResultsModel, proxy: ResultsFilterProxy
) -> None:
    proxy.sort(COL_CONFIDENCE, Qt.SortOrder.DescendingOrder)
    model.append_predictions([prediction("a.jpg", 0, 0.7), prediction("b.jpg", 0, 0.3)])
    model.append_predictions([prediction("c.jpg", 0, 0.5)])
    assert column(proxy, COL_FILE) == ["a.jpg", "c.jpg", "b.jpg"]


def test_a_large_sorted_table_takes_batches_in_place_once_a_second(
    qtbot, model: ResultsModel, proxy: ResultsFilterProxy, monkeypatch
) -> None:
    # Re-sorting 20,000 rows for every batch of 32 froze the window during a run.
    import desktop.gui.results_model as results_model

    monkeypatch.setattr(results_model, "LARGE_TABLE_ROWS", 3)  # a large table, for the test
    proxy.sort(COL_CONFIDENCE, Qt.SortOrder.DescendingOrder)
    model.append_predictions([prediction("a.jpg", 0, 0.7), prediction("b.jpg", 0, 0.3)])
    assert column(proxy, COL_FILE) == ["a.jpg", "b.jpg"]  # small still: sorted at once
    layouts: list[None] = []
    model.layoutChanged.connect(lambda *_: layouts.append(None))
    for name, confidence in (("c.jpg", 0.5), ("d.jpg", 0.9), ("e.jpg", 0.1)):
        model.append_predictions([prediction(name, 0, confidence)])
    assert column(proxy, COL_FILE) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]  # waiting
    qtbot.waitUntil(lambda: len(layouts) == 1, timeout=5_000)
    assert column(proxy, COL_FILE) == ["d.jpg", "a.jpg", "c.jpg", "b.jpg", "e.jpg"]
    qtbot.wait(results_model.RESORT_PAUSE_MS + 200)
    assert len(layouts) == 1  # the three batches took one re-sort


def test_filters_by_class_and_by_status(model: ResultsModel, proxy: ResultsFilterProxy) -> None:
    model.append_predictions(
        [
            prediction("battery_ok.jpg", 0, 0.95),
            prediction("battery_unsure.jpg", 0, 0.4),
            prediction("mouse_ok.jpg", 4, 0.9),
            Prediction.failed("/photos/empty.jpg", "empty file (0 bytes)"),
        ]
    )
    proxy.set_class_filter(0)
    assert column(proxy, COL_FILE) == ["battery_ok.jpg", "battery_unsure.jpg"]
    proxy.set_status_filter("review")
    assert column(proxy, COL_FILE) == ["battery_unsure.jpg"]
    proxy.set_class_filter(None)
    proxy.set_status_filter("error")
    assert column(proxy, COL_FILE) == ["empty.jpg"]
    proxy.set_status_filter("ok")
    assert column(proxy, COL_FILE) == ["battery_ok.jpg", "mouse_ok.jpg"]
    proxy.set_status_filter(None)
    assert proxy.rowCount() == 4
    with pytest.raises(ValueError, match="unknown status"):
        proxy.set_status_filter("maybe")


def test_threshold_change_rejudges_rows_without_new_predictions(
    model: ResultsModel, proxy: ResultsFilterProxy, threshold: ReviewThreshold
) -> None:
    model.append_predictions([prediction("a.jpg", 0, 0.55), prediction("b.jpg", 1, 0.75)])
    proxy.set_status_filter("review")
    assert column(proxy, COL_FILE) == ["a.jpg"]
    changed: list[tuple[int, int, int]] = []
    model.dataChanged.connect(
        lambda top, bottom, _roles: changed.append((top.row(), bottom.row(), top.column()))
    )
    threshold.set_value(0.8)
    assert model.threshold == 0.8
    assert changed == [(0, 1, COL_STATUS)]
    assert column(proxy, COL_FILE) == ["a.jpg", "b.jpg"]  # the filtered view follows
    threshold.set_value(0.8)  # the same value: nothing to re-judge
    assert len(changed) == 1
    threshold.set_value(0.5)
    assert proxy.rowCount() == 0
    assert model.state_counts() == {
        "ok": 2,
        "review": 0,
        "unknown": 0,
        "error": 0,
        "confirmed": 0,
        "corrected": 0,
    }
    assert model.index(0, COL_STATUS).data(DISPLAY) == "ok"


def test_clear_and_new_classes_reset_the_model(model: ResultsModel) -> None:
    model.append_predictions([prediction("a.jpg", 0, 0.9)])
    model.set_class_names(("Cat", "Dog"))
    assert model.rowCount() == 0
    assert model.columnCount() == FIRST_PROB_COLUMN + 2
    assert model.rowCount(model.index(0, 0)) == 0
    assert model.rowCount(QModelIndex()) == 0


def test_new_classes_reset_a_sort_by_a_column_that_is_gone(model: ResultsModel) -> None:
    model.append_predictions([prediction("a.jpg", 0, 0.9), prediction("b.jpg", 9, 0.8)])
    model.sort(FIRST_PROB_COLUMN + 9, Qt.SortOrder.DescendingOrder)  # "Washing Machine"
    model.set_class_names(("Cat", "Dog"))
    assert model.sort_column == -1  # arrival order: column 15 does not exist any more
    model.append_predictions(
        [Prediction("/p/dog.jpg", np.array([0.2, 0.8])), Prediction("/p/cat.jpg", [0.7, 0.3])]
    )
    assert column_of(model, COL_FILE) == ["dog.jpg", "cat.jpg"]
    assert column_of(model, COL_CLASS) == ["Dog", "Cat"]


def column_of(model: ResultsModel, col: int) -> list[object]:
    return [model.index(r, col).data(DISPLAY) for r in range(model.rowCount())]


def test_a_file_name_that_is_not_utf8_is_shown_with_its_bytes_escaped(
    model: ResultsModel,
) -> None:
    # Qt drops lone surrogates: "caf\udce9.jpg" would show as "caf.jpg", another name.
    model.append_predictions([Prediction("/photos/caf\udce9.jpg", probs(0, 0.9))])
    assert model.index(0, COL_FILE).data(DISPLAY) == "caf\\xe9.jpg"
    tip = model.index(0, COL_FILE).data(Qt.ItemDataRole.ToolTipRole)
    assert as_read(tip) == "/photos/caf\\xe9.jpg"
    assert model.row_at(0).prediction.path == "/photos/caf\udce9.jpg"  # opens the real file


def test_chart_paints_one_bar_per_class_with_the_top_highlighted(qtbot) -> None:
    chart = ProbabilityChart()
    qtbot.addWidget(chart)
    chart.resize(400, chart.sizeHint().height())
    chart.set_probabilities(CLASS_NAMES, probs(4, 0.7, runner_up=1), highlight=4, threshold=0.6)
    chart.resize(400, chart.sizeHint().height())
    image = chart.grab().toImage()
    top = _count_colour(image, _TOP_COLOR)
    other = _count_colour(image, _BAR_COLOR)
    assert top > 0 and other > 0
    # Bar areas are proportional to the probabilities: 70 % vs 30 %.
    assert top / other == pytest.approx(0.7 / 0.3, rel=0.15)
    assert "Mouse: 70.0 %" in chart.toolTip()
    assert chart.sizeHint().height() >= len(CLASS_NAMES) * chart.fontMetrics().height()
    chart.set_probabilities((), None)
    assert chart.values == ()


def test_the_longest_class_name_predicted_in_bold_is_drawn_whole(qtbot) -> None:
    # Measured in the regular font, the bold name lost its first letter ("/ashing Machine").
    chart = ProbabilityChart()
    qtbot.addWidget(chart)
    chart.setFont(QFont("DejaVu Sans", 16))  # large: bold runs wider than the regular font
    longest = max(range(len(CLASS_NAMES)), key=lambda i: len(CLASS_NAMES[i]))
    chart.set_probabilities(CLASS_NAMES, probs(longest, 0.9), highlight=longest)
    chart.resize(500, chart.sizeHint().height())
    row_height = chart.fontMetrics().height() + 8
    label = chart.grab().toImage().copy(0, 4 + longest * row_height, 250, row_height)

    bold = QFont(chart.font())
    bold.setBold(True)
    whole = QImage(500, row_height, QImage.Format.Format_ARGB32)
    whole.fill(label.pixelColor(0, 0))
    painter = QPainter(whole)
    painter.setFont(bold)
    painter.setPen(chart.palette().color(QPalette.ColorRole.WindowText))
    painter.drawText(10, row_height - 8, CLASS_NAMES[longest])
    painter.end()
    assert _count_ink(label) >= 0.97 * _count_ink(whole)


def test_long_class_names_are_cut_short_not_the_bars_or_their_values(qtbot) -> None:
    # A retrained model's "Large Household Appliance (Washing Machine)": the labels took
    # the chart's width, the bars shrank to nothing and "99.3 %" ran off its edge.
    names = [f"Large Household Appliance number {i} (long)" for i in range(len(CLASS_NAMES))]
    chart = ProbabilityChart()
    qtbot.addWidget(chart)
    chart.set_probabilities(names, probs(0, 1.0), highlight=0)
    chart.resize(388, chart.sizeHint().height())
    image = chart.grab().toImage()
    middle = 4 + (chart.fontMetrics().height() + 8) // 2  # the first (highlighted) row
    bar = sum(image.pixelColor(x, middle) == _TOP_COLOR for x in range(image.width()))
    assert bar >= 58  # the bar of 100 %: at least the width kept for bars
    assert names[0] in chart.toolTip()


def _count_ink(image: QImage) -> int:
    """Dark grey pixels: text, not the coloured bars."""
    count = 0
    for y in range(image.height()):
        for x in range(image.width()):
            r, g, b, _ = image.pixelColor(x, y).getRgb()
            count += max(r, g, b) < 128 and max(r, g, b) - min(r, g, b) < 30
    return count


def _count_colour(image, colour: QColor) -> int:
    count = 0
    for y in range(image.height()):
        for x in range(0, image.width(), 2):
            if image.pixelColor(x, y) == colour:
                count += 1
    return count


def test_where_the_model_looked_is_brighter_not_only_another_colour() -> None:
    # A jet scale's red peak and green edge both look yellow to a red-green colour-blind
    # worker: over the photo, more heat must be lighter, all the way up.
    heat = np.tile(np.linspace(0.0, 1.0, 11, dtype=np.float32), (2, 1))
    shown = QImage(11, 2, QImage.Format.Format_RGB32)
    shown.fill(QColor(128, 128, 128))  # a grey photo
    painter = QPainter(shown)
    painter.drawImage(0, 0, heatmap_image(heat))
    painter.end()
    lightness = [shown.pixelColor(x, 0).lightness() for x in range(11)]
    assert lightness == sorted(lightness) and lightness[-1] > 2 * lightness[0], lightness


def test_preview_decodes_scaled_and_upright(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    Image.new("RGB", (3000, 2000), (0, 255, 0)).save(big)
    image = load_preview_image(str(big), max_side=500)
    assert max(image.width(), image.height()) <= 500
    assert image.width() > image.height()
    # EXIF orientation 6: stored 64x32, displayed 32 wide and 64 high.
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 32), (255, 0, 0)).save(rotated, exif=exif)
    upright = load_preview_image(str(rotated))
    assert (upright.width(), upright.height()) == (32, 64)
    with pytest.raises(ImageLoadError, match="file not found"):
        load_preview_image(str(tmp_path / "missing.jpg"))


@pytest.mark.parametrize(
    ("write", "colour"),
    [(write_grey16_png, (128, 128, 128)), (write_rgba_png, (255, 255, 255))],
    ids=["16-bit grey", "transparent"],
)
def test_preview_shows_the_pixels_the_model_sees(tmp_path: Path, write, colour) -> None:
    # A 16-bit half grey is grey to the model: Pillow's own convert would clip it to white.
    # Transparency is composited onto white for the model, so the preview shows white.
    path = write(tmp_path / "image.png")
    image = load_preview_image(str(path))
    seen = image.pixelColor(2, 2)  # the left edge: the transparent half of the RGBA image
    assert (seen.red(), seen.green(), seen.blue()) == colour
    model_input = load_rgb(path, (image.height(), image.width()))
    assert tuple(model_input[2, 2]) == colour


def test_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    first = AppSettings.at(path)
    assert first.review_threshold(0.6) == 0.6
    assert first.hidden_classes() == set()
    first.set_review_threshold(0.35)
    first.set_hidden_classes({"PCB"})
    first.set_last_dir("export", tmp_path)
    first.set_blob("geometry", QByteArray(b"\x01\xd9\xd0\xcb layout"))
    second = AppSettings.at(path)
    assert second.review_threshold(0.6) == 0.35
    assert second.hidden_classes() == {"PCB"}
    assert second.last_dir("export") == str(tmp_path)
    assert second.last_dir("images") == str(Path.home())  # never set: home
    assert bytes(second.blob("geometry")) == b"\x01\xd9\xd0\xcb layout"
    assert json.loads(path.read_text())["results/review_threshold"] == 0.35  # plain JSON

    # Hand-edited values of the wrong kind, or a file that is no JSON: the defaults.
    path.write_text('{"results/review_threshold": "garbage", "results/hidden_classes": 3}')
    assert AppSettings.at(path).review_threshold(0.6) == 0.6
    assert AppSettings.at(path).hidden_classes() == set()
    path.write_text("[" * 100_000)
    assert AppSettings.at(path).review_threshold(0.6) == 0.6

    # Two windows open: each change is added to the file as it is, not to a copy of it
    # read at start; a value of the wrong kind (1 for true) is written over when set.
    path.write_text('{"preview/show_cam": 1}')
    one, two = AppSettings.at(path), AppSettings.at(path)
    one.set_last_dir("images", tmp_path)
    two.set_last_dir("export", tmp_path)
    two.set_show_cam(True)
    both = AppSettings.at(path)
    assert both.last_dir("images") == both.last_dir("export") == str(tmp_path)
    assert both.show_cam() is True


PICKLING_SETTINGS = """
import os, sys
from PySide6.QtCore import QSettings

class RunsCode:
    def __reduce__(self):
        return (os.system, (f"echo ran > {sys.argv[2]}",))

settings = QSettings(sys.argv[1], QSettings.Format.IniFormat)
for key in ("results/review_threshold", "dirs/images", "window/geometry", "preview/show_cam"):
    settings.setValue(key, RunsCode())
settings.sync()
"""


def test_a_settings_file_holding_a_python_object_runs_nothing(tiny_model_path, tmp_path):
    # PySide6 unpickles an object stored in a QSettings file when the value is read: whoever
    # could edit the app's settings could run code at its start. The app reads JSON only.
    config, marker = tmp_path / "config", tmp_path / "code-ran"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(config)}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    folder = config / "E-Waste Sorter"
    folder.mkdir(parents=True)
    for name in ("ewaste-app.conf", "ewaste-app.ini", "ewaste-app.json"):
        done = subprocess.run(
            [sys.executable, "-c", PICKLING_SETTINGS, str(folder / name), str(marker)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert b"PyObjectWrapper" in (folder / "ewaste-app.json").read_bytes()

    done = subprocess.run(
        [sys.executable, "-m", "desktop.gui.app", "--check", "--model", str(tiny_model_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "ewaste-app --check: window shown" in done.stdout, done.stderr
    assert not marker.exists()


def test_an_earlier_releases_settings_are_carried_over_once_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Releases before the JSON file kept settings with QSettings: after an upgrade, a
    # station's 85 % threshold fell back to 70 % unsaid, and photos it would have sent to
    # review were sorted into class folders.
    from PySide6.QtCore import QSettings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = tmp_path / "config" / "E-Waste Sorter"
    folder.mkdir(parents=True)
    photos, results = tmp_path / "shift 7", tmp_path / "Results, 2024"  # QSettings quotes ","
    photos.mkdir(), results.mkdir()
    old = QSettings(str(folder / "ewaste-app.conf"), QSettings.Format.IniFormat)
    old.setValue("results/review_threshold", 0.85)
    old.setValue("results/hidden_classes", ["Microwave", "Washing Machine"])
    old.setValue("preview/show_cam", True)
    old.setValue("dirs/folder", str(photos))
    old.setValue("dirs/export", str(results))
    old.setValue("window/geometry", QByteArray(b"\x01\xd9\xd0\xcb"))
    old.sync()
    del old

    settings = AppSettings()
    assert settings.path == folder / "ewaste-app.json"
    assert settings.review_threshold(0.7) == 0.85
    assert settings.hidden_classes() == {"Microwave", "Washing Machine"}
    assert settings.show_cam() and not settings.flip_average()
    assert settings.last_dir("folder") == str(photos)
    assert settings.last_dir("export") == str(results)
    assert settings.blob("geometry") is None  # a layout is not worth reading QSettings for
    assert json.loads(settings.path.read_text())["results/review_threshold"] == 0.85
    # Once: from now on the JSON file is the settings, whatever the old file says.
    settings.set_review_threshold(0.9)
    assert AppSettings().review_threshold(0.7) == 0.9


def test_command_line_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([]) == AppOptions()
    options = parse_args(["--model", "m.onnx", "--threads", "2", "--batch", "8", "a", "b"])
    assert options == AppOptions(model="m.onnx", threads=2, batch_size=8, paths=("a", "b"))
    # --batch as in ewaste-classify; the earlier --batch-size still works, unadvertised.
    assert parse_args(["--batch-size", "16"]).batch_size == 16
    assert "--batch N" in build_parser().format_help()
    assert "--batch-size" not in build_parser().format_help()
    for bad in (
        ["--threads", "0"],
        ["--threads", "100000"],
        ["--batch", "x"],
        ["--batch-size", "0"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse_args(bad)
        assert exit_info.value.code == 2
    # The same checks and messages as ewaste-classify: one shared argument type.
    err = capsys.readouterr().err
    assert "expected a whole number, got 'x'" in err
    assert "must be from 1 to 64, got 100000" in err
    for parser in (cli_build_parser(), build_parser()):
        assert parser._option_string_actions["--batch"].type is batch_size
        assert parser._option_string_actions["--threads"].type is thread_count

"""The objects that own the window's state, driven without a window: the review threshold
and the widgets that follow it, the model loader, the run controller's one queue, and the
run reporter's messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from desktop.core.engine import Engine
from desktop.core.model_info import ModelError
from desktop.core.results import DEFAULT_REVIEW_THRESHOLD, STATUS_OK, STATUS_REVIEW, Prediction
from desktop.gui.background import wait_for_background_calls
from desktop.gui.filter_bar import FilterBar
from desktop.gui.model_loader import ModelLoader, load_error_message
from desktop.gui.preview import PreviewPanel, wait_for_previews
from desktop.gui.results_model import ResultsModel
from desktop.gui.review_threshold import ReviewThreshold
from desktop.gui.run_controller import RunController
from desktop.gui.run_reporter import finished_text
from desktop.gui.settings import AppSettings
from desktop.gui.worker import RunSummary
from tiny_model import CLASS_NAMES, build_tiny_model, tiny_metadata

TIMEOUT_MS = 30_000  # two cores shared with other jobs


@pytest.fixture(autouse=True)
def no_background_job_outlives_its_test(qapp) -> Iterator[None]:
    yield
    assert wait_for_background_calls(TIMEOUT_MS)
    assert wait_for_previews(TIMEOUT_MS)


def confident(name: str, top: int, confidence: float) -> Prediction:
    probabilities = np.full(len(CLASS_NAMES), (1.0 - confidence) / (len(CLASS_NAMES) - 1))
    probabilities[top] = confidence
    return Prediction(f"/photos/{name}", probabilities)


# -- the review threshold ------------------------------------------------------------------------
def test_the_threshold_is_remembered_and_announces_real_changes_only(tmp_path: Path) -> None:
    path = tmp_path / "settings.ini"
    threshold = ReviewThreshold(AppSettings.at(path))
    assert threshold.value == pytest.approx(DEFAULT_REVIEW_THRESHOLD)  # nothing stored yet
    heard: list[float] = []
    threshold.changed.connect(heard.append)
    threshold.set_value(0.35)
    threshold.set_value(0.35)
    assert heard == [0.35]
    with pytest.raises(ValueError, match="within 0..1"):
        threshold.set_value(1.5)
    assert threshold.value == 0.35 and heard == [0.35]
    assert ReviewThreshold(AppSettings.at(path)).value == 0.35  # read back by a new session


def test_one_threshold_drives_the_filter_bar_the_table_and_the_preview(
    qtbot, tmp_path: Path
) -> None:
    settings = AppSettings.at(tmp_path / "settings.ini")
    threshold = ReviewThreshold(settings)
    # The widgets first, so they hear of a change before the model does: what they show
    # must not depend on who re-judges first.
    bar, preview = FilterBar(threshold), PreviewPanel(threshold)
    model = ResultsModel(CLASS_NAMES, threshold)
    qtbot.addWidget(bar)
    qtbot.addWidget(preview)
    preview.set_class_names(CLASS_NAMES)
    model.append_predictions([confident("unsure.jpg", 0, 0.55), confident("sure.jpg", 1, 0.75)])
    preview.show_result(model.row_at(0))
    assert bar.threshold_spin.value() == pytest.approx(100 * DEFAULT_REVIEW_THRESHOLD)
    assert [row.status for row in model.rows] == [STATUS_REVIEW, STATUS_OK]
    assert ">needs review</span>" in preview.verdict.text()

    bar.threshold_spin.setValue(50)  # the user lowers it
    assert threshold.value == model.threshold == 0.5
    assert [row.status for row in model.rows] == [STATUS_OK, STATUS_OK]
    assert ">ok</span>" in preview.verdict.text()
    assert "(50 %)" in preview.legend.text()
    assert AppSettings.at(tmp_path / "settings.ini").review_threshold(0.6) == 0.5

    # Set on the owner: the spin box shows it, and does not send its rounding back.
    threshold.set_value(0.704)
    assert bar.threshold_spin.value() == 70
    assert threshold.value == model.threshold == 0.704
    assert [row.status for row in model.rows] == [STATUS_REVIEW, STATUS_OK]
    assert ">needs review</span>" in preview.verdict.text()


# -- the model loader ----------------------------------------------------------------------------
def test_the_loader_owns_the_engine_and_keeps_it_when_a_load_fails(
    qtbot, tiny_model_path: Path, tmp_path: Path
) -> None:
    loader = ModelLoader(threads=1)
    assert loader.engine is None and not loader.loading
    with qtbot.waitSignal(loader.loaded, timeout=TIMEOUT_MS) as loaded:
        loader.load(tiny_model_path)
        assert loader.loading
    engine = loader.engine
    assert loaded.args == [engine] and engine.model_path == tiny_model_path
    assert not loader.loading and loader.error is None

    with qtbot.waitSignal(loader.failed, timeout=TIMEOUT_MS) as failed:
        loader.load(tmp_path / "missing.onnx")
    assert "model file not found" in failed.args[0] and loader.error == failed.args[0]
    assert loader.engine is engine and not loader.loading


def test_only_the_latest_load_counts(qtbot, tiny_model_path: Path, tmp_path: Path) -> None:
    five = build_tiny_model(
        tmp_path / "five.onnx",
        graph_classes=5,
        metadata=tiny_metadata(class_names=CLASS_NAMES[:5]),
    )
    loader = ModelLoader(threads=1)
    loaded: list[Engine] = []
    loader.loaded.connect(loaded.append)
    loader.load(tiny_model_path)
    loader.load(five)  # asked for before the first one is in
    assert wait_for_background_calls(TIMEOUT_MS)  # both loads have ended, in either order
    qtbot.waitUntil(lambda: not loader.loading, timeout=TIMEOUT_MS)
    qtbot.wait(50)  # anything else they sent has been delivered by now
    assert [engine.model_path for engine in loaded] == [five]
    assert loader.engine is loaded[0]


def test_load_errors_are_told_in_the_users_words() -> None:
    assert load_error_message(ModelError("model file not found: x.onnx")) == (
        "model file not found: x.onnx"
    )
    assert load_error_message(RuntimeError("session failed")) == "RuntimeError: session failed"
    assert load_error_message(MemoryError()) == "MemoryError: MemoryError"


# -- the run controller's queue ------------------------------------------------------------------
def test_requests_wait_in_the_one_queue_until_there_is_an_engine(
    qtbot, tiny_model_path: Path, sample_images_dir: Path
) -> None:
    controller = RunController(batch_size=4)
    started, queue, summaries, rows = [], [], [], []
    controller.started.connect(started.append)
    controller.queue_changed.connect(queue.append)
    controller.finished.connect(summaries.append)
    controller.batch_ready.connect(rows.extend)
    two_files = sorted(str(p) for p in sample_images_dir.iterdir())[:2]
    controller.submit([str(sample_images_dir)])
    controller.submit(two_files)
    assert not controller.busy and started == []  # no engine: nothing may start
    assert controller.queued == 2 and controller.queued_paths == 3 and queue == [1, 2]

    controller.set_engine(Engine(tiny_model_path, threads=1))
    qtbot.waitUntil(lambda: len(summaries) == 2 and not controller.busy, timeout=TIMEOUT_MS)
    assert started == [1, 0]  # the folder first, with one request still waiting
    assert queue == [1, 2, 1, 0]
    assert len(rows) == len(list(sample_images_dir.iterdir())) + 2  # each request ran once
    controller.shutdown()


def test_cancel_forgets_requests_that_wait_for_an_engine(
    qtbot, tiny_model_path: Path, sample_images_dir: Path
) -> None:
    controller = RunController()
    started, queue = [], []
    controller.started.connect(started.append)
    controller.queue_changed.connect(queue.append)
    controller.submit([str(sample_images_dir)])
    controller.cancel()
    assert controller.queued == 0 and queue == [1, 0]
    controller.set_engine(Engine(tiny_model_path, threads=1))
    assert not controller.busy and started == []
    controller.shutdown()


# -- the run reporter ----------------------------------------------------------------------------
def test_a_run_that_found_no_images_says_so() -> None:
    def summary(images: int, skipped: int) -> RunSummary:
        return RunSummary(images, images, 0, 0, skipped, False, 0.1, 0.0)

    assert finished_text(summary(0, 2)) == "No supported images found (2 other files skipped)"
    assert finished_text(summary(0, 0)) == "No supported images found"
    assert finished_text(summary(3, 1)).startswith("Classified 3 of 3 images in 0.10 s")
    quick = RunSummary(10, 10, 0, 0, 0, False, 0.04, 248.3)
    assert quick.describe() == "Classified 10 of 10 images in 0.04 s (248 images/s)"
    long = RunSummary(3000, 3000, 1, 0, 0, False, 4.46, 672.6)
    assert long.describe() == "Classified 3000 of 3000 images in 4.5 s (673 images/s); 1 error"


def test_an_unknown_item_reads_unknown_in_the_table_the_verdict_and_the_chart(qtbot) -> None:
    from desktop.gui.style import OK_COLOR, UNKNOWN_COLOR

    threshold = ReviewThreshold()
    preview, model = PreviewPanel(threshold), ResultsModel(CLASS_NAMES, threshold)
    qtbot.addWidget(preview)
    preview.set_class_names(CLASS_NAMES)
    preview.resize(400, 600)
    sure = confident("cat.jpg", 5, 0.95)  # confident, yet unlike every class
    unknown = Prediction(sure.path, sure.probabilities, unknown_score=3.2, unknown=True)
    model.append_predictions([unknown])
    row = model.row_at(0)
    assert row.status == "unknown" and model.state_counts()["unknown"] == 1

    preview.show_result(row)
    assert "Unknown item</b>" in preview.verdict.text()
    assert "nearest class PCB (95.0 % among the known classes)" in preview.verdict.text()
    picture = preview.chart.grab().toImage()
    colours = {
        picture.pixelColor(x, y).rgb()
        for x in range(picture.width())
        for y in range(0, picture.height(), 2)
    }
    assert UNKNOWN_COLOR.rgb() in colours and OK_COLOR.rgb() not in colours

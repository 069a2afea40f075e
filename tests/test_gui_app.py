"""The real window with the real engine on the tiny model, driven like a user would.

Drops are real QDragEnterEvent/QDropEvent carrying file URLs, waits are qtbot.waitUntil,
settings live in a temporary INI file, and no modal dialog is ever opened.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from urllib.parse import quote_from_bytes

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QWidget

import desktop.core.prediction_loop as prediction_loop
from decode_counter import count_decodes
from desktop.core.csv_export import results_header
from desktop.core.discovery import Collection, collect_images
from desktop.core.engine import Engine, Prediction
from desktop.gui.app import create_window, parse_args
from desktop.gui.background import wait_for_background_calls
from desktop.gui.main_window import MainWindow
from desktop.gui.preview import NO_CAM_TIP, overlay_size, wait_for_previews
from desktop.gui.results_model import (
    COL_CLASS,
    COL_CONFIDENCE,
    COL_CONFIRMED,
    COL_FILE,
    COL_STATUS,
    COL_TOP3,
    FIRST_PROB_COLUMN,
    ROW_ROLE,
    SORT_ROLE,
)
from desktop.gui.run_controller import SHUTDOWN_WAIT_MS, abandoned_threads
from desktop.gui.settings import AppSettings
from fixtures_images import (
    AMBIGUOUS_SAMPLE,
    BAD_INPUTS,
    NON_UTF8_SHOWN,
    SAMPLE_EXPECTED_CLASS,
    write_non_utf8_named,
    write_solid,
)
from tiny_model import CAM_GRID, CLASS_NAMES, PROTOTYPE_COLOURS, build_tiny_model, tiny_metadata

RUN_TIMEOUT_MS = 30_000  # generous: two cores shared with a training job


@pytest.fixture(autouse=True)
def isolated_qsettings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any QSettings made without a path lands in tmp, never in the user's real config."""
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))  # an unsaved review's copy


@pytest.fixture(autouse=True)
def no_background_job_outlives_its_test(qapp) -> Iterator[None]:
    """Torn down after qtbot has closed the windows: a model load, CSV write or preview
    decode still running then would emit into objects deleted at interpreter exit
    ("Signal source has been deleted" after the test summary)."""
    yield
    assert wait_for_background_calls(RUN_TIMEOUT_MS)
    assert wait_for_previews(RUN_TIMEOUT_MS)


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "ewaste-app.ini"


@pytest.fixture
def make_window(qtbot, settings_path: Path) -> Iterator:
    def make(
        model: Path | str | None, batch_size: int = 4, paths: Sequence[Path] = ()
    ) -> MainWindow:
        args = ["--batch", str(batch_size)]
        if model is not None:
            args += ["--model", str(model)]
        options = parse_args(args + [str(p) for p in paths])
        window = create_window(options, AppSettings.at(settings_path))
        qtbot.addWidget(window)  # closed (settings saved, workers stopped) at teardown
        window.show()
        qtbot.waitExposed(window)
        return window

    yield make


@pytest.fixture
def window(make_window, qtbot, tiny_model_path: Path) -> MainWindow:
    window = make_window(tiny_model_path)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    return window


@pytest.fixture(scope="module")
def reference_engine(tiny_model_path: Path) -> Engine:
    return Engine(tiny_model_path, threads=1)


def drag_event(kind: type, point: QPointF, mime: QMimeData):
    """A drag event at `point`; Qt 6.12 takes a QPointF, older Qt only a QPoint."""
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    try:
        return kind(point, *args)
    except TypeError:
        return kind(point.toPoint(), *args)


def drop(target: QWidget, paths: Sequence[Path | str]) -> QDropEvent:
    """A real drag enter, move and drop of local file URLs onto `target`."""
    return drop_urls(target, [QUrl.fromLocalFile(str(p)) for p in paths])


def drop_urls(target: QWidget, urls: Sequence[QUrl]) -> QDropEvent:
    """A real drag enter, move and drop of `urls` onto `target`."""
    mime = QMimeData()
    mime.setUrls(list(urls))
    point = QPointF(target.rect().center())
    enter = drag_event(QDragEnterEvent, point, mime)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted(), "the window refused the drag"
    QApplication.sendEvent(target, drag_event(QDragMoveEvent, point, mime))
    event = drag_event(QDropEvent, point, mime)
    QApplication.sendEvent(target, event)
    assert event.isAccepted(), "the drop was not taken"
    return event


def run_to_end(qtbot, window: MainWindow, action) -> None:
    """Do `action` (a drop, a call) and wait until every resulting run has finished."""
    window.last_summary = None
    action()
    qtbot.waitUntil(
        lambda: (
            window.last_summary is not None
            and not window.controller.busy
            and not window.controller.queued
        ),
        timeout=RUN_TIMEOUT_MS,
    )


def rows_by_path(window: MainWindow) -> dict[str, Prediction]:
    return {row.prediction.path: row.prediction for row in window.results.rows}


def headless(engine: Engine, paths: Sequence[Path]) -> tuple[dict[str, Prediction], int]:
    """What `ewaste-classify` would produce: rows by path, and the skipped-file count."""
    collection = collect_images(paths)
    rows = {p.path: p for p in collection.problems}
    for batch in engine.classify(collection.images, batch_size=8):
        rows.update((p.path, p) for p in batch)
    return rows, collection.skipped


def proxy_column(window: MainWindow, col: int, role: int = Qt.ItemDataRole.DisplayRole) -> list:
    proxy = window.proxy
    return [proxy.index(r, col).data(role) for r in range(proxy.rowCount())]


def test_drop_of_folders_and_files_classifies_like_the_engine(
    qtbot,
    window: MainWindow,
    reference_engine: Engine,
    sample_images_dir: Path,
    bad_inputs_dir: Path,
    tmp_path: Path,
) -> None:
    single = write_solid(tmp_path / "single_cyan.png", PROTOTYPE_COLOURS["Mouse"])
    assert not window.drop_area.showing_results  # empty state first
    assert "Drop images or folders" in window.drop_area.empty_state.headline.text()
    dropped = [sample_images_dir, bad_inputs_dir, single]

    run_to_end(qtbot, window, lambda: drop(window.drop_area, dropped))

    expected, skipped = headless(reference_engine, dropped)
    got = rows_by_path(window)
    assert len(window.results.rows) == len(got) == len(expected)  # each file once
    assert got.keys() == expected.keys()
    for path, want in expected.items():
        row = got[path]
        assert row.error == want.error, path
        if want.ok:
            assert row.top_index == want.top_index, path
            np.testing.assert_allclose(row.probabilities, want.probabilities, rtol=1e-5)

    # The bad inputs: the reason is in the table, and in the status cell's tooltip.
    by_name = {Path(r.prediction.path).name: r for r in window.results.rows}
    for name, expect in BAD_INPUTS.items():
        row = by_name[name]
        if expect.kind in ("error", "problem"):
            assert row.status == "error" and expect.reason in row.error, name
        else:
            assert CLASS_NAMES[row.top_index] == expect.class_name, name
    for name, class_name in SAMPLE_EXPECTED_CLASS.items():
        assert CLASS_NAMES[by_name[name].top_index] == class_name
    source_row = next(i for i, r in enumerate(window.results.rows) if r.name == "empty.jpg")
    status = window.results.index(source_row, COL_STATUS)
    assert status.data() == "error"
    assert "empty file" in status.data(Qt.ItemDataRole.ToolTipRole)
    assert window.results.index(source_row, COL_TOP3).data() == "empty file (0 bytes)"

    summary = window.last_summary
    assert summary.skipped == skipped >= 2  # notes.txt, no_images/readme.txt
    assert not summary.cancelled
    assert "skipped" in window.statusBar().currentMessage()
    assert window.drop_area.showing_results
    assert window.preview.row is not None  # the first row is selected and previewed
    assert window.commands.export.isEnabled()


def test_drop_on_the_table_adds_to_the_results_and_web_links_are_refused(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.results.rowCount() == 6
    extra = write_solid(tmp_path / "extra_black.jpg", PROTOTYPE_COLOURS["Printer"])
    # Sent to the table's viewport: Qt passes the drag up to the drop area.
    run_to_end(qtbot, window, lambda: drop(window.view.viewport(), [extra]))
    assert window.results.rowCount() == 7
    assert window.results.rows[-1].name == "extra_black.jpg"

    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/photo.jpg")])
    enter = drag_event(QDragEnterEvent, QPointF(10, 10), mime)
    QApplication.sendEvent(window.drop_area, enter)
    assert not enter.isAccepted()


def test_a_dropped_photo_whose_name_is_not_utf8_is_classified(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    # "café.jpg" named in Latin-1, as a Windows zip unpacked on Linux leaves it; a file
    # manager drops it percent-encoded byte by byte.
    name = os.fsdecode(b"caf\xe9.jpg")
    photo = write_solid(tmp_path / name, PROTOTYPE_COLOURS["Mouse"])
    url = QUrl.fromEncoded(f"file://{quote_from_bytes(os.fsencode(photo))}".encode("ascii"))

    run_to_end(qtbot, window, lambda: drop_urls(window.drop_area, [url]))

    assert [row.prediction.path for row in window.results.rows] == [str(photo)]
    assert window.results.rows[0].status == "ok"  # before: an error row, "not found"


def test_gui_thread_never_decodes_or_infers(
    qtbot, window: MainWindow, sample_images_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()
    original_load, original_predict = prediction_loop.load_rgb, Engine.predict

    def load_rgb(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return original_load(*args, **kwargs)

    def predict(self, *args, **kwargs):
        threads.add(threading.current_thread().name)
        return original_predict(self, *args, **kwargs)

    monkeypatch.setattr(prediction_loop, "load_rgb", load_rgb)
    monkeypatch.setattr(Engine, "predict", predict)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.results.rowCount() == 6
    assert threads and threading.main_thread().name not in threads


def test_sort_by_confidence_and_filter_by_class_and_status(
    qtbot, window: MainWindow, sample_images_dir: Path, bad_inputs_dir: Path
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir, bad_inputs_dir]))
    total = window.results.rowCount()

    window.view.sortByColumn(COL_CONFIDENCE, Qt.SortOrder.DescendingOrder)
    values = proxy_column(window, COL_CONFIDENCE, SORT_ROLE)
    assert values == sorted(values, reverse=True)
    assert all(isinstance(v, float) for v in values)
    shown = [float(t.rstrip(" %")) for t in proxy_column(window, COL_CONFIDENCE) if t]
    assert shown == sorted(shown, reverse=True)  # numeric order, whatever the digits

    bar = window.filter_bar
    battery = CLASS_NAMES.index("Battery")
    bar.class_combo.setCurrentIndex(bar.class_combo.findData(battery))
    assert window.proxy.rowCount() > 0
    assert all(r.top_index == battery for r in proxy_column(window, COL_FILE, ROW_ROLE))

    bar.status_combo.setCurrentIndex(bar.status_combo.findText("needs review"))
    assert [r.name for r in proxy_column(window, COL_FILE, ROW_ROLE)] == [AMBIGUOUS_SAMPLE]

    bar.class_combo.setCurrentIndex(0)  # All classes
    bar.status_combo.setCurrentIndex(bar.status_combo.findText("error"))
    errors = proxy_column(window, COL_FILE, ROW_ROLE)
    assert errors and all(r.status == "error" for r in errors)
    assert len(errors) == window.results.state_counts()["error"]

    bar.status_combo.setCurrentIndex(0)  # All
    assert window.proxy.rowCount() == total


def test_threshold_change_updates_statuses_without_new_inference(
    qtbot, window: MainWindow, sample_images_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    row = next(i for i, r in enumerate(window.results.rows) if r.name == AMBIGUOUS_SAMPLE)
    status = window.results.index(row, COL_STATUS)
    assert status.data() == "needs review"  # ~50 % under the default 70 %
    assert "1 needs review" in window.counts_label.full_text
    window.view.select_proxy_row(row)  # arrival order, unfiltered: the same row
    assert ">needs review</span>" in window.preview.verdict.text()

    calls: list[int] = []
    monkeypatch.setattr(Engine, "predict_batch", lambda *a: calls.append(1))
    monkeypatch.setattr(Engine, "predict", lambda *a, **k: calls.append(1))
    window.filter_bar.threshold_spin.setValue(40)
    assert window.results.threshold == pytest.approx(0.40)
    assert status.data() == "ok"
    assert "0 need review" in window.counts_label.full_text
    assert ">ok</span>" in window.preview.verdict.text()
    assert "(40 %)" in window.preview.legend.text()
    window.filter_bar.threshold_spin.setValue(100)
    # Under 100 %: every row but those whose confidence reads 100.0 % (written as 1).
    rows = window.results.rows
    shown = [window.results.index(i, COL_CONFIDENCE).data() for i in range(len(rows))]
    assert [r.status == "review" for r in rows] == [text != "100.0 %" for text in shown]
    assert {r.status for r in rows} == {"review", "ok"}
    assert calls == []  # re-judged from the stored probabilities
    assert window.settings.review_threshold(0.6) == pytest.approx(1.0)


def test_export_csv_writes_every_row(
    qtbot,
    window: MainWindow,
    sample_images_dir: Path,
    bad_inputs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir, bad_inputs_dir]))
    window.filter_bar.status_combo.setCurrentIndex(1)  # filters do not limit the export
    target = tmp_path / "out" / "results.csv"
    target.parent.mkdir()
    call = window.export_csv(target)
    qtbot.waitUntil(lambda: call.done, timeout=RUN_TIMEOUT_MS)
    assert "Exported" in window.statusBar().currentMessage()

    with target.open(newline="", encoding="utf-8-sig") as handle:
        table = list(csv.reader(handle))
    assert table[0] == results_header(CLASS_NAMES)
    body = table[1:]
    assert len(body) == window.results.rowCount()
    # Absolute paths start with "/", so the CSV never neutralises them as formulas.
    by_path = {r.prediction.path: r for r in window.results.rows}
    assert {line[0] for line in body} == by_path.keys()
    for line in body:
        record = dict(zip(table[0], line, strict=True))
        row = by_path[record["path"]]
        assert record["status"] == row.status
        if row.status == "error":
            assert record["error"] == row.error
        else:
            assert record["predicted_class"] == CLASS_NAMES[row.top_index]
            assert float(record["confidence"]) == pytest.approx(row.confidence, rel=1e-5)

    # Through the action (Ctrl+E) with the save dialog answered by the test.
    second = tmp_path / "out" / "via_action"
    offered: list[str] = []
    monkeypatch.setattr(
        QFileDialog,
        "getSaveFileName",
        staticmethod(lambda _p, _t, name, _f: offered.append(name) or (str(second), "CSV")),
    )
    window.commands.export.trigger()
    # To the second, as the web page names its CSV: two exports in a minute, two names.
    assert re.fullmatch(r"ewaste-results-\d{8}-\d{6}\.csv", Path(offered[0]).name)
    qtbot.waitUntil(lambda: (tmp_path / "out" / "via_action.csv").exists(), timeout=5000)
    qtbot.waitUntil(lambda: not window.exporting, timeout=5000)
    assert window.settings.last_dir("export") == str(tmp_path / "out")


def test_an_export_counts_the_rows_it_wrote_not_those_added_meanwhile(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import shutil

    import desktop.gui.csv_export_command as export_command

    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    more = tmp_path / "more"
    shutil.copytree(sample_images_dir, more)
    real_write, rows_added = export_command.write_results_csv, threading.Event()

    def write_after_the_drop(*args):
        rows_added.wait(RUN_TIMEOUT_MS / 1000)
        real_write(*args)

    monkeypatch.setattr(export_command, "write_results_csv", write_after_the_drop)
    target = tmp_path / "results.csv"
    call = window.export_csv(target)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [more]))
    rows_added.set()
    qtbot.waitUntil(lambda: call.done, timeout=RUN_TIMEOUT_MS)
    assert window.results.rowCount() == 12
    with target.open(newline="", encoding="utf-8-sig") as handle:
        assert len(list(csv.reader(handle))) == 1 + 6
    assert window.statusBar().currentMessage() == f"Exported 6 results to {target}"


def test_export_failure_is_reported_not_raised(
    qtbot,
    window: MainWindow,
    sample_images_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    warnings: list[str] = []
    monkeypatch.setattr(
        "desktop.gui.main_window.QMessageBox.warning",
        staticmethod(lambda _parent, _title, text: warnings.append(text)),
    )
    call = window.export_csv(tmp_path / "no such folder" / "x.csv")
    qtbot.waitUntil(lambda: call.done, timeout=5000)
    assert warnings and "Could not write" in warnings[0]
    assert window.commands.export.isEnabled()


@pytest.fixture
def many_images(tmp_path: Path) -> Path:
    """300 small real images in one folder."""
    folder = tmp_path / "many"
    folder.mkdir()
    colours = list(PROTOTYPE_COLOURS.values())
    rng = np.random.default_rng(0)
    for i in range(300):
        base = np.array(colours[i % len(colours)], dtype=np.int16)
        noise = rng.integers(-20, 21, (48, 64, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img_{i:03d}.png")
    return folder


def test_cancel_stops_the_worker_and_keeps_done_rows(
    qtbot,
    make_window,
    tiny_model_path: Path,
    many_images: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded = count_decodes(monkeypatch)
    window = make_window(tiny_model_path, batch_size=2)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    cancelled: list[bool] = []

    def cancel_after_first_batch(_batch: list) -> None:
        if not cancelled:
            cancelled.append(True)
            qtbot.mouseClick(window.progress_panel.cancel_button, Qt.MouseButton.LeftButton)

    window.controller.batch_ready.connect(cancel_after_first_batch)
    drop(window.drop_area, [many_images])
    qtbot.waitUntil(lambda: bool(cancelled), timeout=RUN_TIMEOUT_MS)
    # The window is idle at once, and the worker thread itself ends without finishing the
    # folder: it decoded a few batches ahead at most, not the 300 files.
    assert not window.controller.busy
    assert window.last_summary is not None and window.last_summary.cancelled
    qtbot.waitUntil(lambda: window.controller.running_threads() == 0, timeout=RUN_TIMEOUT_MS)
    assert len(decoded) < 300, f"the cancelled worker decoded {len(decoded)} of 300 files"
    kept = window.results.rowCount()
    qtbot.wait(300)  # batches still queued from the stopped worker must not show up
    assert window.results.rowCount() == kept == 2  # the one batch that was done
    assert kept < 300
    assert "Cancelled after" in window.statusBar().currentMessage()
    assert not window.progress_panel.cancel_button.isEnabled()

    # The app goes on: a new run after a cancel works normally (on a photo not yet in the
    # table: the ones done stay one row each).
    window.controller.batch_ready.disconnect(cancel_after_first_batch)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [many_images / "img_299.png"]))
    assert window.results.rowCount() == kept + 1


def test_a_folder_dropped_again_through_a_link_stays_one_row_per_photo(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    # The same photos reached by another path (a linked folder, a junction, another
    # case on Windows) are the photos the table holds, not new ones; an unreadable one
    # is read again (it may be whole now), in its own row.
    (sample_images_dir / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    rows = window.results.rowCount()
    linked = tmp_path / "shortcut"
    os.symlink(sample_images_dir, linked)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [linked, linked / "red_battery.jpg"]))
    assert window.results.rowCount() == rows
    assert window.last_summary.images == 1 and window.last_summary.already == rows - 1
    assert window.results.state_counts()["error"] == 1

    # A photo changed since is classified again in its row, under the table's name for it.
    battery = sample_images_dir / "red_battery.jpg"
    write_solid(battery, PROTOTYPE_COLOURS["Mouse"])
    later = os.stat(battery).st_mtime_ns + 10**10
    os.utime(battery, ns=(later, later))
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [linked]))
    assert window.results.rowCount() == rows and window.last_summary.images == 2
    assert CLASS_NAMES[rows_by_path(window)[str(battery)].top_index] == "Mouse"


def test_repeated_cancels_with_decodes_in_flight_never_crash(
    qtbot, window: MainWindow, many_images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cancelled worker is deleted by its ending thread. Qt calls the thread finished a
    # moment before that; forgetting the worker then deleted it twice (a segfault, about one
    # cancel in four with decodes still running).
    original_load = prediction_loop.load_rgb
    gate = threading.Event()

    def held_load(*args, **kwargs):
        gate.wait(10)
        return original_load(*args, **kwargs)

    monkeypatch.setattr(prediction_loop, "load_rgb", held_load)
    for _ in range(20):
        gate.clear()
        drop(window.drop_area, [many_images])
        assert window.controller.busy
        window.commands.cancel.trigger()  # Esc
        gate.set()  # the decodes go on while the stopped thread ends
        qtbot.waitUntil(lambda: window.controller.running_threads() == 0, timeout=5000)
        qtbot.wait(20)
    assert window.results.rowCount() == 0 and not window.controller.busy


def test_photos_dropped_again_stay_one_row_each_and_a_changed_one_is_redone(
    qtbot, window: MainWindow, sample_images_dir: Path
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    rows = window.results.rowCount()
    battery = str(sample_images_dir / "red_battery.jpg")
    mobile = str(sample_images_dir / "yellow_mobile.png")
    index = {row.prediction.path: i for i, row in enumerate(window.results.rows)}
    window.results.set_confirmed([index[battery], index[mobile]], "PCB")

    # The folder again (a worker re-opens it): nothing is classified twice or lost.
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.results.rowCount() == rows
    assert window.last_summary.images == 0 and window.last_summary.already == rows
    assert "already in the table" in window.statusBar().currentMessage()
    assert window.results.confirmed_classes() == {battery: "PCB", mobile: "PCB"}

    # A new photo under an old name (a camera's counter reset): classified, in its row,
    # and the person's word about the photo that was there does not carry over.
    window.view.selectRow(window.proxy.mapFromSource(window.results.index(index[mobile], 0)).row())
    assert "Mobile" in window.preview.verdict.text()
    write_solid(sample_images_dir / "yellow_mobile.png", PROTOTYPE_COLOURS["Mouse"])
    later = os.stat(mobile).st_mtime_ns + 10**10  # the camera took it 10 s later
    os.utime(mobile, ns=(later, later))
    run_to_end(qtbot, window, lambda: window.add_paths([sample_images_dir]))
    assert window.results.rowCount() == rows and window.last_summary.already == rows - 1
    assert CLASS_NAMES[rows_by_path(window)[mobile].top_index] == "Mouse"
    assert window.results.confirmed_classes() == {battery: "PCB"}
    assert "Mouse" in window.preview.verdict.text()  # the selected row shows it at once

    # A photo missing when it was dropped is an error row; dropped again once it is
    # there, it is classified in that row.
    late = sample_images_dir / "late.png"
    run_to_end(qtbot, window, lambda: window.add_paths([late]))
    assert window.results.rowCount() == rows + 1 and not rows_by_path(window)[str(late)].ok
    write_solid(late, PROTOTYPE_COLOURS["Printer"])
    run_to_end(qtbot, window, lambda: window.add_paths([late]))
    assert window.results.rowCount() == rows + 1
    assert CLASS_NAMES[rows_by_path(window)[str(late)].top_index] == "Printer"


def one_mouse_photo(folder: Path) -> Path:
    """A second folder to classify: one mouse photo."""
    folder.mkdir()
    write_solid(folder / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    return folder


def test_a_request_queued_behind_another_is_reported_with_it(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    more = one_mouse_photo(tmp_path / "more")

    def two_requests() -> None:
        window.add_paths([sample_images_dir])
        window.add_paths([more])  # queued: the first is running
        assert window.controller.queued == 1

    run_to_end(qtbot, window, two_requests)
    assert window.results.rowCount() == len(SAMPLE_EXPECTED_CLASS) + 1
    # Not "Classified 1 of 1 image": the worker hears about everything it asked for.
    assert window.statusBar().currentMessage().startswith("Classified 7 of 7 images (2 runs) in ")
    assert window.progress_panel.bar.format() == "Done: 7 images"


def test_esc_says_the_queued_requests_it_drops(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    more = one_mouse_photo(tmp_path / "more")
    window.add_paths([sample_images_dir])
    window.add_paths([more, more / "mouse.png"])  # queued behind it
    assert window.controller.busy and window.controller.queued_paths == 2
    window.commands.cancel.trigger()  # Esc
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=RUN_TIMEOUT_MS)
    message = window.statusBar().currentMessage()
    assert message.startswith("Cancelled")
    assert message.endswith("; 2 queued items not started: open them again to classify")
    assert str(more / "mouse.png") not in {row.prediction.path for row in window.results.rows}


def test_a_failed_run_in_a_chain_still_reports_the_runs_before_it(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    engine = window.engine
    real_classify = engine.classify
    calls: list[int] = []

    def classify_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("the network drive went away")
        return real_classify(*args, **kwargs)

    monkeypatch.setattr(engine, "classify", classify_then_fail)
    more = one_mouse_photo(tmp_path / "more")
    window.add_paths([sample_images_dir])
    window.add_paths([more])
    qtbot.waitUntil(
        lambda: "went away" in window.statusBar().currentMessage(), timeout=RUN_TIMEOUT_MS
    )
    message = window.statusBar().currentMessage()
    assert message.startswith("Classification stopped: RuntimeError: the network drive went away")
    assert "(Classified 6 of 6 images in " in message and message.endswith(" before it)")


def test_version_option_names_the_release(project_version: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--version"])
    assert (exited.value.code, capsys.readouterr().out) == (0, f"ewaste-app {project_version}\n")


def test_command_line_paths_start_at_once(
    qtbot, make_window, tiny_model_path: Path, sample_images_dir: Path
) -> None:
    window = make_window(tiny_model_path, paths=[sample_images_dir])
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=RUN_TIMEOUT_MS)
    assert window.results.rowCount() == len(SAMPLE_EXPECTED_CLASS)
    assert "tiny-classifier.onnx" in window.model_label.text()
    assert "10 classes" in window.model_label.text()
    assert window.model_label.text().endswith(" · CPU")


@pytest.mark.parametrize("kind", ["missing", "not onnx"])
def test_bad_model_shows_the_error_and_a_model_can_then_be_opened(
    qtbot, make_window, tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, kind: str
) -> None:
    if kind == "missing":
        bad, reason = tmp_path / "nope.onnx", "model file not found"
    else:
        bad = tmp_path / "garbage.onnx"
        bad.write_bytes(b"this is not a protobuf")
        reason = "is not a usable ONNX model"
    window = make_window(bad, paths=[sample_images_dir])
    qtbot.waitUntil(lambda: window.model_error is not None, timeout=RUN_TIMEOUT_MS)
    assert reason in window.model_error
    assert reason in window.statusBar().currentMessage()
    problem = window.drop_area.empty_state.problem
    assert problem.isVisible() and reason in problem.text() and "Open model" in problem.text()
    assert window.model_label.text() == "No model"
    assert window.results.rowCount() == 0
    assert window.commands.open_model.isEnabled()

    window.open_model(str(tiny_model_path))  # what File > Open model… does after the dialog
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=RUN_TIMEOUT_MS)
    assert window.results.rowCount() == len(SAMPLE_EXPECTED_CLASS)  # the waiting paths ran
    assert window.model_error is None and not problem.isVisible()


def test_a_1024_pixel_screen_shows_status_and_counts_from_their_start(
    qtbot, window: MainWindow, sample_images_dir: Path
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    window.resize(1024, 768)
    qtbot.waitUntil(lambda: window.width() == 1024)
    view = window.view
    for column in (COL_FILE, COL_CLASS, COL_CONFIDENCE, COL_STATUS, COL_CONFIRMED):
        right = view.columnViewportPosition(column) + view.columnWidth(column)
        assert view.columnViewportPosition(column) >= 0 and right <= view.viewport().width()
    counts = window.counts_label  # shown whole, or cut at its end: never at its start
    assert counts.full_text.startswith("6 results: ") and counts.text().startswith("6 results")
    assert counts.fontMetrics().horizontalAdvance(counts.text()) <= counts.contentsRect().width()


def test_settings_persist_across_windows(
    qtbot, make_window, tiny_model_path: Path, settings_path: Path, sample_images_dir: Path
) -> None:
    first = make_window(tiny_model_path)
    qtbot.waitUntil(lambda: first.engine is not None, timeout=RUN_TIMEOUT_MS)
    first.filter_bar.threshold_spin.setValue(45)
    menu = QMenu()
    first.view.populate_columns_menu(menu)  # the View menu / header context menu
    pcb_action = next(a for a in menu.actions() if a.text() == "PCB")
    pcb_action.trigger()  # uncheck: hide the PCB probability column
    pcb_column = FIRST_PROB_COLUMN + CLASS_NAMES.index("PCB")
    assert first.view.isColumnHidden(pcb_column)
    first.resize(720, 530)  # inside the offscreen 800x600 screen
    drop(first.drop_area, [sample_images_dir])
    first.close()
    assert settings_path.exists()

    second = make_window(tiny_model_path)
    qtbot.waitUntil(lambda: second.engine is not None, timeout=RUN_TIMEOUT_MS)
    assert second.filter_bar.threshold_spin.value() == 45
    assert second.results.threshold == pytest.approx(0.45)
    assert second.view.hidden_classes == {"PCB"}
    assert second.view.isColumnHidden(pcb_column)
    assert not second.view.isColumnHidden(pcb_column + 1)
    assert (second.width(), second.height()) == (720, 530)
    assert second.settings.last_dir("images") == str(sample_images_dir)


def test_preview_shows_the_selected_image_and_its_probabilities(
    qtbot, window: MainWindow, sample_images_dir: Path
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    window.view.sortByColumn(COL_FILE, Qt.SortOrder.AscendingOrder)
    window.view.select_proxy_row(0)  # blue_microwave.jpg
    row = window.preview.row
    assert row.name == "blue_microwave.jpg"
    qtbot.waitUntil(lambda: not window.preview.image_view.pending, timeout=5000)
    image = window.preview.image_view.image
    assert not image.isNull() and (image.width(), image.height()) == (48, 40)
    assert image.pixelColor(5, 5).blue() > 200  # the blue test image, decoded
    assert window.preview.chart.values == pytest.approx(list(row.prediction.probabilities))
    assert "Microwave" in window.preview.verdict.text()


def test_clear_results_returns_to_the_empty_state(
    qtbot, window: MainWindow, sample_images_dir: Path
) -> None:
    assert not window.commands.summary.isEnabled()  # nothing to summarise yet
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.commands.summary.isEnabled()
    window.commands.clear.trigger()
    assert window.results.rowCount() == 0
    assert not window.drop_area.showing_results
    assert window.preview.row is None
    assert window.statusBar().currentMessage() == "Results cleared"
    assert not window.commands.export.isEnabled() and not window.commands.summary.isEnabled()
    assert window.export_csv() is None  # nothing to export, no dialog


def test_closing_mid_run_and_mid_preview_stops_every_thread(
    qtbot,
    make_window,
    tiny_model_path: Path,
    many_images: Path,
    large_jpeg_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Slow every decode a little so the run is surely still going when the window closes,
    # however fast the machine.
    decoded = count_decodes(monkeypatch, delay_s=0.02)
    window = make_window(tiny_model_path, batch_size=2)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [large_jpeg_path]))
    drop(window.drop_area, [many_images])
    qtbot.waitUntil(lambda: window.results.rowCount() > 1, timeout=RUN_TIMEOUT_MS)
    controller = window.controller
    assert controller.busy
    window.view.select_proxy_row(0)  # the 4000x3000 photo: its preview decodes now
    window.close()  # what the title bar's close button does
    # close() stopped the worker and waited for it: not given up on after the grace period,
    # and not left to decode the rest of the folder.
    assert controller.running_threads() == 0
    assert abandoned_threads() == 0
    assert len(decoded) < 1 + 300, f"{len(decoded)} decodes: the run was not stopped"
    window.deleteLater()
    qtbot.wait(200)  # the preview job may still deliver to a deleted widget: nothing breaks


def test_closing_with_a_worker_stuck_in_the_file_system_does_not_freeze(
    qtbot,
    make_window,
    tiny_model_path: Path,
    sample_images_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    window = make_window(tiny_model_path)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    entered, release = threading.Event(), threading.Event()

    def hung_listing(paths, should_stop=None) -> Collection:
        entered.set()
        release.wait(15)  # os.scandir on a share that stopped answering: deaf to stop
        return Collection()

    monkeypatch.setattr("desktop.gui.worker.collect_images", hung_listing)
    drop(window.drop_area, [sample_images_dir])
    assert entered.wait(5)
    try:
        window.close()
        # close() came back while the listing is still hung: it waited its grace period,
        # said so, and left the thread to end on its own.
        assert not release.is_set()
        assert f"did not stop within {SHUTDOWN_WAIT_MS // 1000} s" in capsys.readouterr().err
        assert abandoned_threads() == 1
        window.deleteLater()  # takes the controller along, but not the running thread
        qtbot.wait(100)
    finally:
        release.set()
    qtbot.waitUntil(lambda: abandoned_threads() == 0, timeout=5000)  # it ends on its own


# The real entry point with the folder listing hung; the window closes once the run has
# started. A prompt, clean exit is the whole test.
HUNG_EXIT = r"""
import sys, time
from PySide6.QtCore import QTimer
import desktop.gui.app as app_module
import desktop.gui.worker as worker_module

def hung_listing(paths, should_stop=None):
    time.sleep(120)  # a folder on a network share that never answers

worker_module.collect_images = hung_listing
create = app_module.create_window

def create_window(options, settings=None):
    window = create(options, settings)
    timer = QTimer(window)
    timer.timeout.connect(lambda: window.controller.busy and window.close())
    timer.start(50)
    return window

app_module.create_window = create_window
sys.exit(app_module.main(sys.argv[1:]))
"""


def test_the_app_exits_cleanly_while_a_worker_is_stuck(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    # The listing hangs for 120 s: an app that waited for it would overrun this timeout.
    done = subprocess.run(
        [sys.executable, "-c", HUNG_EXIT, "--model", str(tiny_model_path), str(sample_images_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Qt aborts (exit 134, "QThread: Destroyed while thread is still running") if the
    # stuck thread's QThread is destroyed at interpreter exit.
    assert done.returncode == 0, done.stderr[-3000:]
    assert "did not stop within 2 s" in done.stderr
    assert "Destroyed while thread" not in done.stderr


def test_a_file_name_that_is_not_utf8_is_shown_previewed_and_exported(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    image = write_non_utf8_named(folder, PROTOTYPE_COLOURS["Keyboard"])
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [folder]))
    window.view.select_proxy_row(0)
    row = window.preview.row
    assert row.prediction.path == str(image) and row.prediction.ok
    assert proxy_column(window, COL_FILE) == [NON_UTF8_SHOWN]
    qtbot.waitUntil(lambda: not window.preview.image_view.pending, timeout=5000)
    assert not window.preview.image_view.image.isNull()

    warnings: list[str] = []
    monkeypatch.setattr(
        "desktop.gui.main_window.QMessageBox.warning",
        staticmethod(lambda _parent, _title, text: warnings.append(text)),
    )
    target = tmp_path / "results.csv"
    call = window.export_csv(target)
    qtbot.waitUntil(lambda: call.done, timeout=5000)
    assert warnings == []
    text = target.read_bytes().decode("utf-8")  # strict: valid UTF-8
    table = list(csv.reader(text.splitlines()))
    assert [line[0] for line in table[1:]] == [os.path.join(str(folder), NON_UTF8_SHOWN)]


def test_opening_a_model_with_other_classes_resets_columns_and_filters(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    window.view.set_class_visible("Mouse", False)
    five = CLASS_NAMES[:5]
    other = build_tiny_model(
        tmp_path / "five.onnx", graph_classes=5, metadata=tiny_metadata(class_names=five)
    )
    window.open_model(str(other))
    qtbot.waitUntil(lambda: window.results.class_names == five, timeout=RUN_TIMEOUT_MS)
    assert window.results.rowCount() == 0 and not window.drop_area.showing_results
    assert window.results.columnCount() == FIRST_PROB_COLUMN + 5
    assert window.view.isColumnHidden(FIRST_PROB_COLUMN + five.index("Mouse"))  # by name
    combo = window.filter_bar.class_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["All classes", *five]
    assert "five.onnx · 5 classes" in window.model_label.text()
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.results.rowCount() == 6
    assert all(len(r.prediction.probabilities) == 5 for r in window.results.rows)


def test_a_watch_classifies_its_folder_again_with_a_model_of_other_classes(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    # The rows of the photos already in the watched folder go with the old classes: the
    # watch must hand them over again, or they would never be in the table, CSV or sort.
    window.set_watching(True, str(sample_images_dir))
    qtbot.waitUntil(lambda: window.results.rowCount() == 6, timeout=RUN_TIMEOUT_MS)
    other, five = five_class_model(tmp_path)
    window.open_model(str(other))
    qtbot.waitUntil(lambda: window.results.class_names == five, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.results.rowCount() == 6, timeout=RUN_TIMEOUT_MS)
    assert all(len(r.prediction.probabilities) == 5 for r in window.results.rows)
    window.set_watching(False)


def test_a_model_of_other_classes_loads_while_the_watched_folder_is_out_of_sight(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    # Starting the watch again raised for an unplugged camera, halfway through the switch:
    # the new model was said to be loaded, yet nothing was classified until a restart.
    import shutil

    camera = tmp_path / "camera"
    shutil.copytree(sample_images_dir, camera)
    window.set_watching(True, str(camera))
    qtbot.waitUntil(lambda: window.results.rowCount() == 6, timeout=RUN_TIMEOUT_MS)
    unplugged = camera.rename(tmp_path / "unplugged")
    waiting = lambda: window.watching_label.text().startswith("Cannot see")  # noqa: E731
    qtbot.waitUntil(waiting, timeout=RUN_TIMEOUT_MS)
    other, five = five_class_model(tmp_path)
    window.open_model(str(other))
    qtbot.waitUntil(lambda: window.results.class_names == five, timeout=RUN_TIMEOUT_MS)
    assert window.engine.model_path == other and waiting()  # still waiting for the camera
    more = tmp_path / "more"
    shutil.copytree(sample_images_dir, more)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [more]))
    assert window.results.rowCount() == 6  # a drop is classified, with the new model
    unplugged.rename(camera)  # plugged in again: its photos come again, with the new model
    qtbot.waitUntil(lambda: window.results.rowCount() == 12, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=RUN_TIMEOUT_MS)
    assert all(len(r.prediction.probabilities) == 5 for r in window.results.rows)
    assert window.watching_label.text().startswith("Watching")
    window.set_watching(False)


def test_the_batch_summary_of_rows_by_two_models_names_both(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    # A model of the same classes keeps the rows: the shift report must not give them all
    # to the model loaded now.
    import shutil

    from desktop.core.hashing import file_sha256

    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    first = (window.engine.model_path.name, window.engine.model_sha256)
    metadata = tiny_metadata() | {"source_sha256": "1" * 64}  # same classes, another file
    other = build_tiny_model(tmp_path / "other.onnx", metadata=metadata)
    window.open_model(str(other))
    qtbot.waitUntil(lambda: window.engine.model_path == other, timeout=RUN_TIMEOUT_MS)
    more = tmp_path / "more"
    shutil.copytree(sample_images_dir, more)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [more]))
    classified = sum(row.prediction.ok for row in window.results.rows) // 2
    summary = window.show_summary().summary
    assert summary.models == {first: classified, ("other.onnx", file_sha256(other)): classified}
    assert summary.models_line().startswith(f"Classified by more than one model: {classified} by")
    window.summary_dialog.close()


def five_class_model(folder: Path) -> tuple[Path, tuple[str, ...]]:
    five = CLASS_NAMES[:5]
    path = build_tiny_model(
        folder / "five.onnx", graph_classes=5, metadata=tiny_metadata(class_names=five)
    )
    return path, five


def test_a_drop_while_another_model_loads_waits_for_that_model(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    other, five = five_class_model(tmp_path)
    window.open_model(str(other))
    assert window.model_loading

    # Started now, the run would use the old 10-class model and deliver its rows into the
    # 5-class table the new model brings.
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.results.class_names == five
    assert window.results.rowCount() == 6
    assert all(len(r.prediction.probabilities) == 5 for r in window.results.rows)


def test_a_request_made_while_the_model_loads_runs_once_after_it_loads(
    qtbot, window: MainWindow, tiny_model_path: Path, sample_images_dir: Path
) -> None:
    started: list[int] = []
    window.controller.started.connect(started.append)
    window.load_model(tiny_model_path)  # the same classes: the table stays as it is
    drop(window.drop_area, [sample_images_dir])
    # It waits in the controller's queue, and can be cancelled from there.
    assert window.model_loading and not window.controller.busy
    assert window.controller.queued == 1 and window.commands.cancel.isEnabled()
    assert window.statusBar().currentMessage() == "Waiting for the model to load…"
    run_to_end(qtbot, window, lambda: None)
    assert started == [0]
    assert window.results.rowCount() == 6  # each image once
    assert not window.commands.cancel.isEnabled()


def test_cancel_forgets_a_request_waiting_for_the_model(
    qtbot, window: MainWindow, tiny_model_path: Path, sample_images_dir: Path
) -> None:
    started: list[int] = []
    window.controller.started.connect(started.append)
    window.load_model(tiny_model_path)
    drop(window.drop_area, [sample_images_dir])
    window.commands.cancel.trigger()
    assert window.controller.queued == 0 and not window.commands.cancel.isEnabled()
    qtbot.waitUntil(lambda: not window.model_loading, timeout=RUN_TIMEOUT_MS)
    qtbot.wait(100)
    assert started == [] and window.results.rowCount() == 0


def test_a_run_of_the_previous_model_is_dropped_when_the_classes_change(
    qtbot,
    window: MainWindow,
    many_images: Path,
    sample_images_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other, five = five_class_model(tmp_path)
    gate = threading.Event()  # holds the decodes, so the run is still going
    original_load = prediction_loop.load_rgb

    def held_load(*args, **kwargs):
        gate.wait(10)
        return original_load(*args, **kwargs)

    monkeypatch.setattr(prediction_loop, "load_rgb", held_load)
    window.view.sortByColumn(FIRST_PROB_COLUMN + 9, Qt.SortOrder.DescendingOrder)
    try:
        drop(window.drop_area, [many_images])
        assert window.controller.busy
        window.load_model(other)  # not through the menu, which is disabled while busy
        qtbot.waitUntil(lambda: window.results.class_names == five, timeout=RUN_TIMEOUT_MS)
        assert not window.controller.busy and window.last_summary.cancelled
    finally:
        gate.set()
    qtbot.wait(300)  # the stopped run's batches (10 probabilities each) must not arrive
    assert window.results.rowCount() == 0
    assert window.results.sort_column == -1  # there is no tenth class column any more
    assert window.view.horizontalHeader().sortIndicatorSection() == -1
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.results.rowCount() == 6
    assert all(len(r.prediction.probabilities) == 5 for r in window.results.rows)


def test_a_model_that_fails_to_load_keeps_the_current_one(
    qtbot, window: MainWindow, sample_images_dir: Path, tmp_path: Path
) -> None:
    label = window.model_label.text()
    window.open_model(str(tmp_path / "missing.onnx"))
    # Dropped while the other model loads: it waits, and runs with the current one.
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    assert window.model_error is not None
    assert window.model_label.text() == label
    assert not window.drop_area.empty_state.problem.isVisible()
    assert window.results.rowCount() == 6
    window.open_model(str(tmp_path / "missing.onnx"))
    qtbot.waitUntil(lambda: not window.model_loading, timeout=RUN_TIMEOUT_MS)
    assert "still using tiny-classifier.onnx" in window.statusBar().currentMessage()


def green_over_black(path: Path) -> Path:
    """48x40: green (a Keyboard, for the tiny model) with its bottom quarter black."""
    pixels = np.zeros((40, 48, 3), dtype=np.uint8)
    pixels[:30, :, 1] = 255
    Image.fromarray(pixels).save(path)
    return path


def test_cam_overlay_shows_where_the_model_looked_and_is_remembered(
    qtbot, make_window, tiny_model_path: Path, tmp_path: Path
) -> None:
    window = make_window(build_tiny_model(tmp_path / "cam.onnx", cam=True))
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    preview, check = window.preview, window.preview.cam_check
    assert check.isEnabled() and not check.isChecked()  # off by default
    image = green_over_black(tmp_path / "keyboard.png")
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [image]))
    window.view.select_proxy_row(0)
    assert CLASS_NAMES[preview.row.top_index] == "Keyboard"
    assert preview.row.prediction.cam.shape == CAM_GRID
    qtbot.waitUntil(lambda: not preview.image_view.pending, timeout=5000)
    assert preview.heatmap is None and preview.image_view.overlay.isNull()
    plain = preview.image_view.grab().toImage()

    check.click()  # the user ticks it
    heat = preview.heatmap
    assert heat.shape == overlay_size(CAM_GRID)
    assert heat[0].min() > 0.95 and heat[-1].max() < 0.05  # the green part, not the black
    assert not preview.image_view.overlay.isNull()
    overlaid = preview.image_view.grab().toImage()
    assert overlaid != plain
    centre = preview.image_view.rect().center()  # in the green part, the hottest
    before, after = plain.pixelColor(centre), overlaid.pixelColor(centre)
    assert before.red() < 30 and before.green() > 220
    assert after.red() > 100  # the red of the heat scale, over the green image
    assert window.settings.show_cam()

    check.click()  # and clears it: the plain image again
    assert preview.heatmap is None
    assert preview.image_view.grab().toImage() == plain
    check.click()
    window.close()

    second = make_window(tiny_model_path)  # a model without CAM, the same settings file
    qtbot.waitUntil(lambda: second.engine is not None, timeout=RUN_TIMEOUT_MS)
    check = second.preview.cam_check
    assert not check.isEnabled() and not check.isChecked()
    assert check.toolTip() == NO_CAM_TIP and "--cam" in check.toolTip()
    assert second.settings.show_cam()  # the choice survives a model without CAM
    second.open_model(str(tmp_path / "cam.onnx"))
    qtbot.waitUntil(lambda: second.engine.has_cam, timeout=RUN_TIMEOUT_MS)
    assert check.isEnabled() and check.isChecked()  # remembered across windows


def previewed_by_a_cam_model(qtbot, make_window, tmp_path: Path, resize: str, photo: Path):
    """A window whose tiny CAM model resizes by `resize`, with `photo` classified and its
    row shown in the preview."""
    from desktop.core.preprocessing import contract

    metadata = {**tiny_metadata(cam=True), "preprocessing": contract(resize)}
    window = make_window(build_tiny_model(tmp_path / f"{resize}.onnx", cam=True, metadata=metadata))
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [photo]))
    window.view.select_proxy_row(0)
    qtbot.waitUntil(lambda: not window.preview.image_view.pending, timeout=5000)
    return window


def test_the_map_of_a_letterboxing_model_lies_over_its_input_not_the_photo(
    qtbot, make_window, tmp_path: Path
) -> None:
    from PySide6.QtCore import QRectF

    wide = tmp_path / "wide.png"
    Image.new("RGB", (128, 32), (0, 255, 0)).save(wide)  # 4:1: a quarter of the input high
    window = previewed_by_a_cam_model(qtbot, make_window, tmp_path, "letterbox", wide)
    # The 4x2 map covers the padded 32x32 input: drawn over a 400x100 photo it spans 400x400,
    # centred on it (and cut to it when painted), not squeezed into the photo.
    view = window.preview.image_view
    assert view.overlay_rect(QRectF(10, 20, 400, 100)) == QRectF(10, -130, 400, 400)


def test_the_map_of_an_item_cropping_model_lies_over_the_item_and_dims_the_rest(
    qtbot, make_window, tmp_path: Path
) -> None:
    from PySide6.QtCore import QPoint, QRectF

    pixels = np.full((300, 400, 3), 128, dtype=np.uint8)  # a grey table, 4:3
    pixels[100:150, 250:300] = (255, 0, 0)  # a small red item, right of centre
    photo = tmp_path / "table.png"
    Image.fromarray(pixels).save(photo)
    window = previewed_by_a_cam_model(qtbot, make_window, tmp_path, "item", photo)
    assert CLASS_NAMES[window.preview.row.top_index] == "Battery"  # the item, not the table
    # The input was the item's square (50 px, 8 % margin: 58): drawn over a 400x300 photo
    # shown at 800x600, the map covers that square and nothing else.
    view = window.preview.image_view
    rect = view.overlay_rect(QRectF(0, 0, 800, 600))
    assert abs(rect.center().x() - 550) <= 4 and abs(rect.center().y() - 250) <= 4
    assert abs(rect.width() - 116) <= 6 and abs(rect.height() - 116) <= 6
    plain = view.grab().toImage()
    window.preview.cam_check.click()
    overlaid = view.grab().toImage()
    # The table at the photo's left, far from the item, which the model never saw, is
    # dimmed like the coolest part of the map.
    table = QPoint(view.width() // 10, view.height() // 2)
    assert plain.pixelColor(table).name() == "#808080"  # the photo, not the pane around it
    assert overlaid.pixelColor(table).lightness() < plain.pixelColor(table).lightness() - 30


def test_cam_checkbox_is_disabled_for_a_model_without_cam(
    qtbot, window: MainWindow, sample_images_dir: Path
) -> None:
    check = window.preview.cam_check
    assert not window.engine.has_cam
    assert not check.isEnabled() and not check.isChecked()
    assert "--cam" in check.toolTip()
    run_to_end(qtbot, window, lambda: drop(window.drop_area, [sample_images_dir]))
    window.view.select_proxy_row(0)
    assert window.preview.row.prediction.cam is None
    assert window.preview.heatmap is None and window.preview.image_view.overlay.isNull()


def test_flip_average_from_the_run_menu_matches_the_engine_and_is_remembered(
    qtbot, make_window
) -> None:
    # The shipped model: the tiny one only sees colour means, which a mirror does not change.
    samples = Path(str(resources.files("desktop.assets") / "samples"))
    window = make_window(None)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    assert not window.commands.flip_average.isChecked()  # off by default: full speed
    window.commands.flip_average.trigger()
    assert window.controller.flip_average

    run_to_end(qtbot, window, lambda: drop(window.drop_area, [samples]))
    assert "averaged with mirrored images" in window.last_summary.describe()

    images = collect_images([samples]).images
    engine = Engine()
    averaged = {p.path: p for b in engine.classify(images, flip_average=True) for p in b}
    plain = {p.path: p for b in engine.classify(images) for p in b}
    got = rows_by_path(window)
    assert got.keys() == averaged.keys() and len(got) == 10
    for path, row in got.items():
        np.testing.assert_allclose(row.probabilities, averaged[path].probabilities, atol=1e-5)
        np.testing.assert_allclose(row.cam, averaged[path].cam, rtol=1e-4, atol=1e-4)
    changes = [np.abs(got[p].probabilities - plain[p].probabilities).max() for p in got]
    assert max(changes) > 1e-3  # the run really averaged, it did not just run plain
    window.close()

    second = make_window(None)
    assert second.commands.flip_average.isChecked() and second.controller.flip_average


def test_status_line_and_about_say_which_backbone_and_weights(
    qtbot, make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project_version: str
) -> None:
    metadata = {
        **tiny_metadata(),
        "weights": {
            "kind": "imagenet",
            "backbone": "efficientnet-lite0",
            "file": "efficientnet-lite0-57934424.pth",
            "sha256": "5" * 64,
            "license": "Apache-2.0",
        },
        "summary": "E-waste classifier, 10 classes, efficientnet-lite0 fine-tuned from ImageNet",
    }
    path = build_tiny_model(tmp_path / "lite0.onnx", metadata=metadata)
    window = make_window(path)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=RUN_TIMEOUT_MS)
    label = window.model_label.text()
    assert "efficientnet-lite0, ImageNet weights (Apache-2.0)" in label
    assert metadata["summary"] in window.model_label.toolTip()
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "desktop.gui.main_window.QMessageBox.exec",
        lambda box: shown.append((box.text(), box.detailedText())),
    )
    window.show_about()
    [(about, details)] = shown
    assert about.startswith(f"E-Waste Sorter {project_version}\n")  # the release, for IT
    assert metadata["summary"] in about and "5" * 64 in about
    assert "licence Apache-2.0" in about and "{" not in about  # sentences, not a dict
    # The tiny model's metadata says stretch, in the contract's word and the user's.
    assert "resized by stretch (the whole photo, stretched to a square)" in about
    assert json.loads(details)["weights"] == metadata["weights"]  # the whole record

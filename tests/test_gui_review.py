"""Confirm or correct: number keys, Enter, the context menu and the preview's picker set a
row's confirmed class; it filters, exports to the CSV, reopens from it and guides sorting."""

from __future__ import annotations

import csv
import errno
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from desktop.core.results import STATUS_REVIEW
from desktop.core.sort_manifest import MANIFEST_FILE
from desktop.gui.results_model import COL_CONFIRMED, COL_STATUS, CONFIRMED, CORRECTED, ROW_ROLE
from fixtures_images import write_solid
from tiny_model import AMBIGUOUS_COLOUR, CLASS_NAMES, PROTOTYPE_COLOURS

TIMEOUT_MS = 60_000
PHOTOS = ("Battery", "Mouse", "Printer", "Television")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        write_solid(folder / f"{name.lower()}.png", PROTOTYPE_COLOURS[name])
    return folder


def classify(qtbot, window, folder: Path) -> None:
    window.last_summary = None
    window.add_paths([str(folder)])
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=TIMEOUT_MS)


def confirmed_by_name(window) -> dict[str, str | None]:
    return {row.name: row.confirmed for row in window.results.rows}


def corrected_window(qtbot, make_window, folder: Path, row: int = 0, key=Qt.Key.Key_3):
    """A window that classified `folder` and where a person set one row's class with a key
    (by default battery.png, the first row, to Microwave)."""
    window = make_window()
    classify(qtbot, window, folder)
    select(window, row)
    QTest.keyClick(window.view, key)
    return window


def select(window, *proxy_rows: int) -> None:
    """Select these rows, as a ctrl-click on each would."""
    window.view.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in proxy_rows:
        window.view.selectionModel().select(window.proxy.index(row, 0), flags)


def test_keys_confirm_correct_and_clear_the_selected_rows(qtbot, make_window, folder):
    window = make_window()
    classify(qtbot, window, folder)
    legend = window.key_legend.text().replace("\u00a0", " ")  # its spaces do not break
    assert legend.startswith("Enter confirms the selection")
    assert "2 Keyboard" in legend and "0 Washing Machine" in legend
    window.view.setFocus()

    select(window, 0, 1)  # battery, mouse (arrival order)
    QTest.keyClick(window.view, Qt.Key.Key_2)
    select(window, 2)
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    assert confirmed_by_name(window) == {
        "battery.png": "Keyboard",
        "mouse.png": "Keyboard",
        "printer.png": "Printer",
        "television.png": None,
    }
    column = window.results.index(0, COL_CONFIRMED)
    assert column.data() == "Keyboard"
    assert "corrected it to Keyboard" in column.data(Qt.ItemDataRole.ToolTipRole)

    window.proxy.set_status_filter(CORRECTED)
    assert window.proxy.rowCount() == 2
    window.proxy.set_status_filter(CONFIRMED)
    assert window.proxy.rowCount() == 1
    window.proxy.set_status_filter(None)

    select(window, 1)
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    assert confirmed_by_name(window)["mouse.png"] is None


def three_unsure_photos(folder: Path) -> Path:
    """A folder of three photos the tiny model is unsure of: all three need review."""
    folder.mkdir()
    for index in range(3):
        write_solid(folder / f"unsure{index}.png", AMBIGUOUS_COLOUR)
    return folder


def test_a_checked_row_leaves_the_review_queue_and_error_rows_take_no_class(
    qtbot, make_window, tmp_path
):
    folder = three_unsure_photos(tmp_path / "shift")
    write_solid(folder / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    (folder / "empty.jpg").write_bytes(b"")
    window = make_window()
    classify(qtbot, window, folder)
    assert window.counts_label.full_text == "5 results: 1 ok · 3 need review · 1 error"
    window.view.setFocus()

    window.filter_bar.status_combo.setCurrentIndex(
        window.filter_bar.status_combo.findData(STATUS_REVIEW)
    )
    assert window.proxy.rowCount() == 3
    window.view.select_proxy_row(0)
    QTest.keyClick(window.view, Qt.Key.Key_Return)  # as predicted
    QTest.keyClick(window.view, Qt.Key.Key_3)  # the next one, selected for the worker: Microwave
    assert window.proxy.rowCount() == 1  # what is left to review
    assert len(window.view.selectionModel().selectedRows()) == 1
    assert window.counts_label.full_text == (
        "5 results: 1 ok · 1 needs review · 1 error · 2 checked by a person"
    )
    window.filter_bar.status_combo.setCurrentIndex(0)  # All
    states = [window.results.index(i, COL_STATUS).data() for i in range(5)]
    assert sorted(states) == ["confirmed", "corrected", "error", "needs review", "ok"]

    [error_row] = [i for i, row in enumerate(window.results.rows) if row.name == "empty.jpg"]
    window.view.select_proxy_row(
        window.proxy.mapFromSource(window.results.index(error_row, 0)).row()
    )
    QTest.keyClick(window.view, Qt.Key.Key_3)
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    assert confirmed_by_name(window)["empty.jpg"] is None  # nobody saw it: no class for it


def test_enter_leaves_an_unknown_item_unconfirmed_and_says_why(qtbot, make_window, folder):
    from dataclasses import replace

    # "Confirm as predicted" on an unknown item filed it as its nearest class, which the
    # model had said it is not.
    window = make_window()
    classify(qtbot, window, folder)
    odd = replace(window.results.rows[0].prediction, path=str(folder / "cable.png"))
    window.results.append_predictions([replace(odd, unknown=True, unknown_score=3.0)])
    window.view.setFocus()
    select(window, 0, window.proxy.rowCount() - 1)  # battery.png and the unknown item
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    assert confirmed_by_name(window)["battery.png"] == "Battery"
    assert confirmed_by_name(window)["cable.png"] is None
    assert window.statusBar().currentMessage() == (
        "1 unknown item left unconfirmed: none of the classes, says the model; set one with "
        "its key (1-9, 0) if it is one"
    )
    select(window, window.proxy.rowCount() - 1)
    QTest.keyClick(window.view, Qt.Key.Key_6)  # a person who knows it is a PCB says so
    assert confirmed_by_name(window)["cable.png"] == "PCB"
    window.statusBar().clearMessage()
    QTest.keyClick(window.view, Qt.Key.Key_Return)  # it keeps that class: not "unconfirmed"
    assert confirmed_by_name(window)["cable.png"] == "PCB"
    assert "unconfirmed" not in window.statusBar().currentMessage()


def test_the_preview_picker_under_the_review_filter_hands_on_the_selection(
    qtbot, make_window, tmp_path
):
    folder = three_unsure_photos(tmp_path / "shift")
    window = make_window()
    classify(qtbot, window, folder)
    window.filter_bar.status_combo.setCurrentIndex(
        window.filter_bar.status_combo.findData(STATUS_REVIEW)
    )
    window.view.select_proxy_row(0)
    picker = window.preview.class_picker
    picker.activated.emit(picker.findData("Mouse"))  # a click, as the keys would do
    # The settled row left the filter: the next one is selected, and is what the preview
    # shows, so the worker goes on click after click.
    assert window.proxy.rowCount() == 2
    [selected] = window.view.selectionModel().selectedRows()
    assert window.preview.row is not None and window.preview.row.confirmed is None
    assert selected.data(ROW_ROLE) is window.preview.row


def test_the_context_menu_and_the_preview_picker_set_a_class(qtbot, make_window, folder):
    window = make_window()
    classify(qtbot, window, folder)
    select(window, 3)
    menu = window.view.row_menu()
    [set_class] = [a for a in menu.actions() if a.text() == "Set class"]
    [mouse] = [a for a in set_class.menu().actions() if a.text().startswith("Mouse")]
    assert mouse.text() == "Mouse\t5"
    mouse.trigger()
    assert confirmed_by_name(window)["television.png"] == "Mouse"

    window.view.select_proxy_row(0)  # battery.png in the preview
    picker = window.preview.class_picker
    assert picker.currentText() == "(not confirmed)"
    picker.activated.emit(picker.findData("PCB"))  # the user picks PCB
    assert confirmed_by_name(window)["battery.png"] == "PCB"
    window.view.select_proxy_row(3)
    assert picker.currentText() == "Mouse"  # the picker follows the row shown


def reviewed_and_exported(qtbot, make_window, folder: Path, out: Path):
    """A window that classified `folder`, where the worker corrected battery.png to
    Microwave and exported the CSV to `out`."""
    window = make_window()
    classify(qtbot, window, folder)
    select(window, 0)
    QTest.keyClick(window.view, Qt.Key.Key_3)  # battery.png is a Microwave, says the worker
    call = window.export_csv(out)
    qtbot.waitUntil(lambda: call.done, timeout=TIMEOUT_MS)
    return window


def test_corrections_go_to_the_csv_come_back_from_it_and_guide_the_sort(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    out = tmp_path / "reviewed.csv"
    reviewed_and_exported(qtbot, make_window, folder, out)
    with open(out, newline="", encoding="utf-8-sig") as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    assert rows["battery.png"]["confirmed_class"] == "Microwave"
    assert rows["battery.png"]["predicted_class"] == "Battery"  # the documented columns stay
    assert rows["mouse.png"]["confirmed_class"] == ""

    (folder / "printer.png").unlink()
    shown = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Leave them out", shown))
    reopened = make_window()
    reopen(qtbot, reopened, out)
    assert confirmed_by_name(reopened) == {
        "battery.png": "Microwave",
        "mouse.png": None,
        "television.png": None,
    }
    assert "Photos of reviewed.csv not found where it says (1)" in shown[0]
    assert reopened.statusBar().currentMessage() == "Opened reviewed.csv: 3 photos"
    assert str(folder / "printer.png") in shown[0]

    dest = tmp_path / "sorted"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(dest))
    reopened.sorting.sort_into_folders(how="copy")
    qtbot.waitUntil(lambda: not reopened.sorting.busy, timeout=TIMEOUT_MS)
    assert (dest / "Microwave" / "battery.png").is_file()


def reopen(qtbot, window, csv_path: Path) -> None:
    """File > Open results CSV…, until its rows are in (it reads on a pool thread)."""
    window.open_csv(str(csv_path))
    # Read on the pool: the window goes on painting, and File > Open results waits.
    assert window.reopen.busy and not window.commands.open_csv.isEnabled()
    qtbot.waitUntil(lambda: not window.reopen.busy, timeout=TIMEOUT_MS)


def test_a_csv_opened_over_rows_already_in_the_table_brings_its_classes(
    qtbot, make_window, folder, tmp_path
):
    # Yesterday's reviewed CSV, opened once the same folder is in the table again (a watch
    # started on it, say): its classes go on the rows that have none, and the status bar
    # says so; a class a person set here since stays.
    out = tmp_path / "yesterday.csv"
    reviewed_and_exported(qtbot, make_window, folder, out)  # battery.png: Microwave
    with open(out, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    [mouse] = [row for row in rows if Path(row["path"]).name == "mouse.png"]
    mouse["confirmed_class"] = "Keyboard"  # corrected yesterday too
    [television] = [row for row in rows if Path(row["path"]).name == "television.png"]
    television["confirmed_class"] = "Player"  # and this one
    with open(out, "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    window = make_window()
    classify(qtbot, window, folder)
    [mouse_row] = [i for i, r in enumerate(window.results.rows) if r.name == "mouse.png"]
    window.results.set_confirmed([mouse_row], "Printer")  # the worker's word today
    [tv] = [i for i, r in enumerate(window.results.rows) if r.name == "television.png"]
    window.results.set_confirmed([tv], "PCB")
    window.results.set_confirmed([tv], None)  # and this one, cleared today
    reopen(qtbot, window, out)
    assert confirmed_by_name(window) == {
        "battery.png": "Microwave",
        "mouse.png": "Printer",
        "printer.png": None,
        "television.png": None,
    }
    assert window.statusBar().currentMessage() == (
        "Opened yesterday.csv: 4 photos; its classes set on 1 row already in the table; "
        "2 rows kept what was set here since"
    )
    # Today's Printer and today's clear are in no CSV yet; Microwave is in that one.
    assert window.results.unsaved_review() == 2
    assert len(window.results.rows) == 4


def answer(box: QMessageBox, button: str, shown: list[str]) -> None:
    """What a worker clicks in a box: the button whose text starts with `button`."""
    shown.append(box.text())
    [clicked] = [b for b in box.buttons() if b.text().replace("&", "").startswith(button)]
    clicked.click()


def test_open_model_says_a_review_is_lost_only_if_the_classes_differ(
    qtbot, make_window, folder, tiny_model_path, monkeypatch
):
    # A model of the same classes keeps the table and its classes: "it is lost" alone sent
    # a worker to export for nothing, or frightened them off a model they needed.
    window = corrected_window(qtbot, make_window, folder)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(tiny_model_path), ""))
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Open anyway", shown))
    window.commands.open_model.trigger()
    assert shown == [
        "What a person confirmed, corrected or cleared for 1 photo is in no CSV yet: export "
        "it first, or it is lost if the new model's classes differ (same classes: the table "
        "stays)."
    ]
    qtbot.waitUntil(lambda: not window.model_loading, timeout=TIMEOUT_MS)
    assert confirmed_by_name(window)["battery.png"] == "Microwave"  # the same classes


def test_the_dialogs_start_in_the_folder_last_used_for_their_kind(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    out = tmp_path / "exports" / "shift.csv"
    out.parent.mkdir()
    window = reviewed_and_exported(qtbot, make_window, folder, out)
    started: list[tuple[str, str]] = []

    def dialog(answer):
        def ask(_parent, title, start="", *_rest, **_options):
            started.append((title, start))
            return answer

        return ask

    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog(("", "")))
    window.commands.open_csv.trigger()  # where the CSVs were exported, not the working folder
    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog(("", "")))
    summary = window.show_summary()
    summary.save_png()  # there too, with a name of its own
    summary.close()
    camera = tmp_path / "camera"
    camera.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", dialog(str(camera)))
    window.set_watching(True)
    window.set_watching(False)
    window.set_watching(True)  # the camera's folder again, the next time
    window.set_watching(False)
    assert started[0] == ("Open results", str(out.parent))
    assert Path(started[1][1]).parent == out.parent
    assert Path(started[1][1]).name.startswith("ewaste-summary-")
    assert started[3] == ("Watch folder", str(camera))


def test_a_csv_written_before_a_move_finds_the_photos_in_the_sort_folder(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    out = tmp_path / "before-the-sort.csv"
    window = reviewed_and_exported(qtbot, make_window, folder, out)
    dest = tmp_path / "sorted"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(dest))
    window.sorting.sort_into_folders(how="move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert not any(p.is_file() for p in folder.iterdir())

    # The next day the CSV is reopened: its photos are in the sort's folders now.
    (dest / "Mouse" / "mouse.png").unlink()  # and one was thrown away since
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Find them", shown))
    monkeypatch.setattr(QMessageBox, "information", lambda *a: shown.append(a[2]))
    reopened = make_window()
    reopen(qtbot, reopened, out)
    assert f"Photos of {out.name} not found where it says ({window.results.rowCount()})" in shown[0]
    assert reopened.results.rowCount() == window.results.rowCount() - 1
    assert all(dest in Path(row.path).parents for row in reopened.results.rows)
    assert confirmed_by_name(reopened)["battery.png"] == "Microwave"
    assert shown[1].endswith(f"(1):\n{folder / 'mouse.png'}\n\nLeft out.")

    # A folder no sort went into is said to be one, not searched in silence.
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: shown.append(a[1:]))
    reopen(qtbot, make_window(), out)
    assert shown[-1] == (
        "Not a sort folder",
        f"{tmp_path} holds no manifest.csv: no sort went into it.",
    )


def test_a_csv_written_after_a_move_finds_the_photos_the_undo_put_back(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    # Sorted (moved), corrected, exported: the CSV names the photos in the sort's folders.
    # The sort is undone; the CSV, reopened, finds them back in their folder, classes kept.
    dest = tmp_path / "sorted"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(dest))
    window = make_window()
    classify(qtbot, window, folder)
    window.sorting.sort_into_folders(how="move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    [mouse] = [i for i, r in enumerate(window.results.rows) if r.name == "mouse.png"]
    window.results.set_confirmed([mouse], "Keyboard")
    out = tmp_path / "after-the-sort.csv"
    call = window.export_csv(out)
    qtbot.waitUntil(lambda: call.done, timeout=TIMEOUT_MS)
    window.sorting.undo_sort(str(dest))
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert not (dest / MANIFEST_FILE).exists()

    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Find them", shown))
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: shown.append(a[2]))
    reopened = make_window()
    reopen(qtbot, reopened, out)
    assert sorted(Path(row.path) for row in reopened.results.rows) == sorted(folder.iterdir())
    assert confirmed_by_name(reopened)["mouse.png"] == "Keyboard"
    assert len(shown) == 1  # the question only: no "not a sort folder"


def test_clear_and_quit_ask_before_a_persons_classes_are_lost(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    window = corrected_window(qtbot, make_window, folder)  # battery.png: Microwave
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Cancel", asked))
    window.commands.clear.trigger()
    assert window.results.rowCount() == 4  # kept
    assert "for 1 photo is in no CSV yet" in asked[-1]

    # Export CSV… in the question: the CSV is written, then the table cleared.
    out = tmp_path / "shift.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Export CSV", asked))
    window.commands.clear.trigger()
    qtbot.waitUntil(lambda: window.results.rowCount() == 0, timeout=TIMEOUT_MS)
    with open(out, newline="", encoding="utf-8-sig") as handle:
        rows = {Path(r["path"]).name: r["confirmed_class"] for r in csv.DictReader(handle)}
    assert rows["battery.png"] == "Microwave" and len(asked) == 2

    # Nothing a person set, or all of it exported: no question.
    classify(qtbot, window, folder)
    window.commands.clear.trigger()
    assert window.results.rowCount() == 0 and len(asked) == 2
    classify(qtbot, window, folder)
    select(window, 1)
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    call = window.export_csv(out)
    qtbot.waitUntil(lambda: call.done, timeout=TIMEOUT_MS)
    window.commands.clear.trigger()
    assert window.results.rowCount() == 0 and len(asked) == 2

    # File > Quit after a change since the export: asked; Quit anyway closes.
    classify(qtbot, window, folder)
    select(window, 2)
    QTest.keyClick(window.view, Qt.Key.Key_Delete)  # nothing was set: no change counted
    QTest.keyClick(window.view, Qt.Key.Key_Return)
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Cancel", asked))
    window.commands.quit.trigger()
    assert window.isVisible() and len(asked) == 3
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Quit anyway", asked))
    window.commands.quit.trigger()
    assert not window.isVisible() and len(asked) == 4


def test_what_is_unsaved_and_a_clear_put_off_for_its_export(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    window = make_window()
    classify(qtbot, window, folder)
    out = tmp_path / "shift.csv"

    def export() -> None:
        call = window.export_csv(out)
        qtbot.waitUntil(lambda: call.done, timeout=TIMEOUT_MS)

    select(window, 0)
    QTest.keyClick(window.view, Qt.Key.Key_3)
    export()
    assert window.results.unsaved_review() == 0
    QTest.keyClick(window.view, Qt.Key.Key_Delete)  # taken back: the CSV still says Microwave
    assert window.results.unsaved_review() == 1
    select(window, 1)
    QTest.keyClick(window.view, Qt.Key.Key_4)
    export()
    reopened = make_window()
    reopen(qtbot, reopened, out)  # its classes are in the CSV it came from
    assert confirmed_by_name(reopened)["mouse.png"] == "Mobile"
    assert reopened.results.unsaved_review() == 0

    # Clear, Export CSV…, and photos come in while it is written: they stay.
    select(window, 2)
    QTest.keyClick(window.view, Qt.Key.Key_5)
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Export CSV", asked))
    said: list[str] = []
    window.statusBar().messageChanged.connect(said.append)
    window.commands.clear.trigger()
    assert window.exporting
    later = tmp_path / "later"
    later.mkdir()
    write_solid(later / "pcb.png", PROTOTYPE_COLOURS["PCB"])
    window.last_summary = None
    window.add_paths([str(later)])
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT_MS)
    assert window.results.rowCount() == 5
    assert "Exported; photos added meanwhile are still in the table" in said


def crash_with_a_correction(qtbot, make_window, folder: Path, row: int, key: Qt.Key) -> None:
    """A window that corrects one row and ends as a crash would: not a person's Quit, so
    nothing is asked and the copy is kept."""
    corrected_window(qtbot, make_window, folder, row, key).close()


def leftovers(folder: Path) -> list[str]:
    from desktop.gui.review_recovery import LEFTOVER_PATTERN

    return sorted(p.name for p in folder.glob(LEFTOVER_PATTERN))


def test_a_review_in_no_csv_survives_a_crash_and_is_offered_back(
    qtbot, make_window, folder, tmp_path
):
    from desktop.gui.review_recovery import RECOVERY_FILE

    window = corrected_window(qtbot, make_window, folder)  # battery.png: Microwave
    copy = tmp_path / RECOVERY_FILE  # beside the settings, in the app's data folder
    qtbot.waitUntil(copy.is_file, timeout=TIMEOUT_MS)  # written a moment after the change
    window.close()  # as a crash ends it: not a person's Quit, so nothing is asked
    assert copy.is_file()

    # The next start moves it aside and offers it back, in the empty window.
    later = make_window()
    offer = later.drop_area.empty_state
    assert offer.reopen_recovery.isVisible() and offer.reopen_recovery.isEnabled()
    assert "left what a person confirmed or corrected in no CSV." in offer.recovery.text()
    assert not copy.exists() and len(leftovers(tmp_path)) == 1
    offer.reopen_recovery.click()
    qtbot.waitUntil(lambda: not later.reopen.busy, timeout=TIMEOUT_MS)
    assert confirmed_by_name(later)["battery.png"] == "Microwave"
    assert later.results.unsaved_review() == 1  # back in the table, still in no CSV of theirs
    assert later.statusBar().currentMessage() == "Opened the earlier session's review: 4 photos"
    assert copy.is_file() and leftovers(tmp_path) == []  # this session's copy has it now

    # Exported at last: the copy goes.
    call = later.export_csv(tmp_path / "shift.csv")
    qtbot.waitUntil(lambda: call.done, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not copy.exists(), timeout=TIMEOUT_MS)


def test_the_crash_copy_is_written_while_a_person_goes_on_confirming(
    qtbot, make_window, folder, tmp_path
):
    from desktop.gui.review_recovery import RECOVERY_FILE, SAVE_DELAY_MS

    window = make_window()
    classify(qtbot, window, folder)
    copy = tmp_path / RECOVERY_FILE
    # A class set every third of the copy's delay, for three delays: a worker going through
    # the rows with the number keys. Before, each change put the copy off again.
    for step in range(9):
        select(window, step % window.proxy.rowCount())
        QTest.keyClick(window.view, Qt.Key.Key_3 if step % 2 else Qt.Key.Key_4)
        qtbot.wait(SAVE_DELAY_MS // 3)
    assert copy.is_file()


def test_a_review_left_by_a_crash_is_said_to_wait_while_the_table_hides_its_offer(
    qtbot, make_window, folder, tmp_path
):
    # Started with photos (a desktop shortcut, "Open with"), or a folder dropped at once:
    # the table takes the empty window's place, and with it the offer.
    crash_with_a_correction(qtbot, make_window, folder, 0, Qt.Key.Key_3)  # Microwave
    window = make_window()
    note = window.recovery_offer.waiting
    assert not note.isVisible()  # the offer itself is on screen
    classify(qtbot, window, folder)
    assert note.isVisible() and note.text().startswith("Unsaved review of ")
    assert "Clear results" in note.toolTip() and "to reopen it" in note.toolTip()
    window.commands.clear.trigger()  # nothing a person set here: no question
    assert not note.isVisible() and window.drop_area.empty_state.reopen_recovery.isVisible()


def test_a_crash_copy_that_cannot_be_written_is_said_and_written_once_it_can(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    # The station's disk fills up: the copy that outlives a crash stops following the
    # review, and the worker must know to export before more is lost.
    import desktop.gui.review_recovery as review_recovery
    from desktop.core.csv_export import write_results_csv
    from desktop.gui.style import ERROR_COLOR
    from sort_faults import disk_full

    monkeypatch.setattr(review_recovery, "write_results_csv", disk_full)
    monkeypatch.setattr(review_recovery, "RETRY_MS", 200)
    window = corrected_window(qtbot, make_window, folder)  # battery.png: Microwave
    note = window.recovery_offer.waiting
    qtbot.waitUntil(note.isVisible, timeout=TIMEOUT_MS)
    assert note.text() == "Crash copy not saved"
    assert ERROR_COLOR.name() in note.styleSheet()  # a warning: work may be lost
    assert "(No space left on device): export the review now (Ctrl+E)" in note.toolTip()
    copy = tmp_path / review_recovery.RECOVERY_FILE
    assert not copy.exists()

    monkeypatch.setattr(review_recovery, "write_results_csv", write_results_csv)  # space freed
    qtbot.waitUntil(copy.is_file, timeout=TIMEOUT_MS)  # tried again, with no change made
    qtbot.waitUntil(lambda: not note.isVisible(), timeout=TIMEOUT_MS)
    assert ERROR_COLOR.name() not in note.styleSheet()


def test_a_failed_crash_copy_of_a_review_cleared_meanwhile_is_not_said(
    qtbot, make_window, folder, monkeypatch
):
    import desktop.gui.review_recovery as review_recovery

    def slow_and_full(*args, **kwargs):
        time.sleep(0.2)
        raise OSError(errno.ENOSPC, "No space left on device")

    window = corrected_window(qtbot, make_window, folder)
    monkeypatch.setattr(review_recovery, "write_results_csv", slow_and_full)
    window.recovery._timer.stop()
    window.recovery._save()  # the write on its way when the worker clears the table
    window.recovery.discard()
    qtbot.wait(300)  # its outcome arrives
    assert window.recovery.trouble is None
    assert not window.recovery_offer.waiting.isVisible()


def test_an_older_writes_late_success_never_hides_a_failed_write_made_since(
    qtbot, make_window, folder, monkeypatch
):
    import desktop.gui.review_recovery as review_recovery

    writes: list[int] = []

    def slow_then_full(*args, **kwargs):
        writes.append(1)
        if len(writes) == 1:
            time.sleep(0.2)  # an older snapshot, written in the background
            return
        raise OSError(errno.ENOSPC, "No space left on device")

    window = corrected_window(qtbot, make_window, folder)
    monkeypatch.setattr(review_recovery, "write_results_csv", slow_then_full)
    window.recovery._timer.stop()
    window.recovery._save()
    assert not window.recovery.flush(now=True)  # a leftover reopened: written at once
    qtbot.wait(300)  # the older write's success arrives
    assert window.recovery.trouble == "No space left on device"


def test_a_second_window_says_it_keeps_no_crash_copy(qtbot, make_window, folder):
    # A second window (a shortcut double-clicked) leaves the copy to the first: its worker
    # is told to export as they go, or a crash there would lose their review unannounced.
    first = make_window()
    second = make_window()
    assert not first.recovery_offer.waiting.isVisible()
    note = second.recovery_offer.waiting
    assert note.isVisible() and note.text() == "No crash copy in this window"
    assert note.toolTip().startswith("Another window of the app keeps the copy")
    classify(qtbot, second, folder)
    assert note.isVisible()  # while the window is open, table or not


def test_reviews_left_by_crashes_are_each_kept_until_reopened_in_full_or_discarded(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    from desktop.gui.review_recovery import RECOVERY_FILE

    crash_with_a_correction(qtbot, make_window, folder, 0, Qt.Key.Key_3)  # Microwave
    # The next session ignores the offer, works, and crashes too: one more, none replaced.
    crash_with_a_correction(qtbot, make_window, folder, 1, Qt.Key.Key_5)  # Mouse
    window = make_window()
    assert len(leftovers(tmp_path)) == 2
    assert "(1 older one after it)" in window.drop_area.empty_state.recovery.text()

    # A photo of the newest is missing (its share not back yet): reopened without it, the
    # copy stays offered.
    (folder / "mouse.png").rename(tmp_path / "mouse.png")
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Leave them out", shown))
    window.drop_area.empty_state.reopen_recovery.click()
    qtbot.waitUntil(lambda: not window.reopen.busy, timeout=TIMEOUT_MS)
    assert shown[0].startswith("Photos of the earlier session's review not found where it says")
    assert window.results.rowCount() == 3 and len(leftovers(tmp_path)) == 2
    assert "stays offered" in window.statusBar().currentMessage()

    # While a run is on, Reopen waits: the run would classify the reopened rows again.
    window.commands.clear.trigger()  # nothing a person set here: no question
    (tmp_path / "mouse.png").rename(folder / "mouse.png")
    offer = window.drop_area.empty_state
    window.add_paths([str(folder)])
    assert window.controller.busy and not offer.reopen_recovery.isEnabled()
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=TIMEOUT_MS)
    window.commands.clear.trigger()
    assert offer.reopen_recovery.isEnabled()

    # Discard asks first; the older one is offered next.
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Cancel", asked))
    offer.discard_recovery.click()
    assert "this cannot be undone" in asked[-1] and len(leftovers(tmp_path)) == 2
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Delete it", asked))
    offer.discard_recovery.click()
    assert len(leftovers(tmp_path)) == 1 and offer.reopen_recovery.isVisible()
    offer.reopen_recovery.click()
    qtbot.waitUntil(lambda: not window.reopen.busy, timeout=TIMEOUT_MS)
    assert confirmed_by_name(window)["battery.png"] == "Microwave"
    assert leftovers(tmp_path) == [] and (tmp_path / RECOVERY_FILE).is_file()

    # Quit anyway: nothing kept.
    monkeypatch.setattr(QMessageBox, "exec", lambda box: answer(box, "Quit anyway", []))
    window.commands.quit.trigger()
    assert not window.isVisible() and not (tmp_path / RECOVERY_FILE).exists()


def test_a_csv_of_other_classes_is_refused_with_a_message(
    qtbot, make_window, tmp_path, monkeypatch
):
    window = make_window()
    other = tmp_path / "other.csv"
    other.write_text("path,predicted_class,confidence,status,error,prob_A,prob_B\n")
    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warned.append(a[2]))
    reopen(qtbot, window, other)
    assert window.results.rowCount() == 0
    assert "not a results CSV of this model's classes" in warned[0]


def test_the_batch_summary_counts_by_class_and_status_and_saves_a_png(
    qtbot, make_window, folder, tmp_path, monkeypatch
):
    from PIL import Image

    from desktop.core.hashing import file_sha256

    window = corrected_window(qtbot, make_window, folder)  # battery.png: Microwave
    model = window.engine.model_path
    loaded = file_sha256(model)
    away = model.with_name(model.name + ".away")
    model.rename(away)  # gone since it was loaded (a stick pulled): the chart still names it
    try:
        dialog = window.show_summary()
    finally:
        away.rename(model)
    qtbot.addWidget(dialog)

    summary = dialog.summary
    assert summary.total == len(PHOTOS) and summary.errors == 0
    assert summary.of("Microwave", "ok") == 1 and summary.of("Battery", "ok") == 0
    assert summary.of("Mouse", "ok") == 1
    assert summary.model_name == "tiny-classifier.onnx" and summary.model_sha256 == loaded
    assert not dialog.picture.pixmap().isNull()
    saved = dialog.save_png(tmp_path / "shift.png")
    with Image.open(saved) as picture:
        assert picture.format == "PNG" and picture.width == 900
    assert dialog.saved_note.text() == f"Saved to {saved}"

    # A place that cannot be written is told in a message box, never a traceback.
    warned: list[str] = []
    monkeypatch.setattr(
        "desktop.gui.summary_dialog.QMessageBox.warning",
        staticmethod(lambda _parent, _title, text: warned.append(text)),
    )
    assert dialog.save_png(tmp_path / "shift.png" / "inside-a-file.png") is None
    assert len(warned) == 1 and "Cannot write" in warned[0]
    assert dialog.saved_note.text() == f"Saved to {saved}"


def test_after_a_filter_hides_the_selection_the_keys_act_on_the_row_the_preview_shows(
    qtbot, make_window, folder
):
    window = make_window()
    classify(qtbot, window, folder)
    window.view.setFocus()
    window.view.select_proxy_row(3)  # television.png
    window.proxy.set_class_filter(CLASS_NAMES.index("Mouse"))  # television is filtered out

    shown = window.preview.row
    assert shown is not None and shown.name == "mouse.png"
    assert window.view.current_result() is shown
    QTest.keyClick(window.view, Qt.Key.Key_3)
    assert confirmed_by_name(window)["mouse.png"] == "Microwave"
    assert confirmed_by_name(window)["television.png"] is None


def test_the_batch_summary_says_each_bars_split_in_words_within_the_picture(
    qtbot, make_window, tmp_path, monkeypatch
):
    # A bar's ok and needs-review parts differed only in colour (green and amber), which a
    # protanope cannot tell apart: the counts are written beside each bar.
    from PIL import ImageDraw

    from desktop.core.summary import MARGIN

    folder = three_unsure_photos(tmp_path / "shift")
    write_solid(folder / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    window = make_window()
    classify(qtbot, window, folder)
    drawn: list[tuple[str, tuple[int, int, int, int]]] = []
    draw_text = ImageDraw.ImageDraw.text

    def text(draw, xy, line, *args, **kwargs):
        drawn.append((line, draw.textbbox(xy, line, font=kwargs.get("font"))))
        return draw_text(draw, xy, line, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
    dialog = window.show_summary()
    qtbot.addWidget(dialog)

    lines = [line for line, _box in drawn]
    assert "1 (1 ok · 0 to review)" in lines  # mouse.png
    [unsure] = [n for n in CLASS_NAMES if dialog.summary.of(n, STATUS_REVIEW)]
    assert dialog.summary.of(unsure, STATUS_REVIEW) == 3
    assert "3 (0 ok · 3 to review)" in lines
    assert lines.count("0") == len(CLASS_NAMES) - 2  # the classes with no photo
    width = dialog.picture.pixmap().width()
    assert all(box[2] <= width - MARGIN for _line, box in drawn), drawn  # none cut off

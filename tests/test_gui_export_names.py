"""Export CSV… and the summary's Save PNG…: the name the user typed, the file written.

A name typed without its extension gets it after the dialog, which asked about the name it
was given: an existing file under the extended name is asked about too. A failure names
the user's file, never the hidden temporary one written first.
"""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

from fixtures_images import write_solid
from tiny_model import PROTOTYPE_COLOURS

TIMEOUT_MS = 60_000
EARLIER = "path,predicted_class\n/earlier/shift.png,Mouse\n"


@pytest.fixture
def window(make_window, tmp_path: Path, qtbot):
    """A window with two photos classified."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("Battery", "Mouse"):
        write_solid(folder / f"{name.lower()}.png", PROTOTYPE_COLOURS[name])
    window = make_window()
    window.last_summary = None
    window.add_paths([str(folder)])
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=TIMEOUT_MS)
    return window


def answer_dialogs(monkeypatch, names: list[str], replace: list[bool]) -> tuple[list, list]:
    """The save dialog answers `names` in turn ("" cancels); the "replace?" question
    answers `replace` in turn. Returns what each was asked (suggestion, question text)."""
    suggested: list[str] = []
    asked: list[str] = []

    def save_dialog(_parent, _title, suggestion, _filters, *rest):
        suggested.append(suggestion)
        return names.pop(0), ""

    def question(_parent, _title, text, *rest):
        asked.append(text)
        return QMessageBox.StandardButton.Yes if replace.pop(0) else QMessageBox.StandardButton.No

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return suggested, asked


def export_through_the_action(qtbot, window) -> None:
    window.commands.export.trigger()
    qtbot.waitUntil(lambda: not window.exporting, timeout=TIMEOUT_MS)


def test_export_asks_before_replacing_the_csv_a_name_without_csv_means(
    qtbot, window, tmp_path, monkeypatch
):
    # out/shift.csv is the earlier shift's; the user types "out/shift", which the dialog
    # found free, and the ".csv" added after it replaced the earlier file unasked.
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "shift.csv"
    earlier.write_text(EARLIER, encoding="utf-8")

    # No: the dialog opens again on the full name; cancelled there, nothing is written.
    suggested, asked = answer_dialogs(monkeypatch, [str(out / "shift"), ""], [False])
    export_through_the_action(qtbot, window)
    assert asked == ["shift.csv already exists.\nDo you want to replace it?"]
    assert suggested[1] == str(earlier)
    assert earlier.read_text(encoding="utf-8") == EARLIER
    assert sorted(p.name for p in out.iterdir()) == ["shift.csv"]

    # Yes: replaced, with this shift's rows.
    suggested, asked = answer_dialogs(monkeypatch, [str(out / "shift")], [True])
    export_through_the_action(qtbot, window)
    assert len(asked) == 1 and len(suggested) == 1
    with earlier.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0][0] == "path" and len(table) == 1 + window.results.rowCount()

    # A name free under its extension too: nothing to ask.
    suggested, asked = answer_dialogs(monkeypatch, [str(out / "next")], [])
    export_through_the_action(qtbot, window)
    assert asked == [] and (out / "next.csv").is_file()


def test_save_png_asks_before_replacing_the_png_a_name_without_png_means(
    qtbot, window, tmp_path, monkeypatch
):
    from PIL import Image

    dialog = window.show_summary()
    qtbot.addWidget(dialog)
    earlier = tmp_path / "shift.png"
    earlier.write_bytes(b"the earlier shift's summary")

    suggested, asked = answer_dialogs(monkeypatch, [str(tmp_path / "shift"), ""], [False])
    assert dialog.save_png() is None
    assert asked == ["shift.png already exists.\nDo you want to replace it?"]
    assert suggested[1] == str(earlier)
    assert earlier.read_bytes() == b"the earlier shift's summary"

    answer_dialogs(monkeypatch, [str(tmp_path / "shift")], [True])
    assert dialog.save_png() == str(earlier)
    with Image.open(earlier) as picture:
        assert picture.format == "PNG"


def test_a_failed_export_names_the_users_file_not_the_temporary_one(
    qtbot, window, tmp_path, monkeypatch
):
    warned: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "warning", staticmethod(lambda _p, _title, text: warned.append(text))
    )
    missing = tmp_path / "no such folder" / "ewaste.csv"
    call = window.export_csv(missing)
    qtbot.waitUntil(lambda: call.done, timeout=TIMEOUT_MS)
    folder = tmp_path / "dir.csv"  # a folder where the CSV would go
    folder.mkdir()
    call = window.export_csv(folder)
    qtbot.waitUntil(lambda: call.done, timeout=TIMEOUT_MS)

    assert warned == [
        f"Could not write {missing}: {os.strerror(errno.ENOENT)}",  # as the system words it
        f"Could not write {folder}: {os.strerror(errno.EISDIR)}",
    ]
    assert window.statusBar().currentMessage() == warned[-1]
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []


def test_a_failed_save_png_names_the_users_file_not_the_temporary_one(
    qtbot, window, tmp_path, monkeypatch
):
    dialog = window.show_summary()
    qtbot.addWidget(dialog)
    warned: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "warning", staticmethod(lambda _p, _title, text: warned.append(text))
    )
    missing = tmp_path / "no such folder" / "shift.png"
    folder = tmp_path / "dir.png"
    folder.mkdir()
    assert dialog.save_png(missing) is None and dialog.save_png(folder) is None
    assert warned == [
        f"Cannot write {missing}: {os.strerror(errno.ENOENT)}",  # as the system words it
        f"Cannot write {folder}: {os.strerror(errno.EISDIR)}",
    ]

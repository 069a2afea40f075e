"""File > Sort into folders… and Undo a sort…, driven in the real window (pytest-qt)."""

from __future__ import annotations

import csv
import errno
import os
import re
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel
from PySide6.QtWidgets import QFileDialog, QMessageBox

from desktop.core import sort_undo
from desktop.core.sort_manifest import MANIFEST_FILE, UNDONE_MANIFEST_FILE
from desktop.core.sorting import REVIEW_FOLDER
from fixtures_images import write_solid
from rich_text import as_read
from sort_faults import manifest_fails_after
from tiny_model import AMBIGUOUS_COLOUR, PROTOTYPE_COLOURS

TIMEOUT_MS = 60_000


def manifest_rows(dest: Path) -> list[dict[str, str]]:
    with open(dest / MANIFEST_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def window(make_window):
    return make_window()


def photos(folder: Path) -> Path:
    folder.mkdir()
    for name in ("Battery", "Mouse", "Printer"):
        write_solid(folder / f"{name.lower()}.png", PROTOTYPE_COLOURS[name])
    write_solid(folder / "unsure.png", AMBIGUOUS_COLOUR)
    return folder


def classify(qtbot, window, folder: Path) -> None:
    window.last_summary = None
    window.add_paths([str(folder)])
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=TIMEOUT_MS)


def classified_photos(qtbot, window, tmp_path: Path) -> Path:
    """`photos` in tmp_path/photos, classified in the window."""
    folder = photos(tmp_path / "photos")
    classify(qtbot, window, folder)
    return folder


def test_sort_by_menu_moves_the_photos_and_undo_puts_them_back(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    folder = classified_photos(qtbot, window, tmp_path)
    dest = tmp_path / "sorted"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(dest))
    # The copy-or-move question: the user clicks "Move".
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.buttons()[1].click())

    assert window.commands.sort.isEnabled()
    window.view.select_proxy_row(0)  # the preview shows a photo while it is moved
    window.commands.sort.trigger()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)

    assert sorted(p.name for p in folder.iterdir()) == []
    assert as_read(window.preview.title.toolTip()) == window.preview.row.path  # where it is now
    assert as_read(window.preview.title.text()).endswith(str(Path("sorted", "Battery")))
    assert (dest / "Battery" / "battery.png").is_file()
    assert (dest / REVIEW_FOLDER / "unsure.png").is_file()
    assert (dest / MANIFEST_FILE).is_file()
    assert window.statusBar().currentMessage().startswith("Moved 4 photos into")
    # The rows follow the photos: the preview and an exported CSV find them where they are.
    paths = {row.name: Path(row.path) for row in window.results.rows}
    assert paths["battery.png"] == dest / "Battery" / "battery.png"
    assert all(path.is_file() for path in paths.values())
    window.view.select_proxy_row(0)
    qtbot.waitUntil(lambda: not window.preview.image_view.pending, timeout=5000)
    assert not window.preview.image_view.image.isNull()

    # The worker corrects the mouse after the sort and sorts again: it moves, row and all.
    [mouse] = [i for i, row in enumerate(window.results.rows) if row.name == "mouse.png"]
    window.results.set_confirmed([mouse], "Keyboard")
    window.commands.sort.trigger()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert window.statusBar().currentMessage() == (
        f"Moved no new photo into {dest}; 3 already there from an earlier sort; "
        "1 moved to its new folder"
    )
    assert Path(window.results.rows[mouse].path) == dest / "Keyboard" / "mouse.png"
    assert not (dest / "Mouse").exists() or not any((dest / "Mouse").iterdir())
    # That was a slip: the worker clears it (Delete) and sorts again; back where the model
    # files it.
    window.results.set_confirmed([mouse], None)
    window.commands.sort.trigger()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert Path(window.results.rows[mouse].path) == dest / "Mouse" / "mouse.png"
    assert not any((dest / "Keyboard").iterdir())

    # Meanwhile the camera's counter reset: a new photo took the battery's old name.
    write_solid(folder / "battery.png", PROTOTYPE_COLOURS["PCB"])
    window.commands.undo_sort.trigger()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert sorted(p.name for p in folder.iterdir()) == [
        "battery (2).png",
        "battery.png",
        "mouse.png",
        "printer.png",
        "unsure.png",
    ]
    assert (dest / UNDONE_MANIFEST_FILE).is_file()
    message = window.statusBar().currentMessage()
    assert message.startswith("Put back 4 photos")
    assert message.endswith("; 1 as battery (2).png, its name being taken")
    # Each row is its own photo where it is now, never the new photo under its old name.
    rows = {row.name: Path(row.path) for row in window.results.rows}
    assert rows["battery (2).png"] == folder / "battery (2).png" and "battery.png" not in rows
    assert sorted(rows.values()) == sorted(p for p in folder.iterdir() if p.name != "battery.png")


def test_a_photo_replaced_since_it_was_classified_is_not_filed_under_the_old_class(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    # Later in the shift a camera's counter reset: a printer now has the battery's name.
    folder = classified_photos(qtbot, window, tmp_path)
    write_solid(folder / "battery.png", PROTOTYPE_COLOURS["Printer"])
    warned: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text: warned.append(text))
    dest = tmp_path / "sorted"
    window.sorting.sort_into_folders(str(dest), how="move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert not (dest / "Battery").exists()
    assert [p.name for p in folder.iterdir()] == ["battery.png"]  # left where it is
    assert "battery.png: changed since it was classified" in as_read(" ".join(warned))


def test_photos_moved_to_a_stick_of_coarse_file_times_can_be_sorted_on(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    # A move to another file system copies the photo, whose time a FAT stick keeps to 2 s:
    # the row must take the time the file has there, or the next sort calls each one
    # changed since it was classified.
    import errno
    import os
    import shutil

    from desktop.core import file_placing

    def no_hard_links(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    real_copystat = shutil.copystat

    def copystat_to_two_seconds(source, target):
        real_copystat(source, target)
        coarse = os.stat(target).st_mtime_ns // 2_000_000_000 * 2_000_000_000 + 2_000_000_000
        os.utime(target, ns=(coarse, coarse))

    monkeypatch.setattr(file_placing.os, "link", no_hard_links)
    monkeypatch.setattr(file_placing.shutil, "copystat", copystat_to_two_seconds)
    warned: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text: warned.append(text))
    classified_photos(qtbot, window, tmp_path)
    for dest in (tmp_path / "stick", tmp_path / "sorted"):
        window.sorting.sort_into_folders(str(dest), how="move")
        qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
        assert window.statusBar().currentMessage().startswith(f"Moved 4 photos into {dest}")
    assert warned == []


def test_after_a_copy_sort_a_row_follows_its_photo_put_back_under_a_new_name(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    folder = classified_photos(qtbot, window, tmp_path)
    dest = tmp_path / "sorted"
    window.sorting.sort_into_folders(str(dest), how="copy")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    # The card is wiped and a new photo gets the battery's name: the undo puts the copy,
    # now the only battery photo, back beside it; its row goes with it.
    (folder / "battery.png").unlink()
    write_solid(folder / "battery.png", PROTOTYPE_COLOURS["PCB"])
    window.sorting.undo_sort(str(dest))
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    rows = {Path(row.path).name: row.predicted for row in window.results.rows}
    assert rows["battery (2).png"] == "Battery" and "battery.png" not in rows


def test_rows_follow_the_photos_moved_before_a_full_disk_stopped_the_sort(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    import errno

    import desktop.core.sorting as sorting

    classified_photos(qtbot, window, tmp_path)
    dest = tmp_path / "sorted"
    placed = []
    real_place = sorting.place

    def place_until_full(*args, **kwargs):
        if len(placed) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        placed.append(real_place(*args, **kwargs))
        return placed[-1]

    monkeypatch.setattr(sorting, "place", place_until_full)
    warned: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text: warned.append(text))
    window.sorting.sort_into_folders(str(dest), "move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)

    assert len(warned) == 1 and "full after 2 photos" in warned[0]
    paths = sorted(Path(row.path) for row in window.results.rows)
    assert all(path.is_file() for path in paths)  # two in DEST now, two still in the folder
    assert sum(dest in path.parents for path in paths) == 2


def test_a_row_for_a_folder_link_is_a_note_not_a_photo_to_sort(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    folder = photos(tmp_path / "photos")
    (folder / "sub").mkdir()
    (folder / "sub" / "loop").symlink_to(folder)  # leads back up: a note in the table
    classify(qtbot, window, folder)
    assert window.results.rowCount() == 5
    asked, warned = [], []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "s"))
    monkeypatch.setattr(
        QMessageBox, "exec", lambda box: (asked.append(box.text()), box.buttons()[0].click())
    )
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *args: warned.append(args)))
    window.commands.sort.trigger()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert as_read(asked[0]).startswith(f"File 4 photos into class folders under {tmp_path / 's'}?")
    assert warned == [] and window.statusBar().currentMessage().startswith("Copied 4 photos")


def test_sort_is_offered_only_with_results_and_cancel_files_nothing(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    assert not window.commands.sort.isEnabled()  # nothing classified yet
    folder = classified_photos(qtbot, window, tmp_path)
    assert window.commands.sort.isEnabled()
    dest = tmp_path / "sorted"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(dest))
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.buttons()[2].click())  # Cancel
    window.commands.sort.trigger()
    assert not window.sorting.busy and not dest.exists()
    assert len(list(folder.iterdir())) == 4


def test_a_refused_destination_or_a_failed_undo_is_told_in_a_message_box(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    folder = classified_photos(qtbot, window, tmp_path)
    warned: list[tuple[str, str]] = []
    monkeypatch.setattr(
        QMessageBox, "warning", staticmethod(lambda _p, title, text: warned.append((title, text)))
    )
    asked: list[QMessageBox] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: asked.append(box))

    window.sorting.sort_into_folders(str(folder / "sorted"))
    assert not asked and not window.sorting.busy  # refused before copy-or-move is asked
    reason = f"the destination {folder / 'sorted'} is inside the source folder {folder}"
    assert warned == [("Cannot sort there", f"T{reason[1:]}.")]  # a sentence, in the box
    assert window.statusBar().currentMessage() == f"Cannot sort there: {reason}"  # not stale
    assert not (folder / "sorted").exists()
    window.sorting.sort_into_folders(str(folder))
    assert warned[-1] == (
        "Cannot sort there",
        f"The destination {folder} is the photos' own folder.",
    )

    # A folder no sort went into: "Undo stopped: …" read as an undo that failed halfway.
    window.sorting.undo_sort(str(tmp_path))
    assert not window.sorting.busy  # said at once: no undo was started
    told = (
        f"No sort was made into {tmp_path} (it has no manifest.csv): give the folder sorted into."
    )
    assert warned[-1] == ("Nothing to undo", told)
    assert window.statusBar().currentMessage() == told
    (tmp_path / "a file").write_text("")
    window.sorting.undo_sort(str(tmp_path / "a file"))  # each reason, as the command says it
    assert not window.sorting.busy
    title, text = warned[-1]
    assert title == "Nothing to undo" and "is a file, not a folder a sort went into" in text

    # A sort a watch service is filing into now: refused before any job, and why.
    from desktop.core.folder_lock import FolderLock
    from desktop.core.sort_lock import watch_lock_name

    dest = tmp_path / "sorted-by-the-service"
    window.sorting.sort_into_folders(str(dest), how="copy")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    service = FolderLock(dest, watch_lock_name("the service's shift.csv"))
    assert service.acquire()
    try:
        window.sorting.undo_sort(str(dest))
        assert not window.sorting.busy
        title, text = warned[-1]
        assert title == "Cannot undo now" and text.startswith("A watch (ewaste-classify --watch")
        assert (dest / MANIFEST_FILE).is_file()  # nothing was put back
    finally:
        service.release()


def test_an_undo_into_a_watched_folder_keeps_its_report(qtbot, window, tmp_path, monkeypatch):
    camera = photos(tmp_path / "camera")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(camera))
    window.commands.watch.trigger()
    qtbot.waitUntil(lambda: window.results.rowCount() == 4, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.controller.busy, timeout=TIMEOUT_MS)
    window.sorting.sort_into_folders(str(tmp_path / "sorted"), how="move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert not any(camera.iterdir())
    qtbot.wait(2500)  # the watch sees the folder empty (the undo comes later in the shift)

    window.last_summary = None
    # The watch remembers the photos it handed over: back in the folder, they are not
    # handed over again (settled within 2.5 s), and no run says "already in the table"
    # over the undo's report.
    with qtbot.assertNotEmitted(window.folder_watch.photos_ready, wait=2500):
        window.sorting.undo_sort(str(tmp_path / "sorted"))
        qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
        report = window.statusBar().currentMessage()
        assert report.startswith("Put back 4 photos")
    assert len(list(camera.iterdir())) == 4
    assert window.statusBar().currentMessage() == report and window.last_summary is None
    assert window.results.rowCount() == 4 and not window.controller.busy
    assert all(Path(row.path).parent == camera for row in window.results.rows)


def test_watch_folder_classifies_photos_as_they_arrive(qtbot, window, tmp_path, monkeypatch):
    camera = tmp_path / "camera"
    camera.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(camera))
    window.commands.watch.trigger()  # File > Watch folder…, the folder asked for
    assert window.commands.watch.isChecked() and window.folder_watch.folder == str(camera)

    write_solid(camera / "battery.png", PROTOTYPE_COLOURS["Battery"])
    qtbot.waitUntil(lambda: window.results.rowCount() == 1, timeout=TIMEOUT_MS)
    write_solid(camera / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    qtbot.waitUntil(lambda: window.results.rowCount() == 2, timeout=TIMEOUT_MS)
    assert [row.predicted for row in window.results.rows] == ["Battery", "Mouse"]
    # The run's "Classified 1 of 1" came and went; the status bar still says it watches.
    assert window.watching_label.isVisible() and window.watching_label.text() == "Watching camera"

    # The camera unplugged: the worker is told, not left watching nothing; then it is back.
    camera.rename(tmp_path / "unplugged")
    qtbot.waitUntil(lambda: window.watching_label.text() == "Cannot see camera", timeout=TIMEOUT_MS)
    assert os.strerror(errno.ENOENT).lower() in window.watching_label.toolTip()
    (tmp_path / "unplugged").rename(camera)
    qtbot.waitUntil(lambda: window.watching_label.text() == "Watching camera", timeout=TIMEOUT_MS)
    write_solid(camera / "pcb.png", PROTOTYPE_COLOURS["PCB"])
    qtbot.waitUntil(lambda: window.results.rowCount() == 3, timeout=TIMEOUT_MS)

    window.commands.watch.trigger()  # unticked: stop
    assert not window.commands.watch.isChecked() and window.folder_watch.folder == ""
    assert not window.watching_label.isVisible()
    write_solid(camera / "printer.png", PROTOTYPE_COLOURS["Printer"])
    qtbot.wait(2500)
    assert window.results.rowCount() == 3


def test_a_watch_whose_polls_fail_says_so_until_one_works(qtbot, tmp_path, monkeypatch):
    from desktop.core.watch import FolderWatcher
    from desktop.gui.folder_watch import FolderWatch

    real_poll, failing = FolderWatcher.poll, [True]

    def poll(watcher):
        if failing[0]:
            raise MemoryError("a photo too large to look at")
        return real_poll(watcher)

    monkeypatch.setattr(FolderWatcher, "poll", poll)
    watch = FolderWatch(poll_seconds=0.05)
    said: list[str] = []
    watch.unreachable_changed.connect(said.append)
    watch.start(str(tmp_path))
    qtbot.waitUntil(lambda: len(said) == 1, timeout=TIMEOUT_MS)
    qtbot.wait(300)  # polls failing the same way: said once
    assert said == ["MemoryError: a photo too large to look at"]
    failing[0] = False
    qtbot.waitUntil(lambda: said[-1] == "", timeout=TIMEOUT_MS)
    watch.stop()


def test_a_move_looks_at_the_moved_photos_off_the_gui_thread(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    # The rows took each moved photo's size and time on the GUI thread as the sort ended:
    # a look per photo at a share held the window for seconds after a shift's sort.
    import desktop.gui.results_model as results_model
    from desktop.core.discovery import file_state

    folder = classified_photos(qtbot, window, tmp_path)
    looked_here: list[str] = []
    monkeypatch.setattr(
        results_model, "file_state", lambda path: looked_here.append(path) or file_state(path)
    )
    dest = tmp_path / "sorted"
    window.sorting.sort_into_folders(str(dest), how="move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert not any(folder.iterdir()) and looked_here == []
    for row in window.results.rows:  # each row knows its photo as it is in its new place
        assert Path(row.path).parent.parent == dest
        assert row.prediction.file_state == file_state(row.path)


def test_an_export_is_not_held_up_by_a_long_sort_and_a_poll_that_hangs(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    # Both took the threads of Qt's global pool (as many as cores: 2 at a station), and the
    # export waited behind them for as long as the sort ran and the share did not answer.
    from PySide6.QtCore import QThreadPool

    from desktop.core.watch import FolderWatcher

    folder = classified_photos(qtbot, window, tmp_path)
    release = threading.Event()
    sorting, polling = threading.Event(), threading.Event()
    qt_pool = QThreadPool.globalInstance()
    cores = qt_pool.maxThreadCount()
    qt_pool.setMaxThreadCount(2)  # a station's 2 cores, whatever runs the test

    def long_sort(*_args, **_kwargs):
        sorting.set()
        release.wait(TIMEOUT_MS / 1000)
        raise sort_undo.SortError("stopped by the test")

    def hung_poll(_watcher):
        polling.set()
        release.wait(TIMEOUT_MS / 1000)
        return []

    monkeypatch.setattr("desktop.gui.sort_commands.sort_into", long_sort)
    monkeypatch.setattr(FolderWatcher, "poll", hung_poll)
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *_args: None))
    try:
        window.sorting.sort_into_folders(str(tmp_path / "sorted"), how="copy")
        window.set_watching(True, str(folder))
        qtbot.waitUntil(lambda: sorting.is_set() and polling.is_set(), timeout=TIMEOUT_MS)
        exported = tmp_path / "results.csv"
        window.export_csv(exported)
        qtbot.waitUntil(lambda: not window.exporting, timeout=10_000)
        assert exported.is_file() and window.sorting.busy  # written while both still ran
    finally:
        release.set()
        qt_pool.setMaxThreadCount(cores)
        qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
        window.set_watching(False)


def test_the_app_says_when_photos_leave_its_watched_folder_unclassified(
    qtbot, window, tmp_path
) -> None:
    # A service's watch moving the photos out (--sort-into --move) left the app showing
    # some of the shift and missing the rest in silence.
    window.set_watching(True, str(tmp_path))
    watcher = window.folder_watch._watcher  # noqa: SLF001 - to know when it saw the photo
    real_poll, polled = watcher.poll, threading.Event()

    def poll():
        ready = real_poll()
        polled.set()
        return ready

    watcher.poll = poll
    write_solid(tmp_path / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    polled.clear()
    qtbot.waitUntil(polled.is_set, timeout=TIMEOUT_MS)  # seen, settling for a second
    (tmp_path / "mouse.png").unlink()  # moved away by the other program
    # In the watching label, which stays (the status bar's message goes with the next run).
    qtbot.waitUntil(
        lambda: window.watching_label.text().endswith("1 left unclassified"),
        timeout=TIMEOUT_MS,
    )
    assert window.watching_label.toolTip().endswith(
        f"1 photo left {tmp_path} before it was classified here: is another program moving "
        "them (a watch sorting with --move)?"
    )
    window.set_watching(False)


def test_a_watch_of_another_folder_does_not_call_it_back(qtbot, tmp_path):
    # The folder watched before was out of sight: the next one's first poll said "back".
    from desktop.gui.folder_watch import FolderWatch

    camera, other = tmp_path / "camera", tmp_path / "other"
    camera.mkdir()
    other.mkdir()
    watch = FolderWatch(poll_seconds=0.05)
    said: list[str] = []
    watch.unreachable_changed.connect(said.append)
    watch.start(str(camera))
    camera.rmdir()
    qtbot.waitUntil(lambda: len(said) == 1, timeout=TIMEOUT_MS)
    watch.start(str(other))
    qtbot.wait(500)
    assert said == [said[0]] and said[0]  # out of sight once, and no "back" for another folder
    watch.stop()


def test_the_apps_watch_polls_a_folder_slow_to_look_at_less_often(qtbot, tmp_path, monkeypatch):
    import os
    import time

    from PySide6.QtCore import QTimer

    from desktop.gui.folder_watch import FolderWatch

    watch = FolderWatch(poll_seconds=0.05)
    [timer] = watch.findChildren(QTimer)
    real_scandir = os.scandir
    listings = []

    def slow_scandir(path):
        time.sleep(0.2)
        listings.append(path)
        return real_scandir(path)

    monkeypatch.setattr("desktop.core.watch.os.scandir", slow_scandir)
    watch.start(str(tmp_path))
    # After the first poll: nine times its 0.2 s, not every 50 ms.
    qtbot.waitUntil(lambda: timer.interval() >= 1800, timeout=10_000)
    assert listings.count(tmp_path) == 1  # (another test's watch may still be ending a poll)
    watch.stop()


class HeldSort:
    """Holds the sort at its `at`-th photo until `release()`, to act while it runs."""

    def __init__(self, monkeypatch, at: int = 1) -> None:
        import desktop.core.sorting as sorting

        self.in_hand, self._go = threading.Event(), threading.Event()
        real_file_one, calls = sorting._file_one, []

        def file_one(*args, **kwargs):
            calls.append(args)
            if len(calls) == at:
                self.in_hand.set()
                assert self._go.wait(30)
            return real_file_one(*args, **kwargs)

        monkeypatch.setattr(sorting, "_file_one", file_one)

    def release(self) -> None:
        self._go.set()


def start_move(qtbot, window, tmp_path, monkeypatch, at=1) -> tuple[Path, Path, HeldSort]:
    folder = classified_photos(qtbot, window, tmp_path)
    dest = tmp_path / "sorted"
    held = HeldSort(monkeypatch, at)
    window.sorting.sort_into_folders(str(dest), "move")
    assert held.in_hand.wait(30) and window.sorting.busy
    return folder, dest, held


def rows_where_photos_are(window) -> bool:
    return all(Path(row.path).is_file() for row in window.results.rows)


def test_cancel_stops_a_sort_after_the_photo_in_hand_and_the_rows_follow(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: warnings.append(args))
    folder, dest, held = start_move(qtbot, window, tmp_path, monkeypatch)
    assert window.commands.cancel.isEnabled()  # Esc, Run > Cancel
    window.commands.cancel.trigger()
    held.release()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)

    assert len(list(folder.iterdir())) == 3 and len(manifest_rows(dest)) == 1
    assert rows_where_photos_are(window)
    assert (
        window.statusBar()
        .currentMessage()
        .startswith("Sorting stopped: 1 photo filed, each whole and in the manifest")
    )
    assert warnings == []  # asked for: no box to dismiss
    assert not window.commands.cancel.isEnabled()

    # The same sort again files the rest; the undo puts all four back.
    window.sorting.sort_into_folders(str(dest), "move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert list(folder.iterdir()) == [] and rows_where_photos_are(window)
    window.sorting.undo_sort(str(dest))
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert len(list(folder.iterdir())) == 4 and rows_where_photos_are(window)


def test_a_running_sort_shows_its_progress_and_its_cancel_button_stops_it(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    # A sort onto a slow stick takes minutes: the window says what runs, how far it is,
    # and the Cancel button beside the bar stops it, as Esc does.
    folder, dest, held = start_move(qtbot, window, tmp_path, monkeypatch, at=3)
    assert window.statusBar().currentMessage() == f"Moving 4 photos into {dest}… (Esc stops)"
    panel = window.progress_panel
    assert panel.bar.format().startswith("Sorting: ") and panel.bar.format().endswith(" / 4 photos")
    assert panel.bar.maximum() == 4 and panel.cancel_button.isEnabled()
    assert panel.cancel_button.toolTip().startswith("Stop after the photo in hand")
    panel.cancel_button.click()
    held.release()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    message = window.statusBar().currentMessage()
    assert message.startswith("Sorting stopped: 3 photos filed") and len(manifest_rows(dest)) == 3
    assert panel.bar.format() == "Ready" and not panel.cancel_button.isEnabled()

    # The undo counts too, once it has read the manifest (3 photos), held at its second.
    real_undo_one, undoing, go = sort_undo._undo_one, threading.Event(), threading.Event()

    def undo_one(*args):
        if not undoing.is_set():
            undoing.set()
        else:
            assert go.wait(30)
        return real_undo_one(*args)

    monkeypatch.setattr(sort_undo, "_undo_one", undo_one)
    window.sorting.undo_sort(str(dest))
    assert window.statusBar().currentMessage().startswith("Putting back the photos sorted into")
    assert undoing.wait(30)
    qtbot.waitUntil(lambda: panel.bar.maximum() == 3, timeout=TIMEOUT_MS)
    assert re.fullmatch(r"Putting back: [01] / 3 photos", panel.bar.format())
    assert panel.cancel_button.isEnabled()
    go.set()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert len(list(folder.iterdir())) == 4 and panel.bar.format() == "Ready"


def test_a_run_during_a_sort_leaves_the_progress_panel_to_the_sort(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    # Photos arrive (a watched folder) while a sort runs: their run must not take over the
    # bar, nor leave "Done" with a greyed-out Cancel while the sort goes on.
    _, _, held = start_move(qtbot, window, tmp_path, monkeypatch, at=2)
    more = tmp_path / "more"
    more.mkdir()
    write_solid(more / "pcb.png", PROTOTYPE_COLOURS["PCB"])
    classify(qtbot, window, more)
    panel = window.progress_panel
    assert panel.bar.format().startswith("Sorting: ") and panel.cancel_button.isEnabled()
    held.release()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    # Then the bar shows what the run's last word was.
    assert panel.bar.format() == "Done: 1 image" and not panel.cancel_button.isEnabled()
    window.sorting.progress.emit("Sorting", 3, 4)  # a late one, from a sort a close waited for
    assert panel.bar.format() == "Done: 1 image"


def test_a_sort_failing_midway_for_any_reason_still_relocates_the_rows(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: warnings.append(args))
    manifest_fails_after(monkeypatch, 2, errno.EIO)  # the stick pulled out
    folder = classified_photos(qtbot, window, tmp_path)
    window.sorting.sort_into_folders(str(tmp_path / "sorted"), "move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)

    assert len(list(folder.iterdir())) == 2
    assert rows_where_photos_are(window)  # the two moved rows name their new places
    [(_, title, text)] = warnings
    assert title == "Sorting stopped" and "could not go on after 2 photos" in text
    assert f"({os.strerror(errno.EIO)}: " in text and "manifest.csv)" in text


def test_quit_during_a_sort_stops_it_first_then_quits(qtbot, window, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *args, **kwargs: asked.append(args[2]) or QMessageBox.Yes
    )
    folder, _, held = start_move(qtbot, window, tmp_path, monkeypatch)
    window.commands.quit.trigger()
    assert asked and asked[0].startswith("A sort is running. Stop it after the photo in hand")
    assert window.isVisible()  # not before the sort has stopped
    held.release()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT_MS)
    assert not window.sorting.busy and len(list(folder.iterdir())) == 3
    assert rows_where_photos_are(window)


def test_a_close_by_the_program_during_a_sort_waits_for_it_to_stop(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    folder, _, held = start_move(qtbot, window, tmp_path, monkeypatch)
    threading.Timer(0.3, held.release).start()
    window.close()  # Ctrl+C in the terminal, a log-out: no question to answer
    assert not window.sorting.busy and len(list(folder.iterdir())) == 3
    assert rows_where_photos_are(window)  # before the window went: a kept review agrees


def copy_sorted_and_both_shown(qtbot, window, tmp_path: Path) -> tuple[Path, Path]:
    """`photos` classified, copied into tmp_path/sorted, and the sorted folder dropped in
    too (the worker checks it): each photo has a row and its copy a row. (photos, dest)"""
    folder = classified_photos(qtbot, window, tmp_path)
    dest = tmp_path / "sorted"
    window.sorting.sort_into_folders(str(dest), "copy")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    classify(qtbot, window, dest)
    assert len(window.results.rows) == 8
    return folder, dest


def source_row(window, folder: Path, name: str) -> int:
    """The model's row of the photo `name` somewhere under `folder`."""
    return next(
        i
        for i, row in enumerate(window.results.rows)
        if row.name == name and row.path.startswith(str(folder))
    )


def select(window, *rows: int) -> None:
    """Select these model rows as a person does with Ctrl+click, the last one current."""
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in rows:
        index = window.proxy.mapFromSource(window.results.index(row, 0))
        window.view.selectionModel().setCurrentIndex(index, flags)


def selected_paths(window) -> set[str]:
    return {window.results.rows[row].path for row in window.view.selected_source_rows()}


def undo(qtbot, window, dest: Path) -> None:
    window.sorting.undo_sort(str(dest))
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)


def test_an_undo_of_a_copy_sort_leaves_one_row_per_photo_with_its_class(
    qtbot, window, tmp_path
) -> None:
    folder, dest = copy_sorted_and_both_shown(qtbot, window, tmp_path)
    copy = source_row(window, dest, "mouse.png")
    window.results.set_confirmed([copy], "Keyboard")  # corrected on the copy's row
    select(window, copy)

    undo(qtbot, window, dest)
    paths = [row.path for row in window.results.rows]
    assert sorted(paths) == sorted(str(p) for p in folder.iterdir())  # once each, all there
    assert window.results.confirmed_classes() == {str(folder / "mouse.png"): "Keyboard"}
    # The copy's row, selected, went into its original's: that one is shown and selected.
    assert window.preview.row.path == str(folder / "mouse.png") == window.view.current_result().path
    assert window.counts_label.full_text.startswith("4 results:")


def test_a_merged_row_under_a_filter_keeps_the_selection_and_never_shows_another_photo(
    qtbot, window, tmp_path
) -> None:
    folder, dest = copy_sorted_and_both_shown(qtbot, window, tmp_path)
    copy = source_row(window, dest, "mouse.png")
    battery = source_row(window, folder, "battery.png")
    window.results.set_confirmed([copy], "Keyboard")
    window.results.set_confirmed([battery], "Printer")
    window.proxy.set_status_filter("corrected")  # the copy shows it; its original does not yet
    select(window, battery, copy)

    undo(qtbot, window, dest)
    # The original took the copy's class, so the filter shows it: current, beside battery.
    assert window.view.current_result().path == str(folder / "mouse.png")
    assert window.preview.row.path == str(folder / "mouse.png")
    assert selected_paths(window) == {str(folder / "battery.png"), str(folder / "mouse.png")}


def test_a_merged_row_into_one_a_filter_hides_leaves_no_row_current(qtbot, window, tmp_path):
    # The original was confirmed as predicted, its copy not: the "ok" filter shows the copy
    # only. No row current then, rather than a neighbour a key press would correct.
    folder, dest = copy_sorted_and_both_shown(qtbot, window, tmp_path)
    window.results.set_confirmed(
        [source_row(window, folder, "printer.png")], None, as_predicted=True
    )
    window.proxy.set_status_filter("ok")
    select(window, source_row(window, dest, "printer.png"))

    undo(qtbot, window, dest)
    assert window.view.current_result() is None and window.preview.row is None
    assert selected_paths(window) == set()


def test_quit_when_the_sort_ends_while_the_question_is_open_quits_at_once(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    _, _, held = start_move(qtbot, window, tmp_path, monkeypatch)

    def answer_once_it_ended(*_args, **_kwargs):
        held.release()
        qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
        return QMessageBox.Yes

    monkeypatch.setattr(QMessageBox, "question", answer_once_it_ended)
    window.commands.quit.trigger()
    assert not window.isVisible() and not window._quit_after_sort  # nothing left pending


def test_quit_during_a_sort_asks_about_the_review_once_the_rows_follow(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    _, _, held = start_move(qtbot, window, tmp_path, monkeypatch)
    window.results.set_confirmed([0], "Keyboard")  # in no CSV yet
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    asked_with_rows_in_place = []

    def quit_anyway(box):
        asked_with_rows_in_place.append(rows_where_photos_are(window))
        [anyway] = [b for b in box.buttons() if "anyway" in b.text()]
        anyway.click()

    monkeypatch.setattr(QMessageBox, "exec", quit_anyway)
    window.commands.quit.trigger()
    held.release()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT_MS)
    assert asked_with_rows_in_place == [True]  # an export chosen then names where they are


def test_a_close_by_the_program_shows_no_box_even_for_a_photo_not_filed(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    boxes = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: boxes.append(args))
    folder = classified_photos(qtbot, window, tmp_path)
    (folder / "battery.png").unlink()  # gone since it was classified
    held = HeldSort(monkeypatch, at=4)  # the last photo
    window.sorting.sort_into_folders(str(tmp_path / "sorted"), "move")
    assert held.in_hand.wait(30)
    threading.Timer(0.3, held.release).start()
    window.close()
    assert boxes == [] and not window.sorting.busy
    assert len(list(folder.iterdir())) == 0  # the three others filed
    gone = [row.name for row in window.results.rows if not Path(row.path).is_file()]
    assert gone == ["battery.png"]  # the rows of the filed three name where they are now


def test_esc_hides_no_failure_and_stops_only_the_sort(qtbot, window, tmp_path, monkeypatch):
    import desktop.core.sorting as sorting

    boxes = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: boxes.append(args))

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sorting, "_file_one", full)
    _, _, held = start_move(qtbot, window, tmp_path, monkeypatch)
    more = tmp_path / "arriving"
    more.mkdir()
    for i in range(40):
        write_solid(more / f"item{i}.png", PROTOTYPE_COLOURS["Mouse"])
    window.last_summary = None
    window.add_paths([str(more)])  # photos classified while the sort runs
    window.commands.cancel.trigger()  # Esc, meant for the sort
    held.release()
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    # The disk filled on the photo in hand: a failure, said in a box, not hidden by the stop.
    [(_, title, text)] = boxes
    assert title == "Sorting stopped" and "the destination is full" in text
    qtbot.waitUntil(lambda: window.last_summary is not None, timeout=TIMEOUT_MS)
    assert not window.last_summary.cancelled and len(window.results.rows) == 44


def test_the_rows_follow_an_undo_from_a_sort_folder_renamed_since(qtbot, window, tmp_path) -> None:
    # Moved into "sorted", which a person then renamed: the undo from its new name names
    # the photos there, and the rows, still at the old name, must follow them back.
    folder = classified_photos(qtbot, window, tmp_path)
    window.sorting.sort_into_folders(str(tmp_path / "sorted"), "move")
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert list(folder.iterdir()) == []
    (tmp_path / "sorted").rename(tmp_path / "sorted-monday")
    window.sorting.undo_sort(str(tmp_path / "sorted-monday"))
    qtbot.waitUntil(lambda: not window.sorting.busy, timeout=TIMEOUT_MS)
    assert len(list(folder.iterdir())) == 4
    assert rows_where_photos_are(window)
    assert {Path(row.path).parent for row in window.results.rows} == {folder}

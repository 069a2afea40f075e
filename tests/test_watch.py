"""Watching a camera's folder: photos written slowly, in pieces, are classified once each,
when complete; the headless watch stops on Ctrl+C with the CSV complete, and a restart
does not repeat what the CSV holds."""

from __future__ import annotations

import codecs
import csv
import errno
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from child_signals import deliverable
from desktop.core.watch import MAX_POLL_PAUSE_SECONDS, FolderWatcher
from tiny_model import PROTOTYPE_COLOURS

CONSOLE_SCRIPT = Path(sys.executable).with_name("ewaste-classify")


def start_with_ctrl_c(command: list[str]) -> subprocess.Popen:
    """The command, able to receive Ctrl+C however this test was started."""
    with deliverable(signal.SIGINT):
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_slowly(path: Path, data: bytes, pieces: int = 4, pause: float = 0.3) -> None:
    """As a camera does: the file appears at once and grows over a second or so."""
    step = len(data) // pieces + 1
    with path.open("wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            time.sleep(pause)


def test_a_photo_is_handed_over_once_and_only_when_complete(tmp_path: Path) -> None:
    now = [0.0]
    watcher = FolderWatcher(
        tmp_path, settle_seconds=1.0, give_up_seconds=10.0, clock=lambda: now[0]
    )
    photo = tmp_path / "shot.png"
    data = png_bytes((255, 0, 0))
    photo.write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / ".hidden.png").write_bytes(data)
    assert watcher.poll() == []  # first sight
    now[0] = 5.0
    assert watcher.poll() == []  # still for 5 s, but half a PNG does not decode
    photo.write_bytes(data)  # the rest arrives
    now[0] = 5.5
    assert watcher.poll() == []  # changed: the clock starts again
    now[0] = 6.0
    assert watcher.poll() == []  # still for only 0.5 s
    now[0] = 6.6
    assert watcher.poll() == [photo]  # still for 1.1 s, and it decodes
    now[0] = 20.0
    assert watcher.poll() == []  # never again

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG never finished")
    empty = tmp_path / "empty.jpg"  # a camera that failed to save: it never grows
    empty.write_bytes(b"")
    assert watcher.poll() == []
    now[0] = 25.0
    assert watcher.poll() == []  # a 0-byte file is where a camera starts: it may still come
    now[0] = 31.0
    # Given up on after 10 s: error rows that say why, not a hang, nor silence.
    assert watcher.poll() == [broken, empty]

    phone = tmp_path / "IMG_0004.HEIC"  # a phone set to HEIC: its row will say what to do
    phone.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    assert watcher.poll() == []
    now[0] = 32.1
    # Not a photo this station reads, yet never ignored, nor kept waiting for the give-up.
    assert watcher.poll() == [phone]


def handed_over_once(folder: Path) -> tuple[FolderWatcher, Path, list[float]]:
    """A watcher on a fake clock that has handed over one photo, IMG_0001.png."""
    now = [0.0]
    watcher = FolderWatcher(folder, settle_seconds=1.0, clock=lambda: now[0])
    photo = folder / "IMG_0001.png"
    photo.write_bytes(png_bytes((255, 0, 0)))
    assert watcher.poll() == []
    now[0] = 2.0
    assert watcher.poll() == [photo]
    return watcher, photo, now


def test_a_photo_handed_over_is_skipped_only_while_it_is_the_same_photo(tmp_path: Path) -> None:
    first, photo, now = handed_over_once(tmp_path)
    state = first.handed_over_state(photo.name)
    photo.chmod(0o600)  # a backup tool or a person touched its permissions: same photo
    now[0] = 4.0
    assert first.poll() == []

    # A restart (a new watcher told what was handed over): the same photo stays skipped,
    # and another photo saved under that name later (the camera's counter reset) is heard.
    second = FolderWatcher(
        tmp_path, settle_seconds=1.0, already={photo.name: state}, clock=lambda: now[0]
    )
    assert second.poll() == []
    now[0] = 6.0
    assert second.poll() == []
    photo.unlink()
    photo.write_bytes(png_bytes((0, 0, 255)))
    os.utime(photo, ns=(state[1] + 10**9, state[1] + 10**9))  # a later shot
    assert second.poll() == []
    now[0] = 8.0
    assert second.poll() == [photo]


def test_a_restart_skips_what_its_csv_holds_by_record_or_as_it_is_now(tmp_path: Path) -> None:
    from desktop.core.watch import (
        _add_to_record,
        _classified_before,
        _recorded,
        watch_record_path,
    )

    camera, csv_path = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    for name in ("plain.png", "watched.png", "torn.png", "replaced.png"):
        (camera / name).write_bytes(png_bytes((255, 0, 0)))
    rows = "".join(f"{camera / n},Battery\r\n" for n in ("plain.png", "watched.png", "torn.png"))
    csv_path.write_text("path,predicted_class\r\n" + rows + f"{camera / 'replaced.png'},Mouse\r\n")
    later = csv_path.stat().st_mtime_ns
    watched, torn = (camera / "watched.png").stat(), (camera / "torn.png").stat()
    # The watch recorded two photos; a crash cut the last line short.
    watch_record_path(csv_path).write_text(
        f"{camera / 'watched.png'},{watched.st_size},{watched.st_mtime_ns}\r\n"
        f"{camera / 'torn.png'},{torn.st_size},{str(torn.st_mtime_ns)[:5]}"
    )
    # replaced.png: the photo the CSV names left, another of that name came after it.
    (camera / "replaced.png").unlink()
    time.sleep(0.05)
    (camera / "replaced.png").write_bytes(png_bytes((0, 0, 255)))
    os.utime(csv_path, ns=(later, later))  # the CSV is older than the new photo

    before = _classified_before(csv_path, later, watch_record_path(csv_path), camera)

    assert before["watched.png"] == (watched.st_size, watched.st_mtime_ns)  # by its record
    plain = (camera / "plain.png").stat()  # no line, or no whole one: as they are now
    assert before["plain.png"] == (plain.st_size, plain.st_mtime_ns)
    assert before["torn.png"] == (torn.st_size, torn.st_mtime_ns)
    assert "replaced.png" not in before  # a new photo: classified

    # The next batch's lines start on a line of their own, after the torn one.
    watcher = FolderWatcher(camera, settle_seconds=0.0, already=before)
    assert watcher.poll() == []  # first sight
    assert watcher.poll() == [camera / "replaced.png"]  # the others are skipped
    replaced = str(camera / "replaced.png")
    _add_to_record(
        watch_record_path(csv_path), {replaced: watcher.handed_over_state("replaced.png")}
    )
    recorded = _recorded(watch_record_path(csv_path))
    assert sorted(path.name for path, _, _ in recorded.values()) == ["replaced.png", "watched.png"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_the_watch_classifies_arriving_photos_and_stops_cleanly(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    camera, out = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    command = [str(CONSOLE_SCRIPT), "--watch", str(camera), "--csv", str(out)]
    command += ["--model", str(tiny_model_path), "--poll", "0.1", "--threads", "1"]
    process = start_with_ctrl_c(command)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("watching")
        colours = list(PROTOTYPE_COLOURS.items())[:3]
        for name, colour in colours:
            write_slowly(camera / f"{name.lower()}.png", png_bytes(colour))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or len(read_rows(out)) < 3):
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr
    assert "stopped watching" in stdout and "Traceback" not in stderr
    # A line per batch: what arrived, and the running total since the watch began.
    logged = re.findall(r"(\d+) new photos? classified \((\d+) since the watch began\)", stderr)
    assert sum(int(new) for new, _ in logged) == int(logged[-1][1]) == 3, stderr
    rows = read_rows(out)
    assert sorted(Path(r["path"]).name for r in rows) == sorted(
        f"{name.lower()}.png" for name, _ in colours
    )
    assert {r["status"] for r in rows} == {"ok"}  # no half-written photo read as broken
    assert {r["predicted_class"] for r in rows} == {name for name, _ in colours}

    # A restart on the same CSV adds only what is new: a new photo, and a new photo under
    # an old name (the camera's counter reset after the old one was taken away).
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    (camera / "keyboard.png").unlink()
    (camera / "keyboard.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Printer"]))
    process = start_with_ctrl_c(command)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_rows(out)) < 5:
            time.sleep(0.1)
        time.sleep(0.5)  # time to (wrongly) add the old photos again
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    rows = read_rows(out)
    assert sorted(Path(r["path"]).name for r in rows) == [
        "battery.png",
        "keyboard.png",
        "keyboard.png",
        "microwave.png",
        "mouse.png",
    ]
    assert {r["predicted_class"] for r in rows[3:]} == {"Mouse", "Printer"}


def test_a_restarted_watch_classifies_again_the_photo_of_a_row_cut_short(
    tiny_model_path, tmp_path
) -> None:
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    # A power cut during a batch: its last row half on disk, the record without its photo.
    # The restart must classify it again (read as held, it was skipped, then cut off: lost).
    camera, out = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    engine = Engine(tiny_model_path, threads=1)

    def watch_until(rows: int) -> None:
        deadline = time.monotonic() + 60
        watch_and_classify(
            engine, camera, out, 0.7, poll_seconds=0.05, log=lambda _line: None,
            should_stop=lambda: len(read_rows(out)) >= rows or time.monotonic() > deadline,
        )  # fmt: skip

    (camera / "battery.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Battery"]))
    watch_until(1)
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    with out.open("ab") as handle:
        handle.write(f"{camera / 'mouse.png'},Mouse,0.9".encode())
    watch_until(2)
    rows = read_rows(out)
    assert [Path(r["path"]).name for r in rows] == ["battery.png", "mouse.png"]
    assert rows[1]["predicted_class"] == "Mouse" and rows[1]["prob_Mouse"]


def test_options_the_watch_cannot_honour_are_refused_not_ignored(
    tiny_model_path, tmp_path, capsys
) -> None:
    from desktop.core.cli import main as classify_main

    camera = tmp_path / "camera"
    camera.mkdir()
    watch = ["--watch", str(camera), "--csv", str(tmp_path / "w.csv")]
    model = ["--model", str(tiny_model_path)]
    extra = ["--summary", str(tmp_path / "w.png"), "--flip-average"]
    assert classify_main([*watch, *extra, *model]) == 2
    assert "--summary, --flip-average: for a run over PATHs, not with --watch" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "w.csv").exists() and not (tmp_path / "w.png").exists()
    assert classify_main([*watch, "--move", *model]) == 2  # moved where? never ignored
    assert "--move goes with --sort-into DEST" in capsys.readouterr().err

    # The record beside the CSV is cut back and appended to: a link there would do that to
    # the file it points at (a report, say), so it is refused before any work.
    report = tmp_path / "report.xlsx"
    report.write_bytes(b"a worker's spreadsheet\n" * 1000)
    (tmp_path / ".w.csv.watched").symlink_to(report)
    assert classify_main([*watch, *model]) == 2
    assert "is a link or a special file, not the watch's record" in capsys.readouterr().err
    assert report.read_bytes() == b"a worker's spreadsheet\n" * 1000


def test_watching_with_sort_into_files_each_batch_at_once(tiny_model_path, tmp_path) -> None:
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    camera, dest, out = tmp_path / "camera", tmp_path / "sorted", tmp_path / "shift.csv"
    camera.mkdir()
    for name in ("Battery", "Mouse"):
        (camera / f"{name.lower()}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS[name]))
    polls = []

    def stop_once_both_are_filed() -> bool:
        polls.append(1)
        return len(list(dest.rglob("*.png"))) == 2 or len(polls) > 200

    count = watch_and_classify(
        Engine(tiny_model_path, threads=1),
        camera,
        out,
        0.7,
        poll_seconds=0.05,
        sort_into_dest=dest,
        move=True,
        should_stop=stop_once_both_are_filed,
    )
    assert count == 2 and list(camera.iterdir()) == []
    assert (dest / "Battery" / "battery.png").is_file() and (dest / "Mouse" / "mouse.png").is_file()
    assert len(read_rows(out)) == 2


def test_a_sorting_watch_waits_for_a_sort_in_the_app_to_finish(tiny_model_path, tmp_path) -> None:
    from desktop.core.engine import Engine
    from desktop.core.folder_lock import FolderLock
    from desktop.core.watch import watch_and_classify

    camera, dest, out = tmp_path / "camera", tmp_path / "sorted", tmp_path / "shift.csv"
    camera.mkdir()
    dest.mkdir()
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    app_sort = FolderLock(dest)  # the app sorting into the same folder
    assert app_sort.acquire()
    said = []

    def log(line: str) -> None:
        said.append(line)
        if "waiting for it to finish" in line:
            app_sort.release()

    watch_and_classify(
        Engine(tiny_model_path, threads=1),
        camera,
        out,
        0.7,
        poll_seconds=0.05,
        sort_into_dest=dest,
        log=log,
        should_stop=lambda: (dest / "Mouse" / "mouse.png").is_file() or len(said) > 50,
    )
    assert (dest / "Mouse" / "mouse.png").is_file()
    assert sum("another sort or undo is working in" in line for line in said) == 1


def test_a_watched_folder_that_goes_away_is_said_once_and_again_when_back(
    tiny_model_path, tmp_path
) -> None:
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    camera, out = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    polls, lines = [], []

    def unplug_then_plug_back_in() -> bool:
        polls.append(1)
        if len(polls) == 3:
            camera.rename(tmp_path / "unplugged")
        if len(polls) == 8:
            (tmp_path / "unplugged").rename(camera)
            (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
        return out.is_file() and len(read_rows(out)) == 1 or len(polls) > 400

    count = watch_and_classify(
        Engine(tiny_model_path, threads=1),
        camera,
        out,
        0.7,
        poll_seconds=0.02,
        log=lines.append,
        should_stop=unplug_then_plug_back_in,
    )
    assert count == 1
    said = [line.split(" ", 1)[1] for line in lines]  # after the time of day
    assert said[:2] == [
        f"cannot see {camera} ({os.strerror(errno.ENOENT).lower()}); waiting for it to come back",
        f"{camera} is back; watching it again",
    ]


def test_a_restart_sorts_what_a_watch_stopped_by_its_destination_left(
    tiny_model_path, tmp_path
) -> None:
    from desktop.core.engine import Engine
    from desktop.core.sort_records import SortError
    from desktop.core.sort_undo import undo_sort
    from desktop.core.watch import watch_and_classify

    camera, dest, out = tmp_path / "camera", tmp_path / "usb-disk", tmp_path / "shift.csv"
    camera.mkdir()
    for name in ("Battery", "Mouse"):
        (camera / f"{name.lower()}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS[name]))
    dest.write_bytes(b"")  # the disk is not mounted: a file where its folder should be
    engine, logged = Engine(tiny_model_path, threads=1), []

    def watch(stop) -> None:
        watch_and_classify(
            engine, camera, out, 0.7, poll_seconds=0.05, sort_into_dest=dest,
            log=logged.append, should_stop=stop,
        )  # fmt: skip

    deadline = time.monotonic() + 60
    with pytest.raises(SortError, match="is a file"):
        watch(lambda: time.monotonic() > deadline)
    assert len(read_rows(out)) == 2  # classified, in the CSV, but filed nowhere
    assert "2 new photos classified (2 since the watch began)" in logged[-1]  # said still
    logged.clear()

    dest.unlink()  # mounted again
    time.sleep(0.05)  # a new photo under an old name (the camera's counter reset)
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Battery"]) + b"new")
    deadline = time.monotonic() + 60
    watch(lambda: (dest / "Battery" / "mouse.png").exists() or time.monotonic() > deadline)
    # The restart sorted the photo left waiting, and only that one: the new mouse.png was
    # classified (a battery) and sorted as it came, never by the old photo's row.
    assert logged[0] == "sorting 1 photo an earlier watch classified but did not sort"
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.png")) == [
        "Battery/battery.png",
        "Battery/mouse.png",
    ]

    (dest / "Battery" / "battery.png").unlink()  # a worker took the sorted photo away
    undo_sort(dest)  # and the sort was undone: both leave the photos where they are now
    logged.clear()
    watch(lambda: True)
    assert logged == [] and list(dest.rglob("*.png")) == []


def test_a_sorting_watch_killed_after_its_rows_sorts_them_at_the_restart(
    tiny_model_path, tmp_path, monkeypatch
) -> None:
    import desktop.core.watch as watch

    # A kill between a batch's rows going into the CSV and its record line: the rows alone
    # passed for "classified" at the restart, and those photos were never sorted.
    camera, dest, out = tmp_path / "camera", tmp_path / "sorted", tmp_path / "shift.csv"
    camera.mkdir()
    for name in ("Battery", "Mouse"):
        (camera / f"{name.lower()}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS[name]))
    from desktop.core.engine import Engine

    engine = Engine(tiny_model_path, threads=1)
    recorded = watch._add_to_record

    def killed_after_the_csv(record, states, mark=""):
        if mark == watch.TO_SORT:
            raise KeyboardInterrupt("killed")  # as a kill: nothing after it runs
        recorded(record, states, mark)

    def run(stop) -> None:
        watch.watch_and_classify(
            engine, camera, out, 0.7, poll_seconds=0.05, sort_into_dest=dest,
            log=lambda _line: None, should_stop=stop,
        )  # fmt: skip

    monkeypatch.setattr(watch, "_add_to_record", killed_after_the_csv)
    deadline = time.monotonic() + 60
    with pytest.raises(KeyboardInterrupt):
        run(lambda: time.monotonic() > deadline)
    assert len(read_rows(out)) == 2 and not dest.exists()
    monkeypatch.setattr(watch, "_add_to_record", recorded)

    deadline = time.monotonic() + 60
    run(lambda: len(list(dest.rglob("*.png"))) == 2 or time.monotonic() > deadline)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.png")) == [
        "Battery/battery.png",
        "Mouse/mouse.png",
    ]


def test_a_restart_with_sort_into_leaves_what_a_plain_watch_classified(
    tiny_model_path, tmp_path
) -> None:
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    camera, dest, out = tmp_path / "camera", tmp_path / "sorted", tmp_path / "shift.csv"
    camera.mkdir()
    (camera / "battery.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Battery"]))
    engine, logged = Engine(tiny_model_path, threads=1), []
    deadline = time.monotonic() + 60
    watch_and_classify(
        engine, camera, out, 0.7, poll_seconds=0.05,
        should_stop=lambda: (out.is_file() and len(read_rows(out)) == 1)
        or time.monotonic() > deadline,
    )  # fmt: skip
    watch_and_classify(
        engine, camera, out, 0.7, sort_into_dest=dest, log=logged.append,
        should_stop=lambda: True,
    )  # fmt: skip
    assert logged == [] and not dest.exists()  # it was never asked to be sorted


def test_what_is_left_unsorted_comes_from_its_last_whole_row(tmp_path: Path) -> None:
    from desktop.core.csv_export import write_results_csv
    from desktop.core.results import Prediction
    from desktop.core.watch import TO_SORT, _add_to_record, _left_unsorted, watch_record_path
    from tiny_model import CLASS_NAMES

    photo, out = tmp_path / "IMG_1.png", tmp_path / "shift.csv"
    photo.write_bytes(png_bytes((1, 2, 3)))

    def row(top: int) -> Prediction:
        values = [0.01] * len(CLASS_NAMES)
        values[top] = 0.91
        return Prediction(str(photo), np.array(values, dtype=np.float32))

    # The photo was re-saved and classified again; then a crash cut a row short.
    write_results_csv(out, [row(0), row(4)], CLASS_NAMES)
    with out.open("a", encoding="utf-8") as handle:
        handle.write(f"{photo},PCB,0.9")
    info = photo.stat()
    _add_to_record(watch_record_path(out), {str(photo): (info.st_size, info.st_mtime_ns)}, TO_SORT)

    left, states = _left_unsorted(out, watch_record_path(out), tmp_path, len(CLASS_NAMES), print)
    # A watch of another folder writing the same CSV leaves the photo to a watch of its own.
    elsewhere = _left_unsorted(out, watch_record_path(out), tmp_path / "b", len(CLASS_NAMES), print)
    assert elsewhere == ([], {})

    assert [(p.path, p.top_index) for p in left] == [(str(photo), 4)]  # once, the latest
    assert states == {str(photo): (info.st_size, info.st_mtime_ns)}


def test_a_name_reused_after_the_photo_left_is_handed_over_again(tmp_path: Path) -> None:
    watcher, photo, now = handed_over_once(tmp_path)
    photo.unlink()  # filed elsewhere (--sort-into --move)
    assert watcher.poll() == []
    photo.write_bytes(png_bytes((0, 0, 255)))  # the camera's counter started again
    now[0] = 3.0
    assert watcher.poll() == []
    now[0] = 4.5
    assert watcher.poll() == [photo]


def test_an_undo_waits_for_the_watch_sorting_into_its_destination(tiny_model_path, tmp_path):
    # An undo meant for a person's own sort also put back every photo a running watch had
    # filed into that DEST, and the watch, which marks them sorted, never filed them again.
    import threading

    from desktop.core.engine import Engine
    from desktop.core.sort_records import SortError
    from desktop.core.sort_undo import undo_sort
    from desktop.core.watch import watch_and_classify

    camera, dest = tmp_path / "camera", tmp_path / "sorted"
    camera.mkdir()
    for name in ("Battery", "Mouse"):
        (camera / f"{name.lower()}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS[name]))
    stop, lines = threading.Event(), []
    watching = threading.Thread(
        target=watch_and_classify,
        args=(Engine(tiny_model_path, threads=1), camera, tmp_path / "shift.csv", 0.7),
        kwargs={"poll_seconds": 0.05, "sort_into_dest": dest, "move": True,
                "log": lines.append, "should_stop": stop.is_set},
    )  # fmt: skip
    watching.start()
    try:
        deadline = time.monotonic() + 60
        while not any(dest.rglob("*.png")) or any(camera.iterdir()):
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        with pytest.raises(SortError, match="a watch .* is sorting into .*: stop it first"):
            undo_sort(dest)
        assert sorted(p.name for p in dest.rglob("*.png")) == ["battery.png", "mouse.png"]
    finally:
        stop.set()
        watching.join(60)
    undo_sort(dest)  # the watch stopped: its sort can be undone
    assert sorted(p.name for p in camera.iterdir()) == ["battery.png", "mouse.png"]


def test_an_undo_waits_for_every_watch_sorting_into_its_destination(tiny_model_path, tmp_path):
    # Two watches shared one mark: once the first stopped, the second filed unmarked, and
    # an undo put back its photos, which it then never filed again.
    import threading

    from desktop.core.engine import Engine
    from desktop.core.sort_records import SortError
    from desktop.core.sort_undo import undo_sort
    from desktop.core.watch import watch_and_classify

    dest, engine, watches = tmp_path / "sorted", Engine(tiny_model_path, threads=1), []
    deadline = time.monotonic() + 60
    try:
        for count, name in enumerate(("Battery", "Mouse"), start=1):
            camera = tmp_path / f"camera-{name}"
            camera.mkdir()
            (camera / f"{name.lower()}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS[name]))
            stop = threading.Event()
            thread = threading.Thread(
                target=watch_and_classify,
                args=(engine, camera, tmp_path / f"{name}.csv", 0.7),
                kwargs={"poll_seconds": 0.05, "sort_into_dest": dest, "move": True,
                        "log": lambda _line: None, "should_stop": stop.is_set},
            )  # fmt: skip
            thread.start()
            watches.append((stop, thread))
            while len(list(dest.rglob("*.png"))) < count:  # the first files before the second
                assert time.monotonic() < deadline
                time.sleep(0.05)
        first_stop, first = watches[0]
        first_stop.set()
        first.join(60)
        with pytest.raises(SortError, match="a watch .* is sorting into"):
            undo_sort(dest)  # the second watch still runs
    finally:
        for stop, thread in watches:
            stop.set()
            thread.join(60)
    assert len(undo_sort(dest).filed) == 2


def test_a_photo_an_undo_puts_back_is_not_handed_over_again(tmp_path: Path) -> None:
    # A sorting watch moved it away, then an undo put it back: the same photo (as a
    # restarted watch would see from its record), not one to classify and sort again.
    (tmp_path / "camera").mkdir()
    watcher, photo, now = handed_over_once(tmp_path / "camera")
    sorted_away = tmp_path / "IMG_0001.png"
    photo.rename(sorted_away)
    assert watcher.poll() == []
    sorted_away.rename(photo)
    for now[0] in (3.0, 5.0, 20.0):
        assert watcher.poll() == []


def test_a_watch_that_moves_photos_copies_an_unreadable_one(tiny_model_path, tmp_path) -> None:
    """An unreadable file may still be being written (a stalled upload): never moved from
    under its writer; the readable photo is moved as asked."""
    from desktop.core.engine import Engine
    from desktop.core.sorting import ERROR_FOLDER
    from desktop.core.watch import watch_and_classify

    camera, out, dest = tmp_path / "camera", tmp_path / "shift.csv", tmp_path / "sorted"
    camera.mkdir()
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    (camera / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # an error row
    deadline = time.monotonic() + 60

    def done() -> bool:
        return time.monotonic() > deadline or (out.is_file() and len(read_rows(out)) == 2)

    engine = Engine(tiny_model_path, threads=1)
    watch_and_classify(
        engine, camera, out, 0.7, poll_seconds=0.1, sort_into_dest=dest, move=True,
        log=lambda _line: None, should_stop=done,
    )  # fmt: skip

    assert [p.name for p in camera.iterdir()] == ["IMG_0001.HEIC"]  # still there
    assert (dest / ERROR_FOLDER / "IMG_0001.HEIC").is_file() and (
        dest / "Mouse" / "mouse.png"
    ).is_file()


def test_a_folder_slow_to_look_at_is_polled_less_often(tmp_path: Path, monkeypatch) -> None:
    # Thousands of photos on a slow share: a poll that takes 0.3 s, every second, would
    # keep the share and a core busy all shift.
    watcher = FolderWatcher(tmp_path)
    watcher.poll()
    assert watcher.pause(1.0) == 1.0  # a small local folder: the poll interval as set
    real_scandir, delay = os.scandir, [0.3]

    def slow_scandir(path):
        time.sleep(delay[0])
        return real_scandir(path)

    monkeypatch.setattr("desktop.core.watch.os.scandir", slow_scandir)
    watcher.poll()
    assert watcher.pause(1.0) >= 2.7  # at most a tenth of the time spent polling
    delay[0] = 1.2  # but never so long that a photo waits more than the cap to be seen
    watcher.poll()
    assert watcher.pause(1.0) == MAX_POLL_PAUSE_SECONDS  # not 9 x 1.2 s
    monkeypatch.undo()
    watcher.poll()
    assert watcher.pause(1.0) == 1.0  # back to the interval once polls are quick again


def test_photos_that_leave_before_they_are_ready_are_counted(tmp_path: Path) -> None:
    # Another program moving photos out (a service's watch sorting with --move) made a
    # second watch of the folder miss most of them in silence.
    watcher = FolderWatcher(tmp_path, settle_seconds=60)
    for name in ("Battery", "Mouse"):
        (tmp_path / f"{name.lower()}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS[name]))
    assert watcher.poll() == [] and watcher.left_before_ready == 0  # seen, settling
    (tmp_path / "mouse.png").unlink()  # moved away by the other program
    assert watcher.poll() == [] and watcher.left_before_ready == 1
    assert watcher.poll() == [] and watcher.left_before_ready == 1  # counted once


def test_a_watch_logs_photos_that_left_as_new_ones_and_a_total(
    tiny_model_path, tmp_path, monkeypatch
) -> None:
    # Logged as a running total alone, two lines of 3 and 6 read as 9 photos gone.
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    def poll(watcher):
        watcher.left_before_ready = min(watcher.left_before_ready + 3, 5)  # 3, then 2 more
        return []

    monkeypatch.setattr(FolderWatcher, "poll", poll)
    lines: list[str] = []
    watch_and_classify(
        Engine(tiny_model_path, threads=1), tmp_path, tmp_path / "shift.csv", 0.7,
        poll_seconds=0.01, log=lines.append, should_stop=lambda: len(lines) >= 2,
    )  # fmt: skip
    said = [line.split(" ", 1)[1] for line in lines]
    assert said == [
        f"3 photos left {tmp_path} before being classified (3 since the watch began; renamed, "
        "or moved away by another program?)",
        f"2 photos left {tmp_path} before being classified (5 since the watch began; renamed, "
        "or moved away by another program?)",
    ]


def test_a_cards_worth_of_photos_does_not_slow_the_next_polls(tmp_path, monkeypatch) -> None:
    # The pause counted the decode check of every photo handed over: a card's 20,000 photos
    # (4.6 s of checks) stopped the watch from looking again for 41 s, deaf to new photos.
    import desktop.core.watch as watch_module

    for index in range(6):
        (tmp_path / f"IMG_{index}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    real_decodes = watch_module._decodes

    def slow_decodes(path):
        time.sleep(0.1)
        return real_decodes(path)

    monkeypatch.setattr(watch_module, "_decodes", slow_decodes)
    watcher = FolderWatcher(tmp_path, settle_seconds=0)
    watcher.poll()  # seen
    assert len(watcher.poll()) == 6  # handed over, after 0.6 s of decode checks
    assert watcher.pause(1.0) == 1.0  # listing six files is quick: the interval as set


def test_a_backlog_is_said_as_it_is_classified(tiny_model_path, tmp_path, monkeypatch):
    # 20,000 photos already in the folder: 82 s of "watching" and not a line until all were
    # classified, as if the watch had hung.
    import desktop.core.watch as watch_module
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    camera = tmp_path / "camera"
    camera.mkdir()
    for index in range(6):
        (camera / f"IMG_{index}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    monkeypatch.setattr(watch_module, "PROGRESS_SECONDS", 0.0)  # every batch, here
    lines: list[str] = []
    watch_and_classify(
        Engine(tiny_model_path, threads=1), camera, tmp_path / "shift.csv", 0.7,
        batch_size=2, poll_seconds=0.02, log=lines.append,
        should_stop=lambda: any("(6 since" in line for line in lines),
    )  # fmt: skip
    said = [line.split(" ", 1)[1] for line in lines if "since the watch began" in line]
    assert said == [
        f"2 new photos classified ({total} since the watch began) in {camera}"
        for total in (2, 4, 6)
    ]


def test_the_watching_line_reaches_a_services_log_when_the_watch_starts(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    # Without a terminal (a service, cron) Python buffers its output in blocks: the line a
    # supervisor waits for came when the watch stopped, after the stderr lines it precedes.
    camera, log = tmp_path / "camera", tmp_path / "service.log"
    camera.mkdir()
    command = [str(CONSOLE_SCRIPT), "--watch", str(camera), "--csv", str(tmp_path / "s.csv")]
    command += ["--model", str(tiny_model_path), "--poll", "0.1", "--threads", "1"]
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with log.open("w") as handle, deliverable(signal.SIGINT):
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=environment
        )
    try:
        deadline = time.monotonic() + 30
        while "watching" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None and log.read_text().startswith("watching "), log.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_a_photo_the_watch_cannot_classify_is_named_in_its_log(tiny_model_path, tmp_path):
    # A camera switched to HEIC gave hours of "N new photos classified" in a service's
    # journal while every one was an error row, said only in the CSV.
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    camera = tmp_path / "camera"
    camera.mkdir()
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    (camera / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    # A name that would forge a line of its own, in a terminal's red.
    forging = "IMG_2\n12:00:00 9 new photos classified (9 since the watch began)\x1b[31m.HEIC"
    (camera / forging).write_bytes(b"\x00\x00\x00\x18ftypheic")
    lines: list[str] = []
    watch_and_classify(
        Engine(tiny_model_path, threads=1), camera, tmp_path / "shift.csv", 0.7,
        poll_seconds=0.02, log=lines.append,
        should_stop=lambda: any("since the watch began) in" in line for line in lines),
    )  # fmt: skip
    rows = {Path(row["path"]).name: row for row in read_rows(tmp_path / "shift.csv")}
    said = sorted(line.split(" ", 1)[1] for line in lines if "not classified" in line)
    reason = rows["IMG_0001.HEIC"]["error"]
    escaped = forging.replace("\n", "\\n").replace("\x1b", "\\x1b")
    assert reason and said == [
        f"not classified: {camera / 'IMG_0001.HEIC'}: {reason}",
        f"not classified: {camera / escaped}: {reason}",
    ]
    assert all("\n" not in line and "\x1b" not in line for line in lines)


def test_damaged_record_lines_are_left_out_not_a_watch_that_cannot_start(tmp_path: Path) -> None:
    from desktop.core.watch import _classified_before, _recorded, watch_record_path

    camera, csv_path = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    for name in ("good.png", "odd.png"):
        (camera / name).write_bytes(png_bytes((255, 0, 0)))
    good = (camera / "good.png").stat()
    record = watch_record_path(csv_path)
    record.write_bytes(
        f"{camera / 'good.png'},{good.st_size},{good.st_mtime_ns}\r\n".encode()
        + f"{camera / 'odd.png'},1²,5\r\n".encode()  # a digit int() does not read
        + b"\xff\xfe not text,1,2\r\n"
        + b'"'
        + b"x" * 200_000
        + b'",1,2\r\n'  # beyond the csv module's field limit
    )
    assert [path.name for path, _, _ in _recorded(record).values()] == ["good.png"]

    # The CSV the watch continues is the worker's: one that cannot be read is said, once.
    csv_path.write_bytes(b'path\r\n"' + b"y" * 200_000 + b'"\r\n')
    with pytest.raises(ValueError, match="cannot read .*shift.csv to continue it"):
        _classified_before(csv_path, csv_path.stat().st_mtime_ns, record, camera)


def test_the_record_is_never_written_through_a_link(tmp_path: Path) -> None:
    # Checked at each write, not once at the start: a link planted during a watch would have
    # another file cut back and appended to.
    from desktop.core.watch import _add_to_record, _recorded

    report = tmp_path / "report.xlsx"
    report.write_bytes(b"a worker's spreadsheet, no line end at its close" * 100)
    state = {str(tmp_path / "camera" / "IMG_1.png"): (10, 20)}
    hard, soft = tmp_path / ".hard.csv.watched", tmp_path / ".soft.csv.watched"
    os.link(report, hard)
    soft.symlink_to(report)
    for record, reason in ((hard, "has another name"), (soft, "is a link")):
        with pytest.raises(ValueError, match=reason):
            _add_to_record(record, state)
    assert report.read_bytes() == b"a worker's spreadsheet, no line end at its close" * 100

    # A name with a line break is written quoted over two lines, and read back whole.
    record = tmp_path / ".shift.csv.watched"
    two_lines = str(tmp_path / "camera" / "two\nlines.png")
    _add_to_record(record, {two_lines: (1, 2), **state})
    assert sorted(_recorded(record)) == sorted([two_lines, *state])


def test_a_stop_right_after_the_csv_still_logs_the_running_total(
    tiny_model_path: Path, tmp_path: Path, monkeypatch
) -> None:
    # Ctrl+C between a batch's CSV rows and its log line (a slow fsync widens the gap):
    # the total a supervisor reads must still match the CSV.
    import desktop.core.watch as watch_module
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    camera, out = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    for name in ("Battery", "Mouse"):
        (camera / f"{name.lower()}.png").write_bytes(png_bytes(PROTOTYPE_COLOURS[name]))

    recorded = watch_module._add_to_record

    def stopped_after_the_csv(record, states, mark=""):
        if mark != watch_module.CLASSIFYING:  # the line after the CSV's rows
            raise KeyboardInterrupt
        recorded(record, states, mark)

    monkeypatch.setattr(watch_module, "_add_to_record", stopped_after_the_csv)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        watch_and_classify(Engine(tiny_model_path, threads=1), camera, out, 0.7,
                           poll_seconds=0.02, log=lines.append)  # fmt: skip
    assert len(read_rows(out)) == 2
    [said] = [line for line in lines if "since the watch began" in line]
    assert "2 new photos classified (2 since the watch began)" in said


def test_a_watch_remembers_at_most_its_cap_of_photos_gone_and_all_still_there(
    tmp_path, monkeypatch
) -> None:
    import desktop.core.watch as watch

    monkeypatch.setattr(watch, "MAX_KNOWN", 2)
    now = [0.0]
    watcher = FolderWatcher(tmp_path, settle_seconds=1.0, clock=lambda: now[0])
    names = ["a.png", "b.png", "c.png", "d.png"]
    for name in names:  # one after the other: a is the oldest
        (tmp_path / name).write_bytes(png_bytes((255, 0, 0)))
        watcher.poll()
        now[0] += 2.0
        assert [p.name for p in watcher.poll()] == [name]
    # More photos still there than the cap: none is forgotten, none handed over again.
    for _ in range(3):
        now[0] += 2.0
        assert watcher.poll() == []
    # A new photo under the oldest name (a camera's counter came round) is the newest now.
    (tmp_path / "a.png").write_bytes(png_bytes((0, 0, 255)))
    watcher.poll()
    now[0] += 2.0
    assert [p.name for p in watcher.poll()] == ["a.png"]
    for name in names[:3]:
        (tmp_path / name).unlink()  # moved away by the sort: remembered, up to the cap
    watcher.poll()
    known = [watcher.handed_over_state(name) is not None for name in names]
    assert known == [True, False, True, True]  # b, the oldest of those gone, is forgotten


@pytest.mark.parametrize("mount_point_left", [True, False])
def test_a_sorting_watch_whose_stick_went_between_batches_stops_and_makes_nothing(
    tiny_model_path, tmp_path, mount_point_left
) -> None:
    from desktop.core.engine import Engine
    from desktop.core.sort_records import SortError
    from desktop.core.watch import watch_and_classify

    camera, out, stick = tmp_path / "camera", tmp_path / "shift.csv", tmp_path / "stick"
    dest = stick / "sorted"
    camera.mkdir()
    dest.mkdir(parents=True)
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))

    def after_the_first_batch(line: str) -> None:
        if "1 new photo classified (1 since" in line:
            stick.rename(tmp_path / "stick-in-a-drawer")
            if mount_point_left:
                stick.mkdir()
            (camera / "battery.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Battery"]))

    engine = Engine(tiny_model_path, threads=1)
    deadline = time.monotonic() + 60
    with pytest.raises(SortError, match="went away, or another folder took its place"):
        watch_and_classify(
            engine, camera, out, 0.7, poll_seconds=0.1, sort_into_dest=dest, move=True,
            log=after_the_first_batch, should_stop=lambda: time.monotonic() > deadline,
        )  # fmt: skip
    # Nothing made where the stick was; the second photo is still in the camera folder.
    assert not dest.exists()
    assert [p.name for p in camera.iterdir()] == ["battery.png"]
    assert (tmp_path / "stick-in-a-drawer" / "sorted" / "Mouse" / "mouse.png").is_file()


def test_a_watch_stopped_by_a_full_destination_says_a_restart_finishes(
    tiny_model_path, tmp_path, monkeypatch, capsys
) -> None:
    import errno

    from desktop.core import file_placing
    from desktop.core.cli import main

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_placing, "_place", full)
    camera, out, dest = tmp_path / "camera", tmp_path / "shift.csv", tmp_path / "sorted"
    camera.mkdir()
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    argv = ["--watch", str(camera), "--csv", str(out), "--sort-into", str(dest)]
    assert main([*argv, "--poll", "0.1", "--model", str(tiny_model_path)]) == 1
    said = capsys.readouterr().err
    assert "the watch stopped: the destination is full after 0 photos" in said
    assert said.rstrip().endswith("(started again, the watch sorts what is left)")
    assert len(read_rows(out)) == 1  # classified, and in the CSV, for the restart to sort


def test_a_watch_stopped_by_a_full_disk_under_its_csv_names_the_csv(
    tiny_model_path, tmp_path, monkeypatch, capsys
) -> None:
    import errno

    from desktop.core import csv_export
    from desktop.core.cli import main

    real_append = csv_export.append_whole

    def full_after_the_header(fd: int, data: bytes) -> None:
        if data.startswith(codecs.BOM_UTF8):
            return real_append(fd, data)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv_export, "append_whole", full_after_the_header)
    camera, out = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    argv = ["--watch", str(camera), "--csv", str(out), "--poll", "0.1"]
    assert main([*argv, "--model", str(tiny_model_path)]) == 1
    said = capsys.readouterr().err
    assert f"the watch stopped: No space left on device: {out}" in said


def test_a_sorting_watch_goes_on_when_its_destinations_numbers_change(
    tiny_model_path, tmp_path, monkeypatch
) -> None:
    # A network share mounted again, or a stick plugged in again, may come back with other
    # device and inode numbers: while DEST holds its manifest, it is the same destination.
    import desktop.core.watch as watch
    from desktop.core.engine import Engine

    camera, out, dest = tmp_path / "camera", tmp_path / "shift.csv", tmp_path / "sorted"
    camera.mkdir()
    dest.mkdir()
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    mounted_again = []
    monkeypatch.setattr(watch, "_folder_identity", lambda _folder: (len(mounted_again), 1))

    def after_the_first_batch(line: str) -> None:
        if "1 new photo classified (1 since" in line:
            mounted_again.append(True)
            (camera / "battery.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Battery"]))

    deadline = time.monotonic() + 60
    watch.watch_and_classify(
        Engine(tiny_model_path, threads=1), camera, out, 0.7, poll_seconds=0.1,
        sort_into_dest=dest, move=True, log=after_the_first_batch,
        should_stop=lambda: time.monotonic() > deadline or not any(camera.iterdir()),
    )  # fmt: skip
    assert (dest / "Mouse" / "mouse.png").is_file() and (dest / "Battery" / "battery.png").is_file()


def test_one_writer_per_watched_csv_and_a_replaced_csv_stops_the_watch(
    tiny_model_path, tmp_path
) -> None:
    # The nightly batch run given the same --csv, a second watch, an editor's save: each
    # would have put the watch's rows where nobody reads them (the replaced file).
    camera, out = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    model = ["--model", str(tiny_model_path), "--threads", "1"]
    watch = [str(CONSOLE_SCRIPT), "--watch", str(camera), "--csv", str(out), "--poll", "0.1"]
    process = start_with_ctrl_c([*watch, *model])
    try:
        assert process.stdout is not None and process.stdout.readline().startswith("watching")
        (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or len(read_rows(out)) < 1):
            time.sleep(0.1)
        held = out.read_bytes()
        others = [
            [str(CONSOLE_SCRIPT), str(camera), "--csv", str(out), *model],
            [*watch, *model],
        ]
        for other in others:
            refused = subprocess.run(other, capture_output=True, text=True, timeout=60)
            assert refused.returncode == 2, refused.stderr
            assert f"{out} is being written by another program (a watch" in refused.stderr
        assert out.read_bytes() == held

        edited = tmp_path / "edited.csv"  # saved by an editor: a new file under the name
        edited.write_bytes(held)
        os.replace(edited, out)
        (camera / "pcb.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["PCB"]))
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 1, stderr
    assert f"the watch stopped: {out} was replaced or deleted by another program" in stderr
    assert [Path(r["path"]).name for r in read_rows(out)] == ["mouse.png"]
    assert not (tmp_path / ".shift.csv.lock").exists()

    # Started again, it adds the photo whose row went nowhere.
    process = start_with_ctrl_c([*watch, *model])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_rows(out)) < 2:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert [Path(r["path"]).name for r in read_rows(out)] == ["mouse.png", "pcb.png"]


def test_a_watch_continuing_a_batch_csv_skips_a_photo_whose_name_is_not_text(
    tiny_model_path, tmp_path
) -> None:
    # The batch run's CSV writes b"caf\xe9.png" as "caf\xe9.png" (escaped); a watch then
    # started on it took the escaped text for the name, missed the file, and added its row
    # a second time.
    from desktop.core.cli import main
    from desktop.core.engine import Engine
    from desktop.core.watch import watch_and_classify

    camera, out = tmp_path / "camera", tmp_path / "shift.csv"
    camera.mkdir()
    (camera / os.fsdecode(b"caf\xe9.png")).write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    (camera / "pcb.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["PCB"]))
    assert main([str(camera), "--csv", str(out), "--model", str(tiny_model_path)]) == 0
    assert len(read_rows(out)) == 2
    time.sleep(0.05)  # the watch's photos arrive after the CSV, or are as old as it
    (camera / "mouse.png").write_bytes(png_bytes(PROTOTYPE_COLOURS["Mouse"]))
    started = time.monotonic()

    def settled_or_too_long() -> bool:
        # Past the settle time of every photo once the new one is in, or given up.
        waited = time.monotonic() - started
        return waited > 60 or (waited > 5 and len(read_rows(out)) >= 3)

    classified = watch_and_classify(
        Engine(tiny_model_path, threads=1),
        camera,
        out,
        0.7,
        poll_seconds=0.1,
        log=lambda _line: None,
        should_stop=settled_or_too_long,
    )
    assert classified == 1
    names = sorted(Path(row["path"]).name for row in read_rows(out))
    assert names == ["caf\\xe9.png", "mouse.png", "pcb.png"]

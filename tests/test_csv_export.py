"""The results CSV, written for real and read back with the csv module."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from desktop.core.csv_export import CsvBusyError, ResultsCsvAppender, write_results_csv
from desktop.core.engine import Engine
from desktop.core.results import Prediction
from tiny_model import CLASS_NAMES, build_tiny_model

HEADER = [
    "path",
    "predicted_class",
    "confidence",
    "status",
    "error",
    *(f"prob_{name}" for name in CLASS_NAMES),
    "confirmed_class",  # added after the documented columns, which stay as they were
]


def read_back(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def write_back(path: Path, lines: list[list[str]]) -> None:
    """`lines` written as the app writes a CSV, as a spreadsheet would save an edit."""
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(lines)


def probabilities(top: int, confidence: float) -> np.ndarray:
    rest = (1.0 - confidence) / (len(CLASS_NAMES) - 1)
    values = np.full(len(CLASS_NAMES), rest, dtype=np.float32)
    values[top] = confidence
    return values


def test_columns_values_and_statuses(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    rows = [
        Prediction("photos/washer.jpg", probabilities(9, 0.93)),
        Prediction("photos/unsure.jpg", probabilities(3, 0.41)),
        Prediction.failed("photos/empty.jpg", "empty file (0 bytes)"),
    ]
    write_results_csv(out, rows, CLASS_NAMES, threshold=0.6)
    header, washer, unsure, failed = read_back(out)
    assert header == HEADER
    assert washer[:5] == ["photos/washer.jpg", "Washing Machine", "0.93", "ok", ""]
    assert unsure[:5] == ["photos/unsure.jpg", "Mobile", "0.41", "review", ""]
    assert failed == ["photos/empty.jpg", "", "", "error", "empty file (0 bytes)"] + [""] * 11
    for line, prediction in ((washer, rows[0]), (unsure, rows[1])):
        assert line[-1] == ""  # confirmed_class: nobody confirmed these
        written = np.array([float(cell) for cell in line[5:-1]])
        np.testing.assert_allclose(written, prediction.probabilities, rtol=1e-5)


def test_probabilities_keep_six_significant_digits(tmp_path: Path) -> None:
    values = np.array([0.123456789, 1.23456e-7, 0.876543], dtype=np.float32)
    out = tmp_path / "r.csv"
    write_results_csv(out, [Prediction("a.jpg", values)], ["A", "B", "C"])
    row = read_back(out)[1]
    assert row[2] == "0.876543"
    assert row[5:8] == ["0.123457", "1.23456e-07", "0.876543"]


def test_awkward_text_round_trips_and_formulas_are_neutralised(tmp_path: Path) -> None:
    names = [
        '=HYPERLINK("http://evil","x").jpg',
        "+cmd.jpg",
        "-1.jpg",
        "@SUM(A1).jpg",
        "\tTAB.jpg",
        "\rCR.jpg",
        'comma, "quote".jpg',
        "new\nline.jpg",
        "émoji 📱 Ωhm.jpg",
        "folder/=not-at-start.jpg",
    ]
    rows = [Prediction(name, probabilities(0, 0.9)) for name in names]
    rows.append(Prediction.failed("x.jpg", "=evil() in a reason"))
    out = tmp_path / "weird.csv"
    write_results_csv(out, rows, CLASS_NAMES)
    lines = read_back(out)[1:]
    written = [line[0] for line in lines[:-1]]
    expected = ["'" + n if n[0] in "=+-@\t\r" else n for n in names]
    assert written == expected
    assert lines[-1][4] == "'=evil() in a reason"
    assert out.read_bytes().decode("utf-8")  # valid UTF-8 throughout


def test_class_names_from_the_model_are_text_cells_too(tmp_path: Path) -> None:
    classes = ["=Evil", "Plain"]
    out = tmp_path / "r.csv"
    write_results_csv(out, [Prediction("a.jpg", np.array([0.9, 0.1]))], classes)
    header, row = read_back(out)
    assert header[5:] == ["prob_=Evil", "prob_Plain", "confirmed_class"]  # prob_: text
    assert row[1] == "'=Evil"
    assert row[2] == "0.9" and row[5] == "0.9"  # numbers stay numbers


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    out.write_text("previous results\n", encoding="utf-8")

    def rows_then_crash() -> Iterator[Prediction]:
        yield Prediction("a.jpg", probabilities(0, 0.9))
        raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError, match="disk went away"):
        write_results_csv(out, rows_then_crash(), CLASS_NAMES)
    assert out.read_text(encoding="utf-8") == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_mismatched_class_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 probabilities for 10 class names"):
        write_results_csv(
            tmp_path / "r.csv", [Prediction("a.jpg", np.array([0.2, 0.3, 0.5]))], CLASS_NAMES
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_results_csv(tmp_path / "no" / "r.csv", [], CLASS_NAMES)
    assert list(tmp_path.iterdir()) == []


def test_rows_match_the_engine_on_real_files(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    engine = Engine(tiny_model_path, threads=1)
    paths = sorted(sample_images_dir.iterdir())
    predictions = [p for batch in engine.classify(paths) for p in batch]
    out = tmp_path / "r.csv"
    write_results_csv(out, predictions, engine.class_names, threshold=0.6)
    header, *lines = read_back(out)
    assert header == HEADER
    for line, prediction in zip(lines, predictions, strict=True):
        assert line[0] == prediction.path
        assert line[1] == CLASS_NAMES[prediction.top_index]
        assert float(line[2]) == pytest.approx(prediction.confidence, rel=1e-5)
        np.testing.assert_allclose(
            [float(c) for c in line[5:-1]], prediction.probabilities, rtol=1e-5, atol=1e-12
        )
    assert [line[3] for line in lines].count("review") == 1


def test_class_activation_maps_do_not_change_the_csv(
    sample_images_dir: Path, tmp_path: Path
) -> None:
    engine = Engine(build_tiny_model(tmp_path / "cam.onnx", cam=True), threads=1)
    paths = [*sorted(sample_images_dir.iterdir()), tmp_path / "missing.jpg"]
    with_cam = [p for batch in engine.classify(paths) for p in batch]
    assert any(p.cam is not None for p in with_cam)
    without_cam = [
        Prediction(p.path, p.probabilities) if p.ok else Prediction.failed(p.path, p.error)
        for p in with_cam
    ]
    first, second = tmp_path / "with.csv", tmp_path / "without.csv"
    write_results_csv(first, with_cam, engine.class_names)
    write_results_csv(second, without_cam, engine.class_names)
    assert first.read_bytes() == second.read_bytes()
    assert read_back(first)[0] == HEADER  # the same columns, no CAM column


def test_text_that_is_not_valid_utf8_is_escaped_not_fatal(tmp_path: Path) -> None:
    # On Linux, a file named with the bytes b"caf\xe9.jpg" is listed as "caf\udce9.jpg".
    rows = [
        Prediction("photos/caf\udce9.jpg", probabilities(0, 0.9)),
        Prediction.failed("=caf\udce9.png", "odd \ud800 reason"),  # not from a file name
    ]
    out = tmp_path / "r.csv"
    write_results_csv(out, rows, CLASS_NAMES)
    out.read_bytes().decode("utf-8")  # strict: valid UTF-8 throughout
    first, second = read_back(out)[1:]
    assert first[0] == "photos/caf\\xe9.jpg"
    assert second[0] == "'=caf\\xe9.png"  # still neutralised
    assert second[4] == "odd \\ud800 reason"


def test_a_photo_whose_name_is_not_text_reopens_with_its_class(tmp_path: Path) -> None:
    # The CSV holds "caf\xe9.jpg" as text: reopened, it is the photo of those bytes, not
    # a photo missing (and its class lost), unless a file has that very text as its name.
    from desktop.core.csv_import import read_results_csv

    try:
        photo = tmp_path / os.fsdecode(b"caf\xe9.jpg")
        photo.write_bytes(b"x")
    except (OSError, UnicodeError):
        pytest.skip("this file system stores only names that are text")
    out = tmp_path / "r.csv"
    row = Prediction(str(photo), probabilities(5, 0.9))
    write_results_csv(out, [row], CLASS_NAMES, confirmed={str(photo): CLASS_NAMES[2]})
    reopened = read_results_csv(out, list(CLASS_NAMES))
    assert [p.path for p in reopened.predictions] == [str(photo)] and reopened.missing == []
    assert reopened.confirmed == {str(photo): CLASS_NAMES[2]}
    literal = tmp_path / "caf\\xe9.jpg"  # a name of those very characters, beside it
    literal.write_bytes(b"y")
    assert [p.path for p in read_results_csv(out, list(CLASS_NAMES)).predictions] == [str(literal)]


BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark


def test_the_csv_is_marked_utf8_for_excel_and_an_unmarked_one_reopens(tmp_path: Path) -> None:
    from desktop.core.csv_import import read_results_csv

    # Excel reads a CSV without the mark in the PC's code page: "Müller" became "MÃ¼ller".
    photo = tmp_path / "Müller 東京.jpg"
    photo.write_bytes(b"x")
    out = tmp_path / "r.csv"
    write_results_csv(out, [Prediction(str(photo), probabilities(5, 0.9))], CLASS_NAMES)
    raw = out.read_bytes()
    assert raw.startswith(BOM + b"path,") and raw.count(BOM) == 1
    assert "Müller 東京.jpg" in raw[len(BOM) :].decode("utf-8")
    # A file written before the mark (or by another tool without one) reopens the same.
    unmarked = tmp_path / "unmarked.csv"
    unmarked.write_bytes(raw[len(BOM) :])
    for path in (out, unmarked):
        [reopened] = read_results_csv(path, list(CLASS_NAMES)).predictions
        assert reopened.path == str(photo)


def test_an_appended_csv_has_one_mark_however_often_it_is_reopened(tmp_path: Path) -> None:
    rows = [Prediction(f"p/{n}.jpg", probabilities(n, 0.9)) for n in range(3)]
    marked, unmarked = tmp_path / "watch.csv", tmp_path / "older-watch.csv"
    unmarked.write_text(",".join(HEADER) + "\r\n", encoding="utf-8")  # as before the mark
    for path in (marked, unmarked):
        for row in rows:  # one appender per watch (re)start
            appender = ResultsCsvAppender(path, CLASS_NAMES)
            appender.append([row])
            appender.close()
        assert path.read_bytes().count(BOM) == (1 if path == marked else 0)
        header, *written = read_back(path)
        assert header == HEADER and [line[0] for line in written] == [
            "p/0.jpg",
            "p/1.jpg",
            "p/2.jpg",
        ]


def appended(path: Path, *names: str) -> None:
    """One watch (re)start appending a batch of photos `names`."""
    appender = ResultsCsvAppender(path, CLASS_NAMES)
    appender.append([Prediction(name, probabilities(1, 0.9)) for name in names])
    appender.close()


def test_a_row_cut_short_by_a_power_cut_is_cut_off_before_the_next_batch(tmp_path) -> None:
    from desktop.core.csv_import import read_results_csv

    # The power went during a batch: its last row is half on disk, and the watch's record
    # does not name that photo, so the restarted watch classifies it again. Its new row
    # must not run into the half one (the CSV would then lose it and fail to reopen).
    shift = tmp_path / "shift.csv"
    appended(shift, "cam/1.jpg")
    with shift.open("ab") as handle:
        handle.write(b"cam/2.jpg,Keyboard,0.8")
    appended(shift, "cam/2.jpg", "cam/3.jpg")
    _, *rows = read_back(shift)
    assert [row[0] for row in rows] == ["cam/1.jpg", "cam/2.jpg", "cam/3.jpg"]
    assert all(len(row) == len(HEADER) for row in rows)
    reopened = read_results_csv(shift, list(CLASS_NAMES))  # the photos are not here
    assert reopened.missing == ["cam/1.jpg", "cam/2.jpg", "cam/3.jpg"]


def test_a_whole_last_row_saved_without_its_line_end_is_kept(tmp_path: Path) -> None:
    shift = tmp_path / "shift.csv"
    appended(shift, "cam/1.jpg")
    shift.write_bytes(shift.read_bytes().rstrip(b"\r\n"))  # as an editor may save it
    appended(shift, "cam/2.jpg")
    _, *rows = read_back(shift)
    assert [row[0] for row in rows] == ["cam/1.jpg", "cam/2.jpg"]
    assert all(len(row) == len(HEADER) for row in rows)


def test_a_csv_saved_with_cr_line_ends_keeps_every_row(tmp_path: Path) -> None:
    # Saved as "CSV (Macintosh)": CR line ends only. Its rows are whole; a torn last one,
    # or one cut between its CR and LF, is mended without taking a row with it.
    from desktop.core.csv_import import read_results_csv

    shift = tmp_path / "shift.csv"
    appended(shift, "cam/1.jpg", "cam/2.jpg")
    shift.write_bytes(shift.read_bytes().replace(b"\r\n", b"\r"))
    appended(shift, "cam/3.jpg")
    with shift.open("ab") as handle:  # a row cut between its CR and LF
        handle.write(b"cam/4.jpg" + b",0" * (len(HEADER) - 1) + b"\r")
    appended(shift, "cam/5.jpg")
    with shift.open("ab") as handle:  # and one cut short
        handle.write(b"cam/6.jpg,Mouse")
    appended(shift, "cam/7.jpg")
    _, *rows = read_back(shift)
    assert [row[0] for row in rows] == [f"cam/{n}.jpg" for n in (1, 2, 3, 4, 5, 7)]
    reopened = read_results_csv(shift, list(CLASS_NAMES))  # no blank row between CR and LF
    assert len(reopened.missing) == 6


def test_a_watch_csv_is_never_appended_to_through_a_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "notes.csv"
    appended(elsewhere, "cam/1.jpg")
    before = elsewhere.read_bytes()
    link = tmp_path / "shift.csv"
    link.symlink_to(elsewhere)
    with pytest.raises(ValueError, match="shift.csv is a link, not a results CSV"):
        ResultsCsvAppender(link, CLASS_NAMES)
    assert elsewhere.read_bytes() == before


def test_a_batch_the_disk_takes_half_of_is_cut_off_again(tmp_path, monkeypatch) -> None:
    import errno
    import os

    from desktop.core import safe_files

    shift = tmp_path / "shift.csv"
    appended(shift, "cam/1.jpg")
    before = shift.read_bytes()
    appender = ResultsCsvAppender(shift, CLASS_NAMES)
    real_write = os.write
    monkeypatch.setattr(safe_files.os, "write", lambda fd, data: real_write(fd, data[:40]))
    with pytest.raises(OSError) as full:
        appender.append([Prediction("cam/2.jpg", probabilities(1, 0.9))])
    assert full.value.errno == errno.ENOSPC
    assert shift.read_bytes() == before
    monkeypatch.undo()
    appender.append([Prediction("cam/2.jpg", probabilities(1, 0.9))])  # space freed
    appender.close()
    assert [row[0] for row in read_back(shift)[1:]] == ["cam/1.jpg", "cam/2.jpg"]


def test_a_results_csv_reads_back_as_it_was_written(tmp_path: Path) -> None:
    from desktop.core.csv_import import CsvImportError, read_results_csv

    photos = tmp_path / "photos"
    photos.mkdir()
    paths = [photos / "=odd name.jpg", photos / "plain.jpg", photos / "broken.jpg"]
    for path in paths:
        path.write_bytes(b"x")
    rows = [
        Prediction(str(paths[0]), probabilities(2, 0.8)),
        Prediction(str(paths[1]), probabilities(4, 0.5), unknown_score=2.0, unknown=True),
        Prediction.failed(str(paths[2]), "empty file (0 bytes)"),
        Prediction(str(photos / "gone.jpg"), probabilities(1, 0.9)),
    ]
    out = tmp_path / "r.csv"
    write_results_csv(out, rows, CLASS_NAMES, 0.7, confirmed={str(paths[0]): "PCB"})

    reopened = read_results_csv(out, list(CLASS_NAMES))

    assert [p.path for p in reopened.predictions] == [str(p) for p in paths]
    np.testing.assert_allclose(
        reopened.predictions[0].probabilities, rows[0].probabilities, rtol=1e-5
    )
    assert (
        reopened.predictions[1].unknown and reopened.predictions[2].error == "empty file (0 bytes)"
    )
    assert reopened.confirmed == {str(paths[0]): "PCB"}
    assert reopened.missing == [str(photos / "gone.jpg")]
    broken = tmp_path / "broken.csv"
    broken.write_text(out.read_text().replace(",0.8,", ",lots,"))
    with pytest.raises(CsvImportError, match="not a number"):
        read_results_csv(broken, list(CLASS_NAMES))
    with pytest.raises(CsvImportError, match="not a results CSV"):
        read_results_csv(out, ["A", "B"])


def test_a_confirmed_class_the_model_does_not_have_is_refused_on_reopening(tmp_path) -> None:
    from desktop.core.csv_import import CsvImportError, read_results_csv

    # A typo made in a spreadsheet: reopened, "Batery" would be a class no sort folder or
    # count of this model has, so the file is refused with the line and the class it names.
    photo = tmp_path / "cell.jpg"
    photo.write_bytes(b"x")
    out = tmp_path / "review.csv"
    rows = [Prediction(str(photo), probabilities(0, 0.9))]
    write_results_csv(out, rows, CLASS_NAMES, confirmed={str(photo): "Battery"})
    assert read_results_csv(out, list(CLASS_NAMES)).confirmed == {str(photo): "Battery"}
    lines = read_back(out)
    lines[1][-1] = "Batery"
    write_back(out, lines)
    with pytest.raises(CsvImportError, match="review.csv, line 2: unknown class 'Batery'"):
        read_results_csv(out, list(CLASS_NAMES))


def test_a_csv_written_before_the_confirmed_class_column_reopens(tmp_path: Path) -> None:
    from desktop.core.csv_import import read_results_csv

    # Earlier releases wrote no confirmed_class column: their CSVs still reopen, with the
    # same predictions and nothing confirmed.
    photos = [tmp_path / "washer.jpg", tmp_path / "broken.jpg"]
    for photo in photos:
        photo.write_bytes(b"x")
    rows = [
        Prediction(str(photos[0]), probabilities(9, 0.93)),
        Prediction.failed(str(photos[1]), "empty file (0 bytes)"),
    ]
    out = tmp_path / "old.csv"
    write_results_csv(out, rows, CLASS_NAMES)
    older = [line[:-1] for line in read_back(out)]
    assert older[0] == HEADER[:-1]
    write_back(out, older)

    reopened = read_results_csv(out, list(CLASS_NAMES))

    assert [p.path for p in reopened.predictions] == [str(p) for p in photos]
    np.testing.assert_allclose(
        reopened.predictions[0].probabilities, rows[0].probabilities, rtol=1e-5
    )
    assert reopened.predictions[1].error == "empty file (0 bytes)"
    assert reopened.confirmed == {} and reopened.missing == []


def test_a_confidence_at_the_threshold_keeps_its_status_when_reopened(tmp_path: Path) -> None:
    from desktop.core.csv_import import read_results_csv
    from desktop.core.results import status_of

    # float32 stores 0.7 as 0.699999988 and 0.6999994 as 0.699999392; the CSV writes them
    # as 0.7 and 0.699999, and each row's status must not change when the CSV is reopened.
    photos = [tmp_path / "at.jpg", tmp_path / "under.jpg"]
    for photo in photos:
        photo.write_bytes(b"x")
    rows = [
        Prediction(str(photos[0]), probabilities(3, 0.7)),
        Prediction(str(photos[1]), probabilities(3, 0.6999994)),
    ]
    out = tmp_path / "r.csv"
    write_results_csv(out, rows, CLASS_NAMES, threshold=0.7)
    assert [line[2:4] for line in read_back(out)[1:]] == [["0.7", "ok"], ["0.699999", "review"]]
    reopened = read_results_csv(out, list(CLASS_NAMES)).predictions
    assert [status_of(p, 0.7) for p in reopened] == ["ok", "review"]


def test_a_csv_a_watch_appends_to_is_never_replaced_by_an_export(tmp_path) -> None:
    # The app's File > Export CSV… (and a batch run) over the CSV a watch is writing would
    # put the watch's rows from then on into a deleted file.
    shift = tmp_path / "shift.csv"
    appender = ResultsCsvAppender(shift, CLASS_NAMES)
    appender.append([Prediction("cam/1.jpg", probabilities(1, 0.9))])
    written = shift.read_bytes()
    with pytest.raises(CsvBusyError, match="being written by another program"):
        write_results_csv(shift, [Prediction("p/0.jpg", probabilities(0, 0.9))], CLASS_NAMES)
    with pytest.raises(CsvBusyError):
        ResultsCsvAppender(shift, CLASS_NAMES)  # a second watch
    assert shift.read_bytes() == written
    appender.append([Prediction("cam/2.jpg", probabilities(2, 0.9))])
    appender.close()
    write_results_csv(shift, [Prediction("p/0.jpg", probabilities(0, 0.9))], CLASS_NAMES)
    with shift.open(encoding="utf-8-sig", newline="") as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == ["p/0.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shift.csv"]  # no lock file left


def test_a_class_an_earlier_release_set_on_an_unreadable_photo_is_left_out(tmp_path) -> None:
    # Such a class was shown and exported again, but the sort filed the photo under _error
    # and the counts skipped it: a worker's class that nothing used, unsaid.
    from desktop.core.csv_import import read_results_csv

    good, broken = tmp_path / "good.jpg", tmp_path / "broken.jpg"
    good.write_bytes(b"a photo"), broken.write_bytes(b"not a photo")
    rows = [
        Prediction(str(good), probabilities(1, 0.9)),
        Prediction(str(broken), None, error="corrupt image"),
    ]
    out = tmp_path / "review.csv"
    write_results_csv(out, rows, CLASS_NAMES, confirmed={str(good): "PCB", str(broken): "PCB"})
    reopened = read_results_csv(out, list(CLASS_NAMES))
    assert reopened.confirmed == {str(good): "PCB"}
    assert reopened.dropped_on_errors == 1
    assert [p.path for p in reopened.predictions] == [str(good), str(broken)]


def test_a_one_time_write_leaves_no_lock_file_where_locks_stay(tmp_path, monkeypatch) -> None:
    # Windows cannot delete a lock file another program may hold open, so there a lock
    # file stays once made: an export must not make one beside every CSV it writes.
    from desktop.core import csv_export, folder_lock

    def release_keeping_the_file(lock) -> None:  # what release does on Windows
        fd, lock._fd = lock._fd, None
        if fd is not None:
            os.close(fd)

    monkeypatch.setattr(folder_lock.FolderLock, "release", release_keeping_the_file)
    monkeypatch.setattr(csv_export, "LOCK_FILES_STAY", True)
    for name in ("monday.csv", "tuesday.csv"):
        write_results_csv(
            tmp_path / name, [Prediction("p/0.jpg", probabilities(0, 0.9))], CLASS_NAMES
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monday.csv", "tuesday.csv"]


@pytest.mark.skipif(os.name == "nt", reason="symbolic links and pipes as POSIX has them")
def test_a_link_or_pipe_put_as_the_lock_file_is_never_followed_or_waited_on(tmp_path) -> None:
    from desktop.core.folder_lock import FolderLock

    shared, elsewhere = tmp_path / "shared", tmp_path / "elsewhere"
    shared.mkdir(), elsewhere.mkdir()
    (shared / ".results.csv.lock").symlink_to(elsewhere / "made-by-the-export")
    os.mkfifo(shared / ".pipe.csv.lock")
    rows = [Prediction("p/0.jpg", probabilities(0, 0.9))]
    for name in ("results.csv", "pipe.csv"):  # a pipe's open would wait for a writer
        write_results_csv(shared / name, rows, CLASS_NAMES)
        assert (shared / name).is_file()
        with pytest.raises(OSError, match=r"\.lock is not a plain file .*: delete it"):
            FolderLock(shared, f".{name}.lock").acquire()
    assert list(elsewhere.iterdir()) == []  # nothing made through the link


@pytest.mark.skipif(os.name == "nt", reason="there a one-time write only looks for the lock")
def test_a_watch_started_while_a_csv_is_written_is_refused(tmp_path, monkeypatch) -> None:
    # Else it would append to the file the write is about to replace: its first rows lost.
    from desktop.core import csv_export

    shift, refused = tmp_path / "shift.csv", []
    real_write = csv_export._write_rows

    def write_as_a_watch_starts(*args, **kwargs) -> None:
        try:
            ResultsCsvAppender(shift, CLASS_NAMES).close()
        except CsvBusyError as busy:
            refused.append(busy)
        real_write(*args, **kwargs)

    monkeypatch.setattr(csv_export, "_write_rows", write_as_a_watch_starts)
    write_results_csv(shift, [Prediction("p/0.jpg", probabilities(0, 0.9))], CLASS_NAMES)
    assert len(refused) == 1 and not (tmp_path / ".shift.csv.lock").exists()


def test_a_write_removes_what_a_killed_write_of_that_file_left(tmp_path, monkeypatch) -> None:
    from desktop.core.safe_files import STALE_TEMPORARY_SECONDS, replaced_whole

    # A kill or a power cut mid-write leaves a full-size temporary file beside the CSV;
    # the next write of that CSV removes it, never another writer's, still going.
    target = tmp_path / "results.csv"
    left = tmp_path / ".results.csv.0123456789ab.tmp"
    writing = tmp_path / ".results.csv.ba9876543210.tmp"
    other = tmp_path / ".shift.csv.0123456789ab.tmp"
    for path in (left, writing, other):
        path.write_text("path,predicted_class\n")
    long_ago = time.time() - STALE_TEMPORARY_SECONDS - 60
    for path in (left, other):
        os.utime(path, (long_ago, long_ago))
    # This machine's clock two hours ahead of the file system's (a share's server keeps its
    # own): the other writer's file, stamped by the file system a moment ago, is not stale.
    ahead = time.time() + 2 * STALE_TEMPORARY_SECONDS
    monkeypatch.setattr(time, "time", lambda: ahead)

    with replaced_whole(target) as handle:
        handle.write("done\n")

    assert target.read_text() == "done\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, writing.name, other.name]
    )

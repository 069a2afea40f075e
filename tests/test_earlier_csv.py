"""What a batch run does with the CSV it replaces: never a photo, another file or a person's
confirmed classes; and a stopped --move sort, run again to finish, keeps the rows of the
photos it had moved. Real runs of ewaste-classify on real files."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import pytest

from desktop.core.cli import main as classify_main
from desktop.core.csv_export import CSV_ENCODING
from fixtures_images import write_solid
from sort_faults import manifest_fails_after
from tiny_model import PROTOTYPE_COLOURS


def photos_of_every_class(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, colour in PROTOTYPE_COLOURS.items():
        write_solid(folder / f"{name.lower().replace(' ', '-')}.png", colour)
    return folder


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding=CSV_ENCODING, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def run(tiny_model_path: Path):
    def classify(*args: object) -> int:
        return classify_main([*map(str, args), "--model", str(tiny_model_path)])

    return classify


def test_the_csv_replaces_only_an_earlier_results_csv_without_a_persons_classes(
    run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = photos_of_every_class(tmp_path / "photos")
    battery = photos / "battery.png"
    photo_bytes = battery.read_bytes()
    # A shell slip: `--csv *.png` names the first photo as the CSV.
    assert run(photos / "mouse.png", "--csv", battery) == 2
    assert f"--csv {battery} has a photo's name: give a name ending in .csv" in (
        capsys.readouterr().err
    )
    assert battery.read_bytes() == photo_bytes
    # The same slip with --summary, which must end in .png: a photo of the batch is refused.
    assert run(photos, "--csv", tmp_path / "r.csv", "--summary", photos / "pcb.png") == 2
    assert "pcb.png is one of the photos to classify" in capsys.readouterr().err

    notes = tmp_path / "notes.csv"
    notes.write_text("date,weight kg\n2026-12-06,412\n", encoding="utf-8")
    assert run(photos, "--csv", notes) == 2
    assert "notes.csv is not a results CSV of this app" in capsys.readouterr().err
    assert notes.read_text(encoding="utf-8") == "date,weight kg\n2026-12-06,412\n"

    results = tmp_path / "results.csv"
    assert run(photos, "--csv", results) == 0
    assert run(photos, "--csv", results) == 0  # a rerun replaces its own CSV
    rows = csv_rows(results)
    assert len(rows) == 10

    # The app saved a person's class into it: a rerun would throw that work away.
    rows[0]["confirmed_class"] = "PCB"
    with results.open("w", encoding=CSV_ENCODING, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = results.read_bytes()
    capsys.readouterr()
    assert run(photos, "--csv", results) == 2
    assert "holds classes a person confirmed in the app" in capsys.readouterr().err
    assert results.read_bytes() == before


def test_a_csv_that_cannot_be_read_is_not_called_another_kind_of_file(
    run, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another user's results, mode 600: told "not a results CSV", a worker would rename a
    # good file. (Root reads any file, so the refusal is the file system's, played here.)
    photos = photos_of_every_class(tmp_path / "photos")
    theirs = tmp_path / "theirs.csv"
    assert run(photos, "--csv", theirs) == 0
    real_open = Path.open

    def refused(path: Path, *args, **kwargs):
        if path == theirs:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    before = theirs.stat().st_mtime_ns
    capsys.readouterr()
    assert run(photos, "--csv", theirs) == 2
    err = capsys.readouterr().err
    assert f"--csv {theirs} cannot be read to check what it holds: Permission denied" in err
    assert "not a results CSV" not in err and theirs.stat().st_mtime_ns == before


def test_a_stopped_move_sort_run_again_keeps_the_rows_of_the_photos_it_moved(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = photos_of_every_class(tmp_path / "camera")
    dest, results = tmp_path / "sorted", tmp_path / "shift.csv"
    command = (photos, "--csv", results, "--sort-into", dest, "--move")
    manifest_fails_after(monkeypatch, 3, errno.ENOSPC)
    assert run(*command) == 1
    assert "free space there and sort again to finish" in capsys.readouterr().err
    first = csv_rows(results)
    assert len(first) == 10 and len(list(photos.iterdir())) == 7
    monkeypatch.undo()

    # The same command again, as told: the three photos moved are not in the camera
    # folder any more, yet the shift's CSV (and its summary) still lists all ten.
    assert run(*command, "--summary", tmp_path / "shift.png") == 0
    out = capsys.readouterr().out
    assert "wrote 10 rows" in out and "rows of 3 photos moved by the run it finishes" in out
    assert csv_rows(results) == first
    assert list(photos.iterdir()) == [] and len(list(dest.rglob("*.png"))) == 10

    # The same command once more, all done: nothing to classify, the CSV stays whole.
    assert run(*command) == 0
    assert csv_rows(results) == first

    # The next day, new photos into the same CSV and folder: that CSV is not carried on,
    # also when the camera's counter restarted and a name is one the sort moved before.
    write_solid(photos / "IMG_0001.png", PROTOTYPE_COLOURS["Mouse"])
    write_solid(photos / "battery.png", PROTOTYPE_COLOURS["Printer"])
    assert run(*command) == 0
    assert [row["path"] for row in csv_rows(results)] == [
        str(photos / "IMG_0001.png"),
        str(photos / "battery.png"),
    ]


def test_a_next_days_batch_of_only_new_names_does_not_carry_on_yesterdays_csv(
    run, tmp_path: Path
) -> None:
    # Yesterday's --move sort finished: its photos are gone from the camera folder. Today
    # brings only a new name (no counter reset to give it away): this run finishes nothing,
    # so the CSV lists today's photo alone, not yesterday's rows as well.
    photos = photos_of_every_class(tmp_path / "camera")
    dest, results = tmp_path / "sorted", tmp_path / "shift.csv"
    command = (photos, "--csv", results, "--sort-into", dest, "--move")
    assert run(*command) == 0
    assert len(csv_rows(results)) == 10 and list(photos.iterdir()) == []

    write_solid(photos / "IMG_0001.png", PROTOTYPE_COLOURS["Mouse"])
    assert run(*command) == 0
    assert [row["path"] for row in csv_rows(results)] == [str(photos / "IMG_0001.png")]

"""`ewaste-classify` end to end: real model, real files, the CSV read back."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from child_signals import deliverable
from desktop.core.cli import Progress, main
from desktop.core.csv_export import results_header
from desktop.core.discovery import collect_images
from desktop.core.engine import Engine
from desktop.core.preprocessing import load_model_input
from fixtures_images import AMBIGUOUS_SAMPLE, BAD_INPUTS, NON_IMAGE_FILES
from tiny_model import CLASS_NAMES

CONSOLE_SCRIPT = Path(sys.executable).with_name("ewaste-classify")
FORBIDDEN = ["tensorflow", "keras", "tf2onnx", "trainer", "converter", "PySide6"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_console_script_classifies_folders_and_reports(
    tiny_model_path: Path, sample_images_dir: Path, bad_inputs_dir: Path, tmp_path: Path
) -> None:
    assert CONSOLE_SCRIPT.is_file(), "the project is not installed in this environment"
    out = tmp_path / "results.csv"
    completed = subprocess.run(
        [
            str(CONSOLE_SCRIPT),
            str(sample_images_dir),
            str(bad_inputs_dir),
            "--csv",
            str(out),
            "--model",
            str(tiny_model_path),
            "--batch",
            "4",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    rows = read_rows(out)
    by_name = {Path(row["path"]).name: row for row in rows}
    # Every sample and every bad input has its row; error rows did not stop the run.
    assert len(rows) == len({r["path"] for r in rows})
    for name, expect in BAD_INPUTS.items():
        row = by_name[name]
        if expect.kind == "class":
            assert row["predicted_class"] == expect.class_name, name
            assert row["status"] == "ok" and row["error"] == ""
        else:
            assert row["status"] == "error" and expect.reason in row["error"], name
            assert row["predicted_class"] == row["confidence"] == row["prob_Battery"] == ""
        # Each photo that could not be read is named on stderr too, once: a broken link as
        # the run begins, a photo that failed to decode as it ends.
        said = f"{row['path']}: {row['error']}"
        assert completed.stderr.count(said) == (expect.kind != "class"), name
        if expect.kind == "error":
            assert f"warning: not classified: {said}" in completed.stderr
    assert by_name[AMBIGUOUS_SAMPLE]["status"] == "review"
    # Good rows carry exactly what the engine computes for the preprocessed file.
    engine = Engine(tiny_model_path, threads=1)
    for row in rows:
        if row["status"] != "error":
            expected = engine.predict_batch(
                load_model_input(row["path"], (32, 32), engine.info.resize)[None]
            )[0]
            written = [float(row[f"prob_{name}"]) for name in CLASS_NAMES]
            np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-12)
    assert str(out) in completed.stdout
    errors = sum(r["status"] == "error" for r in rows)
    reviews = sum(r["status"] == "review" for r in rows)
    assert f"{reviews} to review" in completed.stdout
    assert f"{errors} errors" in completed.stdout
    assert f"{len(NON_IMAGE_FILES)} non-image files skipped" in completed.stdout
    images = len(collect_images([sample_images_dir, bad_inputs_dir]).images)
    assert completed.stderr.count(f"classified {images}/{images} (") == 1
    assert "images/s" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_path_that_does_not_exist_is_a_usage_error_that_writes_nothing(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, capsys
) -> None:
    # A nightly script whose camera is not plugged in must see a failure, and keep last
    # night's CSV, rather than exit 0 over a CSV of one "not found" row.
    out = tmp_path / "night.csv"
    argv = ["--csv", str(out), "--model", str(tiny_model_path)]
    assert main([str(sample_images_dir), *argv]) == 0
    last_night = out.read_bytes()
    capsys.readouterr()
    unplugged = tmp_path / "media" / "camera"
    assert main([str(sample_images_dir), str(unplugged), *argv]) == 2
    assert main([str(unplugged), str(tmp_path / "typo.jpg"), *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"ewaste-classify: error: not found: {unplugged}; nothing was classified",
        f"ewaste-classify: error: not found: {unplugged} (and 1 more); nothing was classified",
    ]
    assert out.read_bytes() == last_night
    # A path there but out of reach is said as such, not as an unplugged camera.
    too_long = tmp_path / ("x" * 300)
    assert main([str(too_long), *argv]) == 2
    said = capsys.readouterr().err
    too_long_said = os.strerror(errno.ENAMETOOLONG)  # as the system says it
    assert f"error: cannot access {too_long}: {too_long_said}; nothing was" in said


def test_a_message_the_log_cannot_encode_is_escaped_not_lost(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    # A log in ASCII (or Windows' cp1252 for "łódź"): the line saying where the CSV went
    # must still be there.
    out = tmp_path / "Jürgen.csv"
    command = [str(CONSOLE_SCRIPT), str(sample_images_dir), "--csv", str(out)]
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}
    completed = subprocess.run(
        [*command, "--model", str(tiny_model_path)], capture_output=True, env=environment
    )
    assert completed.returncode == 0
    assert f"wrote {len(read_rows(out))} rows to {tmp_path}/J\\xfcrgen.csv".encode() in (
        completed.stdout
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_closed_or_full_log_does_not_stop_the_run(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, unbuffered: str
) -> None:
    # A station script with stderr closed (2>&-) and its output on a full disk: the run
    # still writes its CSV, sorts, and exits 0 (it printed no traceback, and not 120).
    out, dest = tmp_path / "night.csv", tmp_path / "sorted"
    command = [str(CONSOLE_SCRIPT), str(sample_images_dir), "--csv", str(out)]
    command += ["--sort-into", str(dest), "--model", str(tiny_model_path)]
    environment = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    completed = subprocess.run(
        ["sh", "-c", '"$@" 2>&- >/dev/full', "sh", *command], env=environment, timeout=120
    )
    assert completed.returncode == 0
    rows = read_rows(out)
    assert rows and {r["status"] for r in rows} <= {"ok", "review", "unknown"}
    filed = {p.name for p in dest.rglob("*") if p.is_file() and p.parent != dest}
    assert filed == {Path(r["path"]).name for r in rows}


def test_relative_paths_are_written_absolute_like_the_gui(
    tiny_model_path: Path, bad_inputs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative "=1+2.png" would need a "'" in front (a formula otherwise), and a tool
    # reading the column would then get a wrong path. Absolute paths never start with a
    # formula character, so the path cell is the real path, as in the app's export.
    monkeypatch.chdir(bad_inputs_dir)
    out = tmp_path / "r.csv"
    code = main(["=1+2.png", "@SUM(1).jpg", "--csv", str(out), "--model", str(tiny_model_path)])
    assert code == 0
    rows = read_rows(out)
    here = os.getcwd()
    assert [row["path"] for row in rows] == [
        os.path.join(here, "=1+2.png"),
        os.path.join(here, "@SUM(1).jpg"),
    ]
    assert all(Path(row["path"]).is_file() for row in rows)
    assert [row["predicted_class"] for row in rows] == ["Mouse", "Battery"]


def test_rows_the_csv_cannot_hold_fail_with_one_line_not_a_traceback(
    tiny_model_path: Path,
    sample_images_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise ValueError("a.jpg: 3 probabilities for 10 class names")

    monkeypatch.setattr("desktop.core.cli.write_results_csv", refuse)
    out = tmp_path / "r.csv"
    args = [str(sample_images_dir), "--csv", str(out), "--model", str(tiny_model_path)]
    assert main(args) == 1
    error = capsys.readouterr().err.splitlines()[-1]
    reason = "a.jpg: 3 probabilities for 10 class names"
    assert error == f"ewaste-classify: error: cannot write {out}: {reason}"
    assert not out.exists()


def test_a_run_names_at_most_20_unreadable_photos_then_ends_with_its_counts(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(22):
        (photos / f"IMG_{index:04}.jpg").write_bytes(b"not a photo")
    out = tmp_path / "r.csv"
    completed = subprocess.run(
        [str(CONSOLE_SCRIPT), str(photos), "--csv", str(out), "--model", str(tiny_model_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout
    lines = completed.stdout.splitlines()
    named = [line for line in lines if "warning: not classified: " in line]
    assert len(named) == 20 and named[0].endswith(
        "IMG_0000.jpg: not an image file, or not a format this app reads"
    )
    assert f"ewaste-classify: warning: and 2 more not classified: the error rows of {out}" in lines
    # The counts come last, where a terminal leaves them in sight.
    assert lines[-2:] == [
        f"wrote 22 rows to {out}",
        "0 ok, 0 to review (confidence under 0.7), 0 unknown items, 22 errors; "
        "0 non-image files skipped",
    ]
    assert sum(row["status"] == "error" for row in read_rows(out)) == 22


def test_a_broken_links_name_is_escaped_in_its_warning(tiny_model_path, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "bro\nken.jpg").symlink_to(tmp_path / "gone.jpg")
    out = tmp_path / "r.csv"
    assert main([str(photos), "--csv", str(out), "--model", str(tiny_model_path)]) == 0
    said = capsys.readouterr().err
    assert "warning: " + str(photos) + "/bro\\nken.jpg: broken symbolic link" in said
    assert "bro\nken" not in said


def test_review_threshold_flag(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    ambiguous = str(sample_images_dir / AMBIGUOUS_SAMPLE)
    for threshold, status in (("0.4", "ok"), ("0.6", "review")):
        out = tmp_path / f"r{threshold}.csv"
        args = [ambiguous, "--csv", str(out), "--model", str(tiny_model_path)]
        assert main([*args, "--review-threshold", threshold]) == 0
        assert read_rows(out)[0]["status"] == status


def test_a_folder_without_images_writes_a_header_only_csv_and_says_so(
    tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no photos today\n")
    out = tmp_path / "r.csv"
    assert main([str(tmp_path / "empty"), "--csv", str(out), "--model", str(tiny_model_path)]) == 0
    assert read_rows(out) == []
    captured = capsys.readouterr()
    assert "0 ok, 0 to review" in captured.out
    assert "warning: no images found in the given paths (1 other file)" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "{tmp}/missing-folder/r.csv"], "output folder does not exist"),
        (["--csv", "{tmp}"], "is a folder"),
        (["--csv", "{tmp}/r.csv", "--model", "{tmp}/nope.onnx"], "model file not found"),
        (["--csv", "{tmp}/r.csv", "--model", "{tmp}/not-a-model.onnx"], "not a usable ONNX"),
        (["--csv", "{tmp}/r.csv", "--batch", "0"], "must be from 1 to 256, got 0"),
        (["--csv", "{tmp}/r.csv", "--threads", "two"], "expected a whole number"),
        (["--csv", "{tmp}/r.csv", "--review-threshold", "1.5"], "between 0 and 1"),
        ([], "give the PATHs to classify and --csv OUT"),
        # Checked before the run: a summary that cannot be written would cost the whole
        # batch's --sort-into after the classifying was done.
        (["--csv", "{tmp}/r.csv", "--summary", "{tmp}/nodir/s.png"], "output folder does not"),
        (["--csv", "{tmp}/r.csv", "--summary", "{tmp}/s.jpg"], "ending in .png, not s.jpg"),
        (["--csv", "{tmp}/r.csv", "--summary", "{tmp}"], "--summary {tmp} is a folder"),
        (["--csv", "{tmp}/r.csv", "--poll", "1"], "--poll goes with --watch DIR"),
    ],
    ids=[
        "no-folder",
        "csv-is-folder",
        "no-model",
        "bad-model",
        "batch",
        "threads",
        "thr",
        "csv",
        "summary-folder-missing",
        "summary-not-png",
        "summary-is-folder",
        "poll-without-watch",
    ],
)
def test_usage_errors_exit_2_with_one_line_and_no_traceback(
    tiny_model_path: Path,
    sample_images_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "not-a-model.onnx").write_text("hello\nworld\n")
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--model" not in filled:
        filled += ["--model", str(tiny_model_path)]
    assert main([str(sample_images_dir), *filled]) == 2
    captured = capsys.readouterr()
    error_lines = [line for line in captured.err.splitlines() if "error:" in line]
    message = message.replace("{tmp}", str(tmp_path))
    assert len(error_lines) == 1 and message in error_lines[0], captured.err
    assert "Traceback" not in captured.err
    assert not list(tmp_path.glob("*.csv"))


def test_a_relative_output_folder_is_named_in_full(tiny_model_path, tmp_path, capsys, monkeypatch):
    # "output folder does not exist: shift" in a cron job's mail names no folder there.
    monkeypatch.chdir(tmp_path)
    options = ["--csv", "shift/r.csv", "--model", str(tiny_model_path)]
    assert main([str(tmp_path), *options]) == 2
    assert f"output folder does not exist: {Path.cwd() / 'shift'} " in capsys.readouterr().err


def test_a_deleted_working_folder_is_a_usage_error(tiny_model_path, tmp_path, capsys, monkeypatch):
    # A cron job left in a folder a sync tool replaced: os.getcwd() fails there.
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert main([str(tmp_path), "--csv", "r.csv", "--model", str(tiny_model_path)]) == 2
    said = capsys.readouterr().err
    assert "error: cannot write to output folder ." in said and "Traceback" not in said


IMAGES_FOR_CTRL_C = 5000


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_keeps_the_finished_rows_beside_the_complete_csv(
    stop: str, tiny_model_path: Path, large_jpeg_path: Path, tmp_path: Path
) -> None:
    signum = getattr(signal, stop)
    photos = tmp_path / "photos"
    photos.mkdir()
    # Far more than can be done before the signal lands: a quiet CI machine classified
    # 300 of these in 0.7 s, finishing before the signal arrived.
    for i in range(IMAGES_FOR_CTRL_C):
        os.link(large_jpeg_path, photos / f"camera_{i:04d}.jpg")
    (photos / "lost.jpg").symlink_to(tmp_path / "nowhere.jpg")  # a discovery problem row
    out = tmp_path / "r.csv"
    earlier = ",".join(results_header(CLASS_NAMES)) + "\n/photos/a.jpg,Mouse,...\n"
    out.write_text(earlier)  # an earlier, complete run
    with deliverable(signum):
        process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), str(photos), "--csv", str(out), "--model", str(tiny_model_path)]
            + ["--batch", "4", "--threads", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        assert process.stderr is not None
        first_lines = [process.stderr.readline() for _ in range(3)]
        assert (
            first_lines[0].startswith("ewaste-classify: warning: ") and "lost.jpg" in first_lines[0]
        )
        assert first_lines[2].startswith("classified "), first_lines  # it is running
        process.send_signal(signum)
        stdout, rest = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 128 + signum, rest
    assert f"stopped by {stop} after" in rest and f"of {IMAGES_FOR_CTRL_C} images" in rest
    assert "Traceback" not in rest
    assert out.read_text() == earlier  # never replaced by a partial run
    partial = tmp_path / "r.partial.csv"
    assert str(partial) in stdout
    rows = read_rows(partial)
    assert 0 < len(rows) < IMAGES_FOR_CTRL_C  # the finished rows, not the whole folder
    problems = [row for row in rows if row["status"] == "error"]
    assert [Path(row["path"]).name for row in problems] == ["lost.jpg"]
    assert all(row["path"].startswith(str(photos)) for row in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "r.csv", "r.partial.csv"]


def test_a_complete_run_names_the_partial_csv_an_earlier_stop_left(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, capsys
) -> None:
    out, partial = tmp_path / "r.csv", tmp_path / "r.partial.csv"
    partial.write_text("the rows of a run stopped yesterday\n")
    assert main([str(sample_images_dir), "--csv", str(out), "--model", str(tiny_model_path)]) == 0
    assert f"{partial} is left from an earlier stopped run; {out} is this one" in (
        capsys.readouterr().err
    )
    assert partial.read_text() == "the rows of a run stopped yesterday\n"  # never deleted


def test_a_signal_during_the_final_write_waits_for_a_complete_csv(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import desktop.core.cli as cli

    real_write = cli.write_results_csv

    def write_hit_by_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # lands in the middle of the write
        return real_write(*args, **kwargs)

    monkeypatch.setattr(cli, "write_results_csv", write_hit_by_sigterm)
    out = tmp_path / "r.csv"
    code = main([str(sample_images_dir), "--csv", str(out), "--model", str(tiny_model_path)])
    assert code == 128 + signal.SIGTERM
    assert len(read_rows(out)) == len(list(sample_images_dir.iterdir()))  # complete


def test_a_stop_while_drawing_the_summary_says_the_csv_is_complete(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import desktop.core.cli as cli

    real_summary = cli.write_summary

    def summary_hit_by_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_summary(*args, **kwargs)

    monkeypatch.setattr(cli, "write_summary", summary_hit_by_sigterm)
    out, png = tmp_path / "r.csv", tmp_path / "r.png"
    argv = [str(sample_images_dir), "--csv", str(out), "--summary", str(png)]
    assert main([*argv, "--model", str(tiny_model_path)]) == 128 + signal.SIGTERM
    said = capsys.readouterr().err
    assert f"stopped by SIGTERM while drawing the summary; {out} is complete" in said
    assert "nothing written" not in said
    assert len(read_rows(out)) == len(list(sample_images_dir.iterdir()))


def test_a_model_file_gone_after_loading_still_gets_its_summary_and_sort(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    # A model on a stick pulled out, or replaced, during the run: the summary names the
    # model that classified (hashed as loaded), and the sort asked for still runs.
    import shutil

    import desktop.core.cli as cli
    from desktop.core.hashing import file_sha256

    model = tmp_path / "model.onnx"
    shutil.copy(tiny_model_path, model)
    loaded = file_sha256(model)
    engines: list[Engine] = []

    def loaded_then_gone(*args, **kwargs) -> Engine:
        engines.append(Engine(*args, **kwargs))
        model.unlink()
        return engines[-1]

    monkeypatch.setattr(cli, "Engine", loaded_then_gone)
    png, dest = tmp_path / "shift.png", tmp_path / "sorted"
    argv = [str(sample_images_dir), "--csv", str(tmp_path / "r.csv"), "--model", str(model)]
    assert main([*argv, "--summary", str(png), "--sort-into", str(dest)]) == 0
    assert png.stat().st_size > 0 and (dest / "manifest.csv").is_file()
    assert engines[0].model_sha256 == loaded


def test_ctrl_c_while_the_model_loads_exits_130_without_a_traceback(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import desktop.core.cli as cli

    class InterruptedEngine(Engine):
        def __init__(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(cli, "Engine", InterruptedEngine)
    out = tmp_path / "r.csv"
    with deliverable(signal.SIGINT):
        code = main([str(sample_images_dir), "--csv", str(out), "--model", str(tiny_model_path)])
    assert code == 130
    assert "stopped by SIGINT before any image was classified" in capsys.readouterr().err
    assert not out.exists()


def test_a_long_non_ascii_csv_name_is_written_or_refused_before_the_work(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    fits = tmp_path / ("ж" * 125 + ".csv")  # 254 bytes: legal
    assert main([str(sample_images_dir), "--csv", str(fits), "--model", str(tiny_model_path)]) == 0
    assert len(read_rows(fits)) == len(list(sample_images_dir.iterdir()))
    from desktop.core.cli import partial_path

    partial = partial_path(fits)  # where an interrupted run would go: within the limit too
    assert len(os.fsencode(partial.name)) <= 255 and partial.name.endswith(".partial.csv")
    too_long = tmp_path / ("ж" * 130 + ".csv")  # 264 bytes
    args = [str(sample_images_dir), "--csv", str(too_long), "--model", str(tiny_model_path)]
    assert main(args) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples", fits.name]


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_csv_path_that_is_a_link_or_special_file_is_refused(
    kind: str, tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, capsys
) -> None:
    target = tmp_path / "results.csv"
    if kind == "symlink":
        real = tmp_path / "real.csv"
        real.write_text("kept\n")
        target.symlink_to(real)
    else:
        os.mkfifo(target)
    args = [str(sample_images_dir), "--csv", str(target), "--model", str(tiny_model_path)]
    assert main(args) == 2
    assert "a link or a special file" in capsys.readouterr().err
    assert target.is_symlink() if kind == "symlink" else not target.is_file()
    if kind == "symlink":
        assert (tmp_path / "real.csv").read_text() == "kept\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--threads", "100000"], "must be from 1 to 64, got 100000"),
        (["--batch", "100000"], "must be from 1 to 256, got 100000"),
        (["--csv", ""], "--csv needs a file name"),
        (["--csv", "{tmp}/newdir/"], "is a folder"),
    ],
)
def test_out_of_range_flags_and_csv_paths_are_usage_errors(
    flags: list[str], message: str, sample_images_dir: Path, tmp_path: Path, capsys
) -> None:
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    csv_flags = [] if "--csv" in flags else ["--csv", str(tmp_path / "r.csv")]
    assert main([str(sample_images_dir), *csv_flags, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "newdir").exists() and not (tmp_path / "r.csv").exists()


# A wrapper that runs the CLI in a fresh interpreter and reports which of the given top-level
# modules were imported by then; exits 3 if any were.
IMPORT_CHECK = textwrap.dedent(
    """
    import json, sys
    forbidden = json.loads(sys.argv[1])
    from desktop.core.cli import Progress, main
    code = main(sys.argv[2:])
    loaded = sorted({name.split(".")[0] for name in sys.modules} & set(forbidden))
    print("LOADED " + json.dumps(loaded))
    sys.exit(3 if loaded else code)
    """
)


def run_import_check(
    forbidden: list[str], cli_args: list[str], cwd: Path
) -> subprocess.CompletedProcess:
    # Run outside the checkout and without PYTHONPATH: the installed package is what runs.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, json.dumps(forbidden), *cli_args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_the_command_never_imports_tensorflow(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    args = [
        str(sample_images_dir),
        "--csv",
        str(tmp_path / "r.csv"),
        "--model",
        str(tiny_model_path),
    ]
    completed = run_import_check(FORBIDDEN, args, tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "LOADED []" in completed.stdout
    assert len(read_rows(tmp_path / "r.csv")) == 6  # it really ran the model

    # The same check does catch a module the command imports: it can fail.
    control = run_import_check(["onnxruntime", "numpy"], args, tmp_path)
    assert control.returncode == 3
    assert 'LOADED ["numpy", "onnxruntime"]' in control.stdout


def test_version_is_the_installed_projects(project_version: str) -> None:
    # IT asks which release a station runs; the answer comes from pyproject.toml.
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, f"ewaste-classify {project_version}\n")


def station_env(home: Path | str) -> dict[str, str]:
    """A station's bare environment. ONNX Runtime keeps its telemetry quiet by itself wherever
    it sees a CI variable (CI, GITHUB_ACTIONS, JENKINS_URL, ...): the telemetry tests and their
    controls would pass or fail on the CI machine for that reason alone."""
    return {"HOME": str(home), "PATH": os.environ["PATH"], "LANG": "C.UTF-8"}


def plain_onnx_runtime(model: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A session opened without the package, so without its telemetry switch."""
    return subprocess.run(
        [sys.executable, "-c", "import onnxruntime as o, sys; o.InferenceSession(sys.argv[1])"]
        + [str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def need_telemetry(shown_without_the_switch: bool) -> None:
    """The control of a telemetry test: this ONNX Runtime keeps telemetry without the
    project's switch. 1.23, the last release for Python 3.10, keeps none to switch off;
    a newer one that keeps none where it did is a change to look at, not to skip."""
    import onnxruntime

    version = tuple(int(part) for part in onnxruntime.__version__.split(".")[:2])
    if not shown_without_the_switch and version < (1, 24):
        pytest.skip(f"ONNX Runtime {onnxruntime.__version__} keeps no telemetry here")
    assert shown_without_the_switch, "this ONNX Runtime keeps its telemetry elsewhere now"


def test_onnx_runtime_telemetry_is_off(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    # ONNX Runtime's official builds queue usage events in a database under
    # ~/.cache/Microsoft and upload them to Microsoft; the station is offline by promise.
    home = tmp_path / "home"
    home.mkdir()
    env = station_env(home)
    command = [str(CONSOLE_SCRIPT), str(sample_images_dir), "--csv", str(tmp_path / "r.csv")]
    result = subprocess.run(
        command + ["--model", str(tiny_model_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert len(read_rows(tmp_path / "r.csv")) == 6  # the model really ran
    assert list(home.rglob("*")) == []  # no device ID, no event database
    # The same session without the package's switch does store them: the check can fail.
    control = plain_onnx_runtime(tiny_model_path, env)
    assert control.returncode == 0, control.stderr
    need_telemetry(bool(list((home / ".cache" / "Microsoft").rglob("onnxruntime.db"))))


def test_no_onnx_runtime_warning_when_the_home_folder_is_read_only(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    # ONNX Runtime stores a telemetry ID in the cache folder on import, and warns in colour
    # on every start where it cannot; a locked-down station PC has a read-only home.
    env = station_env("/proc/no-such-home")  # cannot be created, even by root
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), str(sample_images_dir), "--csv", str(tmp_path / "r.csv")]
        + ["--model", str(tiny_model_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "telemetry" not in result.stderr and "\x1b[" not in result.stderr
    control = plain_onnx_runtime(tiny_model_path, env)  # it does warn without the switch
    assert control.returncode == 0
    need_telemetry("telemetry device ID" in control.stderr)


def test_ray_without_the_cluster_extra_is_a_usage_error(
    sample_images_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ray" else real_find_spec(name, *a),
    )
    args = [str(sample_images_dir), "--csv", str(tmp_path / "r.csv"), "--ray"]
    assert main(args) == 2
    assert "--ray needs Ray: pip install 'ewaste-sorter[cluster]'" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
    # The one-folder build (PyInstaller sets sys.frozen) has no pip to install it with.
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert main(args) == 2
    said = capsys.readouterr().err
    assert "this build leaves out" in said and "pip install" not in said


def test_progress_logged_to_a_file_writes_each_count_once() -> None:
    # One batch holding every image: the first update and finish() must not both log it.
    log = io.StringIO()
    progress = Progress(10, log)
    progress.update(4)
    progress.update(10)
    progress.finish()
    lines = log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["classified 4/10", "classified 10/10"]

    single = io.StringIO()
    progress = Progress(3, single)
    progress.update(3)
    progress.finish()
    assert single.getvalue().count("classified 3/3 (") == 1


def test_a_watch_refuses_a_csv_of_other_columns_before_saying_it_watches(
    tiny_model_path: Path, tmp_path: Path, capsys
) -> None:
    camera, mine = tmp_path / "camera", tmp_path / "mine.csv"
    camera.mkdir()
    mine.write_text("date,item\n2026-12-07,kettle\n")
    argv = ["--watch", str(camera), "--csv", str(mine), "--model", str(tiny_model_path)]
    assert main(argv) == 2
    said = capsys.readouterr()
    assert f"{mine} holds other columns" in said.err and "watching" not in said.out
    assert mine.read_text() == "date,item\n2026-12-07,kettle\n"


@pytest.mark.parametrize("watch", [False, True])
def test_a_csv_in_place_of_the_sorts_manifest_is_refused_before_any_work(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, capsys, watch
) -> None:
    dest = tmp_path / "sorted"
    dest.mkdir()
    given = ["--watch", str(sample_images_dir)] if watch else [str(sample_images_dir)]
    argv = [*given, "--csv", str(dest / "manifest.csv"), "--sort-into", str(dest)]
    assert main([*argv, "--model", str(tiny_model_path)]) == 2
    said = capsys.readouterr()
    assert "manifest.csv is where the sort into" in said.err
    assert "to classify" not in said.err and "watching" not in said.out
    assert list(dest.iterdir()) == []


def test_a_watch_begun_on_the_csv_during_a_run_keeps_it_and_the_run_its_rows(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    # Checked free at the start, the CSV was taken by a watch while the photos were
    # classified: replacing it would lose the watch's rows, refusing lost the run's.
    import desktop.core.cli as cli
    from desktop.core.csv_export import ResultsCsvAppender

    out = tmp_path / "shift.csv"
    watches: list[ResultsCsvAppender] = []
    real_engine = cli.Engine

    def engine_as_a_watch_starts(*args, **kwargs):
        engine = real_engine(*args, **kwargs)
        watches.append(ResultsCsvAppender(out, engine.class_names))
        return engine

    monkeypatch.setattr(cli, "Engine", engine_as_a_watch_starts)
    try:
        argv = [str(sample_images_dir), "--csv", str(out), "--model", str(tiny_model_path)]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"a watch began appending to {out} during this run, so it was left alone" in err
        assert "run again with another --csv to sort" in err
        assert read_rows(out) == []  # the watch's file, untouched
        kept = read_rows(tmp_path / "shift.partial.csv")
        assert len(kept) == len(collect_images([sample_images_dir]).images)
    finally:
        for watch in watches:
            watch.close()

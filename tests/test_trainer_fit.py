"""`ewaste-train` end to end on a tiny generated dataset (weights none, 32 px)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import keras
import numpy as np
import pytest

from child_signals import deliverable
from synthetic_dataset import make_dataset
from trainer import fit as fit_module
from trainer import weights as weights_module
from trainer.cli import main
from trainer.config import TrainConfig
from trainer.dataset import DatasetError, load_dataset
from trainer.run_folder import TrainingState

CLASSES = ("Battery", "Mouse", "Washing Machine")
TINY_RECIPE = [
    "--preset", "reference", "--weights", "none", "--image-size", "32",
    "--batch-size", "8", "--frozen-layers", "0", "--learning-rate", "0.001",
]  # fmt: skip
# The product's backbone (its whole-network preset, no weights file): the run machinery
# (resume, stop, warm start) does not depend on the backbone, and Lite0 trains a tiny run
# in about half the time of EfficientNetV2B0, which the first test keeps covering. Eager
# steps skip the 20 s graph trace of each run; the first test, the chain test and the
# notebook train through the graph, as the product does.
LITE0_TINY = ["--preset", "lite0", "--image-size", "32", "--batch-size", "8",
              "--learning-rate", "0.001", "--eager"]  # fmt: skip
# The head alone, whose dropout draws random numbers a checkpoint must carry: a resumed run
# compared with an unstopped one tells whether it does.
LITE0_HEAD_TINY = ["--preset", "lite0-head", *LITE0_TINY[2:]]


@pytest.fixture
def fit_modes(monkeypatch) -> list[bool]:
    """Whether each Keras fit of the test ran eagerly."""
    modes: list[bool] = []
    real_fit = keras.Model.fit

    def spy(model, *args, **kwargs):
        modes.append(model.run_eagerly)
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return modes


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    return make_dataset(root, classes=CLASSES, per_split={"train": 8, "val": 4, "test": 4}, size=40)


@pytest.mark.slow
def test_fit_writes_every_artefact(tiny_data, tmp_path, capsys, monkeypatch, fit_modes):
    run = tmp_path / "run"
    args = ["fit", "--data", str(tiny_data), "--out", str(run), "--epochs", "2",
            "--cache-dir", str(tmp_path / "cache"), *TINY_RECIPE]  # fmt: skip
    # As installed: the program is a script somewhere on this machine.
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "venv" / "bin" / "ewaste-train"), *args])
    code = main(args)
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out  # progress visible per epoch
    assert fit_modes == [False, False]  # through the traced graph, without --eager

    # The report reads the val split unless told otherwise: test is for the shipped model.
    for name in (
        "model.keras",
        "run.json",
        "history.json",
        "metrics.json",
        "report_val.md",
        "confusion_matrix_val.png",
        "training_curves.png",
        "audit/audit.json",
    ):
        assert (run / name).is_file(), name
    run_info = json.loads((run / "run.json").read_text())
    assert run_info["class_names"] == sorted(CLASSES)
    assert run_info["config"]["epochs"] == 2 and run_info["config"]["weights"] == "none"
    assert run_info["weights"]["kind"] == "none" and run_info["weights"]["file"] is None
    assert run_info["weights"]["backbone"] == "efficientnetv2-b0"
    assert {"tensorflow", "keras", "numpy", "pillow"} <= set(run_info["versions"])
    # The record names the program, not this machine's path to it.
    assert run_info["command"] == " ".join(["ewaste-train", *args])

    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_accuracy"]) == 2
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test" not in metrics
    val = metrics["val"]
    matrix = val["confusion_matrix"]
    assert sum(map(sum, matrix)) == val["n"] == 4 * len(CLASSES)
    assert val["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(3)) / val["n"])

    # A second fit into the same folder would replace this run: refused, nothing touched.
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    assert main(args) == 2
    assert "already holds a run; add --resume" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before

    # Not even when told to: --out naming the run folder is refused, nothing touched.
    argv = ["evaluate", str(run / "model.keras"), "--data", str(tiny_data), "--out", str(run)]
    assert main(argv) == 2
    assert "is a training run's folder, whose reports this would replace" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before

    # evaluate writes beside the model, never over the run's own report, and says where.
    argv = ["evaluate", str(run / "model.keras"), "--data", str(tiny_data), "--split", "test"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    report = run / "model-test-evaluation" / "report.md"
    assert f"report: {report}" in printed and "test accuracy" in printed
    assert "| model file | model.keras (SHA-256 " in report.read_text()
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p in before} == before


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch(tiny_data, tmp_path):
    run = tmp_path / "run"
    args = ["fit", "--data", str(tiny_data), "--out", str(run), "--epochs", "4",
            "--cache-dir", str(tmp_path / "cache"), *LITE0_HEAD_TINY]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "trainer", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    state_file = run / "state.json"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if state_file.is_file() and json.loads(state_file.read_text())["epochs_done"] >= 1:
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)  # a hard stop, as when a session ends
    finally:
        process.wait(timeout=30)
    before = json.loads(state_file.read_text())
    done_before = before["epochs_done"]
    assert 1 <= done_before < 4, "the run should have been killed part-way"
    assert not (run / "model.keras").exists()
    # A record whose write a kill cut short leaves its hidden temporary file behind.
    (run / ".state.json.0123456789ab.tmp").write_text('{"epochs_do')

    assert main([*args, "--resume"]) == 0
    after = json.loads(state_file.read_text())
    assert after["epochs_done"] == 4
    assert len(after["history"]["loss"]) == 4
    # The epochs finished before the kill are kept, not re-run.
    assert after["history"]["loss"][:done_before] == before["history"]["loss"]
    assert (run / "metrics.json").is_file()
    # Only the files state.json names are kept: one checkpoint, one best-weights file.
    assert [p.name for p in run.glob("checkpoint-epoch*.keras")] == [after["checkpoint"]]
    assert [p.name for p in run.glob("best-epoch*.weights.h5")] == [after["best_file"]]
    assert not list(run.glob("partial-*")) and not list(run.glob(".*.tmp"))

    # The resumed epochs train on the batches an uninterrupted run trains on, not on
    # epoch 1's shuffle order and augmentation again, and drop what it drops (its dropout's
    # random state, which Keras leaves out of a checkpoint): the same history.
    whole = tmp_path / "whole"
    assert main([*args[:3], "--out", str(whole), *args[5:]]) == 0
    uninterrupted = json.loads((whole / "state.json").read_text())["history"]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert after["history"][name] == uninterrupted[name], name


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])  # Ctrl+C; a closed session, `kill`
def test_ctrl_c_says_how_to_resume_without_a_traceback(tiny_data, tmp_path, stop):
    signum = getattr(signal, stop)
    run = tmp_path / "run"
    args = ["fit", "--data", str(tiny_data), "--out", str(run), "--epochs", "40",
            "--patience", "40", "--cache-dir", str(tmp_path / "cache"), *LITE0_TINY]  # fmt: skip
    with deliverable(signum):
        process = subprocess.Popen(
            [sys.executable, "-m", "trainer", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        deadline = time.monotonic() + 240
        state_file = run / "state.json"
        while time.monotonic() < deadline and process.poll() is None:
            if state_file.is_file():
                break
            time.sleep(0.2)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, err
    assert "ewaste-train: stopped; every finished epoch is saved: add --resume" in err
    assert "Traceback" not in err


def test_resume_with_other_flags_is_refused(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({"epochs_done": 1, "history": {}}))
    (run / "run.json").write_text(json.dumps({"config": {"epochs": 99}}))
    code = main(["fit", "--data", str(tiny_data), "--out", str(run), "--epochs", "2",
                 "--resume", *TINY_RECIPE])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "different configuration (" in err and "--epochs 99 then, 2 now" in err
    assert not (run / "audit").exists()  # refused before the slow audit


@pytest.mark.parametrize("change", ["folder", "classes"])
def test_resume_with_other_data_is_refused_before_the_audit(tiny_data, tmp_path, capsys, change):
    from trainer.cli import build_parser, resolve_config

    run = tmp_path / "run"
    run.mkdir()
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)  # the same images in another folder
    argv = ["fit", "--data", str(tiny_data), "--out", str(run), "--epochs", "2", *TINY_RECIPE]
    config = resolve_config(build_parser().parse_args(argv)).to_dict()
    recorded = {"config": config, "data_dir": "../data", "class_names": sorted(CLASSES)}
    if change == "classes":  # the same folder, whose class folders were renamed since
        argv[2] = str(data)
        recorded["class_names"] = ["Battery", "Mouse", "Washer"]
    (run / "run.json").write_text(json.dumps(recorded))
    (run / "state.json").write_text(json.dumps({"epochs_done": 1, "history": {}}))
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    if change == "folder":
        assert "was trained on ../data (relative to the run folder), not --data" in err
    else:
        assert "was trained on the classes Battery, Mouse, Washer" in err
    assert not (run / "audit").exists()  # refused before the slow audit


@pytest.mark.slow
def test_resume_with_a_lost_or_truncated_checkpoint(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["fit", "--data", str(tiny_data), "--out", str(run), "--epochs", "1",
            "--cache-dir", str(tmp_path / "cache"), *LITE0_TINY]  # fmt: skip
    assert main(args) == 0
    state = json.loads((run / "state.json").read_text())
    checkpoint = run / state["checkpoint"]
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # a disk filled up mid-copy

    # Every epoch is done: model.keras is the model; the checkpoint is not needed.
    assert main([*args, "--resume"]) == 0
    capsys.readouterr()

    # One epoch to go: the truncated checkpoint is named, in one line, with advice.
    record = json.loads((run / "run.json").read_text())
    record["config"]["epochs"] = 2
    (run / "run.json").write_text(json.dumps(record))
    more = [*args[:5], "--epochs", "2", *args[7:], "--resume"]
    assert main(more) == 2
    err = capsys.readouterr().err
    assert f"ewaste-train: error: {checkpoint} is truncated or damaged; it cannot be " in err
    assert "start it again with a new --out" in err and "Traceback" not in err

    checkpoint.unlink()
    assert main(more) == 2
    err = capsys.readouterr().err
    assert f"has lost its checkpoint {checkpoint.name}; it cannot be resumed" in err


def test_class_missing_from_a_split_is_a_clear_error(tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    shutil.rmtree(data / "val" / "Mouse")
    code = main(["fit", "--data", str(data), "--out", str(tmp_path / "run"), *TINY_RECIPE])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing from val: Mouse" in err
    assert "Traceback" not in err
    assert main(["audit", "--data", str(data), "--out", str(tmp_path / "audit")]) == 2
    # Missing from train (and only there): the message names train, not the other splits.
    shutil.copytree(tiny_data / "val" / "Mouse", data / "val" / "Mouse")
    shutil.rmtree(data / "train" / "Mouse")
    assert main(["audit", "--data", str(data), "--out", str(tmp_path / "audit")]) == 2
    assert "; missing from train: Mouse" in capsys.readouterr().err


def test_class_folders_in_other_unicode_forms_are_said_to_be_so(tmp_path):
    """ "Machine à laver" copied from a Mac (NFD) is not the same folder name, byte for byte,
    as the others' (NFC): the message says so, not only "missing" twice in the same name."""
    name = "Machine à laver"
    splits = {"train": 1, "val": 1, "test": 1}
    make_dataset(tmp_path, classes=(name, "Mouse"), per_split=splits, size=8)
    (tmp_path / "test" / name).rename(tmp_path / "test" / unicodedata.normalize("NFD", name))
    with pytest.raises(DatasetError) as raised:
        load_dataset(tmp_path)
    message = str(raised.value)
    assert f"splits; {name} is spelt in 2 Unicode forms, the same letters stored as " in message
    assert "(test: NFD; train, val: NFC): rename its folders so that every split" in message


def test_an_empty_val_split_or_an_unreadable_class_stops_before_training(
    tiny_data, tmp_path, capsys
):
    no_val = tmp_path / "no-val"
    shutil.copytree(tiny_data, no_val)
    for image in (no_val / "val").rglob("*.*"):
        image.unlink()
    assert main(["fit", "--data", str(no_val), "--out", str(tmp_path / "a"), *TINY_RECIPE]) == 2
    assert "the val split has no images" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()

    broken = tmp_path / "broken"
    shutil.copytree(tiny_data, broken)
    for image in (broken / "train" / "Mouse").iterdir():
        image.write_text("not an image")
    assert main(["fit", "--data", str(broken), "--out", str(tmp_path / "b"), *TINY_RECIPE]) == 2
    assert "no readable training image of Mouse" in capsys.readouterr().err
    assert not (tmp_path / "b" / "run.json").exists()  # the audit ran; training did not


def test_imagenet_offline_stops_before_any_work(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(weights_module, "KERAS_CACHE_DIR", tmp_path / "keras-cache")

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    run = tmp_path / "run"
    code = main(["fit", "--data", str(tiny_data), "--out", str(run), "--weights", "imagenet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--weights PATH" in err and "--weights none" in err
    assert not (run / "audit").exists()  # failed before the slow audit and training


def test_split_folders_in_any_letter_case(tmp_path):
    make_dataset(tmp_path, classes=CLASSES, per_split={"train": 1, "val": 1, "test": 1}, size=16)
    (tmp_path / "train").rename(tmp_path / "Train")
    (tmp_path / "val").rename(tmp_path / "VALIDATION")
    (tmp_path / "test").rename(tmp_path / "Test")
    dataset = load_dataset(tmp_path)
    assert dataset.class_names == tuple(sorted(CLASSES))
    assert {name: len(split.samples) for name, split in dataset.splits.items()} == {
        "train": 3, "val": 3, "test": 3,
    }  # fmt: skip


def test_hidden_clutter_is_not_a_class_or_an_image(tmp_path):
    make_dataset(tmp_path, classes=CLASSES, per_split={"train": 2, "val": 1, "test": 1}, size=16)
    (tmp_path / "val" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "train" / "__MACOSX" / "Mouse").mkdir(parents=True)
    first = next((tmp_path / "train" / "Mouse").iterdir())
    shutil.copy(first, first.with_name("._" + first.name))  # a macOS resource-fork file
    dataset = load_dataset(tmp_path)
    assert dataset.class_names == tuple(sorted(CLASSES))
    assert len(dataset.splits["train"].samples) == 2 * len(CLASSES)


@pytest.mark.slow
def test_init_from_warm_starts_a_new_run_and_records_where_it_came_from(
    tiny_data, tmp_path, monkeypatch, capsys, fit_modes
):
    first = tmp_path / "first"
    common = ["--data", str(tiny_data), "--epochs", "1", "--cache-dir", str(tmp_path / "cache"),
              *LITE0_TINY]  # fmt: skip
    assert main(["fit", "--out", str(first), *common]) == 0
    loaded = []
    real_load = fit_module.load_initial_weights

    def spy(model, path):
        real_load(model, path)
        loaded.append([w.copy() for w in model.get_weights()])

    monkeypatch.setattr(fit_module, "load_initial_weights", spy)
    second = tmp_path / "second"
    earlier = first / "model.keras"
    assert main(["fit", "--out", str(second), "--init-from", str(earlier), *common]) == 0

    assert "starting from the weights of" in capsys.readouterr().out
    assert fit_modes == [True, True]  # --eager, in both runs
    [start] = loaded  # the new run began from exactly the earlier model's weights
    expected = keras.saving.load_model(earlier).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(start, expected, strict=True))
    record = json.loads((second / "run.json").read_text())["init_from"]
    assert record["path"] == "first/model.keras"  # no absolute path of this machine
    assert record["sha256"] == weights_module.file_sha256(earlier)
    assert record["weights"]["kind"] == "none" and record["weights"]["sha256"] is None


@pytest.mark.parametrize("change", ["classes", "backbone"])
def test_init_from_a_run_of_other_classes_or_backbone_is_refused_before_the_audit(
    tiny_data, tmp_path, capsys, change
):
    """The same number of other classes (or the same in another order) loads without a
    complaint; the earlier run's run.json says what it learnt."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "model.keras").write_bytes(b"a model")  # refused before it is read
    recorded = {"class_names": sorted(CLASSES), "config": {"backbone": "efficientnet-lite0"}}
    if change == "classes":
        recorded["class_names"] = ["Mouse", "Battery", "Washing Machine"]
    else:
        recorded["config"]["backbone"] = "efficientnetv2-b0"
    (earlier / "run.json").write_text(json.dumps(recorded))
    run = tmp_path / "run"
    argv = ["fit", "--data", str(tiny_data), "--out", str(run), *LITE0_TINY,
            "--init-from", str(earlier / "model.keras")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    if change == "classes":
        assert "was trained on the classes Mouse, Battery, Washing Machine, but --data" in err
        assert "has Battery, Mouse, Washing Machine" in err
    else:
        assert "with the backbone efficientnetv2-b0, and this run builds efficientnet-lite0" in err
    assert not (run / "audit").exists()  # refused before the slow audit


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--init-from", "--init-from {bad} is not a .keras model file (not a zip archive"),
        ("--weights", "{bad} is not a weights file (neither HDF5 nor a .keras archive)"),
    ],
)
def test_an_unreadable_start_file_is_refused_before_the_audit(
    tiny_data, tmp_path, capsys, flag, message
):
    """A file that is there but is not a model (or weights) fails in one line before the
    slow audit and decode, and leaves no run.json that would refuse the corrected retry."""
    bad = tmp_path / "junk.keras"
    bad.write_text("junk")
    run = tmp_path / "run"
    recipe = [*LITE0_TINY, "--init-from"] if flag == "--init-from" else [*TINY_RECIPE, flag]
    assert main(["fit", "--data", str(tiny_data), "--out", str(run), *recipe, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ewaste-train: error: " + message.format(bad=bad))
    assert "File not found" not in err  # Keras's words for a file that is there
    assert not (run / "audit").exists() and not (run / "run.json").exists()


def test_a_run_folder_with_no_finished_epoch_does_not_block_a_new_run(tmp_path):
    """run.json is written before the first epoch: a run stopped before any epoch ended
    (or by an error at its start) leaves nothing a new run would replace."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    fit_module.refuse_earlier_run(run)  # nothing to keep: not refused
    for kept in ("state.json", "model.keras"):  # a run with an epoch done; a soup
        (run / kept).write_text("{}")
        with pytest.raises(fit_module.ConfigError, match="already holds a run"):
            fit_module.refuse_earlier_run(run)
        (run / kept).unlink()


@pytest.mark.slow
def test_lite0_presets_train_from_imagenet_in_two_runs(tiny_data, tmp_path, capsys):
    """The product's recipe end to end: head on the frozen ImageNet backbone, then the whole
    network from that head; run.json says which backbone and which weights file, by hash."""
    common = ["--data", str(tiny_data), "--cache-dir", str(tmp_path / "cache"),
              "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--eager"]  # fmt: skip
    head, full = tmp_path / "head", tmp_path / "full"
    assert main(["fit", "--preset", "lite0-head", "--out", str(head), *common]) == 0
    recorded = json.loads((head / "run.json").read_text())
    assert recorded["config"]["backbone"] == "efficientnet-lite0"
    assert recorded["weights"]["kind"] == "imagenet"
    assert recorded["weights"]["file"] == weights_module.LITE0_WEIGHTS_FILE
    assert recorded["weights"]["sha256"] == weights_module.LITE0_SHA256
    assert recorded["weights"]["license"].startswith("Apache-2.0")

    init = ["--init-from", str(head / "model.keras")]
    assert main(["fit", "--preset", "lite0", "--out", str(full), *init, *common]) == 0
    assert "starting from the weights of" in capsys.readouterr().out
    finished = keras.saving.load_model(full / "model.keras")
    started = keras.saving.load_model(head / "model.keras")

    # The second run trained the backbone's convolutions, and kept its BatchNorm statistics.
    def layer(model, name):
        return model.get_layer("backbone").get_layer(name).get_weights()

    assert not np.array_equal(layer(finished, "head_conv")[0], layer(started, "head_conv")[0])
    for a, b in zip(layer(finished, "head_bn"), layer(started, "head_bn"), strict=True):
        np.testing.assert_array_equal(a, b)
    record = json.loads((full / "run.json").read_text())["init_from"]
    assert record["weights"]["backbone"] == "efficientnet-lite0"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--resize", "crop"], "--resize 'crop': choose stretch, letterbox, item"),
        (["--backbone", "resnet"], "--backbone 'resnet': choose efficientnetv2-b0"),
        (["--optimizer", "sgd"], "--optimizer 'sgd': choose adam, adamw"),
        (["--monitor", "val_acc"], "--monitor 'val_acc': choose val_loss, val_accuracy"),
        (["--batch-size", "0"], "--batch-size 0: give a whole number of 1 or more"),
        # Numbers out of range, which Keras took as they were or refused with a traceback
        # after the run folder was made.
        (["--dropout", "1.5"], "--dropout 1.5: give a fraction from 0 up to (not including) 1"),
        (["--seed", "-1"], "--seed -1: give a whole number from 0 to 4294967295"),
        (["--learning-rate", "-1"], "--learning-rate -1.0: give a rate above 0, at most 1"),
        (["--label-smoothing", "5"], "--label-smoothing 5.0: give a fraction from 0 up to"),
        (["--mix-probability", "2"], "--mix-probability 2.0: give a fraction from 0 to 1"),
        (["--weight-decay", "-1"], "--weight-decay -1.0: give a number from 0 to 1"),
        (["--frozen-layers", "-1"], "--frozen-layers -1: give 0 or more layers"),
        (["--patience", "-3"], "--patience -3: give 0 or more epochs"),
        (["--cache-dir", "{file}"], "--cache-dir {file} is a file; give a folder to write into"),
    ],
)
def test_a_bad_choice_is_one_line_and_status_2(tiny_data, tmp_path, capsys, flags, message):
    """A user's mistake is a one-line error before any work starts, not a traceback."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    flags = [flag.format(file=a_file) for flag in flags]
    argv = ["fit", "--data", str(tiny_data), "--out", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ewaste-train: error: ") and message.format(file=a_file) in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("command", "option", "folder", "message"),
    [
        ("audit", "--out", "{file}/sub", "cannot be made: {file} is a file, not a folder"),
        ("fit", "--out", "{file}/sub", "cannot be made: {file} is a file, not a folder"),
        ("fit", "--cache-dir", "{file}/cache", "cannot be made: {file} is a file, not a folder"),
        ("evaluate", "--out", "{file}/a/b", "cannot be made: {file} is a file, not a folder"),
        pytest.param(
            "fit",
            "--cache-dir",
            "/proc/nope",
            "cannot be written: /proc refuses new files",
            marks=pytest.mark.skipif(not Path("/proc/self").exists(), reason="Linux's /proc"),
        ),
    ],
)
def test_a_folder_that_cannot_be_made_is_one_line_before_any_work(
    tiny_data, tmp_path, capsys, command, option, folder, message
):
    """Not a NotADirectoryError (or FileNotFoundError) traceback after the audit."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    folder = folder.format(file=a_file)
    argv = [command, "--data", str(tiny_data)]
    if command == "evaluate":
        argv.insert(1, str(tmp_path / "model.keras"))
    if option != "--out":
        argv += ["--out", str(tmp_path / "run")]
    assert main([*argv, option, folder]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ewaste-train: error: {option} {folder} ")
    assert message.format(file=a_file) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_filled_cache_on_a_read_only_share_is_read_not_refused(tmp_path, monkeypatch):
    # The decode cache is only written where an entry is missing: one filled before may
    # sit on a read-only share. A run's --out must take files, a new cache folder too.
    import errno

    import trainer.cli as cli

    def read_only(folder):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cli, "probe_writing", read_only)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert cli._out_folder(cache, "--cache-dir", filled_may_be_read_only=True) == cache
    for folder, option in ((cache / "new", "--cache-dir"), (cache, "--out")):
        with pytest.raises(cli.TrainerError, match="refuses new files"):
            cli._out_folder(folder, option, filled_may_be_read_only=option == "--cache-dir")


def test_a_bug_is_not_disguised_as_a_user_error(tiny_data, tmp_path, monkeypatch):
    """Only TrainerError is a user error: a ValueError from a bug keeps its traceback."""

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(fit_module, "fit", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["fit", "--data", str(tiny_data), "--out", str(tmp_path / "run")])


def test_each_epoch_keeps_the_best_and_stops_after_patience():
    config = TrainConfig(monitor="val_accuracy", patience=2)
    state = TrainingState()
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6, 0.65], start=1):
        state = fit_module.after_epoch(state, epoch, {"val_accuracy": accuracy}, config)
        assert state.stopped_early == (epoch == 4)
    assert (state.best, state.best_epoch, state.wait) == (0.7, 2, 2)
    assert state.best_file == "best-epoch002.weights.h5"
    assert state.checkpoint == "checkpoint-epoch004.keras"
    assert state.history.series == {"val_accuracy": (0.5, 0.7, 0.6, 0.65)}
    # A loss improves downwards.
    by_loss = TrainConfig(monitor="val_loss", patience=2)
    state = fit_module.after_epoch(TrainingState(), 1, {"val_loss": 0.9}, by_loss)
    assert fit_module.after_epoch(state, 2, {"val_loss": 0.4}, by_loss).best_epoch == 2


@pytest.mark.slow
def test_ctrl_c_while_an_epochs_batches_are_built_is_the_clean_stop(
    tiny_data, tmp_path, capsys, monkeypatch
):
    # Building the pipeline runs Python inside TensorFlow's C++: a stop raised there came
    # out as a pybind11 RuntimeError traceback, not as the stop the run says how to resume.
    import tensorflow as tf

    from trainer import data

    real_pipeline = data.training_pipeline

    def pipeline_hit_by_ctrl_c(*args, **kwargs):
        dataset = real_pipeline(*args, **kwargs)
        interrupt = tf.py_function(lambda: os.kill(os.getpid(), signal.SIGINT) or 0, [], tf.int32)
        return dataset.map(lambda *batch: (interrupt, *batch)[1:])

    monkeypatch.setattr(data, "training_pipeline", pipeline_hit_by_ctrl_c)
    args = ["fit", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--epochs", "2",
            "--cache-dir", str(tmp_path / "cache"), *LITE0_HEAD_TINY]  # fmt: skip
    with deliverable(signal.SIGINT):
        assert main(args) == 130
    assert "ewaste-train: stopped; every finished epoch is saved" in capsys.readouterr().err

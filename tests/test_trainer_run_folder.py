"""The run folder's files: written, read back typed, old files still readable, bad ones named."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from trainer.config import TrainConfig
from trainer.run_folder import (
    AUDIT_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    RUN_FILE,
    STATE_FILE,
    Audit,
    DuplicateGroup,
    GroupMember,
    History,
    Metrics,
    RunFolderError,
    RunRecord,
    TrainingState,
    UnreadableFile,
    read_audit,
    read_history,
    read_metrics,
    read_run,
    read_state,
    write_audit,
    write_history,
    write_metrics,
    write_run,
    write_state,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "docs" / "results" / "lite0"
CLASSES = ("Battery", "Mouse", "Washing Machine")

RUN = RunRecord(
    class_names=CLASSES,
    image_size=(160, 128),
    data_dir="datasets/ewaste",
    config=TrainConfig(resize="letterbox").to_dict(),
    weights={"kind": "none", "backbone": "efficientnet-lite0", "file": None},
    init_from={"path": "head/model.keras", "sha256": "ab", "weights": None, "init_from": None},
    versions={"python": "3.11"},
    started="2026-01-01T00:00:00+00:00",
    command="ewaste-train fit",
)
HISTORY = History({"loss": (0.9, 0.5), "val_accuracy": (0.5, 0.75)})
METRICS = Metrics(
    {"val": {"n": 4, "accuracy": 0.75, "loss": 0.5}, "test": {"n": 4, "accuracy": 1}},
    training={"epochs": 2},
)
MEMBERS = (
    GroupMember("train/Mouse/a.jpg", "train", "Mouse", "aa"),
    GroupMember("test/Mouse/b.jpg", "test", "Mouse", "aa"),
)
AUDIT = Audit(
    dataset_root="datasets/ewaste",
    class_names=CLASSES,
    usable_images={
        "train": ("train/Mouse/a.jpg",),
        "val": ("val/Mouse/c.jpg",),
        "test": ("test/Mouse/b.jpg", "test/Mouse/d.jpg"),
    },
    unreadable=(UnreadableFile("test/Battery/x.jpg", "test", "Battery", "truncated"),),
    leaks={"test": ("test/Mouse/b.jpg",), "val": ()},
    hashing={"near": "pHash", "near_threshold": 44},
    exact_duplicates=(DuplicateGroup("exact-1", MEMBERS, sha256="aa"),),
    non_image_files=("train/Mouse/notes.txt",),
    pictures={"class_distribution": "class_distribution.png"},
)


def test_every_record_round_trips_through_its_file(tmp_path: Path) -> None:
    write_run(tmp_path, RUN)
    write_history(tmp_path, HISTORY)
    write_metrics(tmp_path, METRICS)
    state = TrainingState(epochs_done=2, history=HISTORY, best=0.75, best_epoch=2,
                          best_file="best-epoch002.weights.h5", checkpoint="c.keras",
                          random_states=((42, 3), (7, 0)))  # fmt: skip
    write_state(tmp_path, state)
    write_audit(tmp_path, AUDIT)

    assert read_run(tmp_path) == RUN
    assert read_history(tmp_path) == HISTORY
    assert read_metrics(tmp_path) == METRICS
    assert read_state(tmp_path) == state
    assert read_audit(tmp_path) == AUDIT
    # Plain JSON on disk, with the keys other tools and people read.
    on_disk = json.loads((tmp_path / RUN_FILE).read_text())
    assert on_disk["image_size"] == [160, 128] and on_disk["class_names"] == list(CLASSES)
    assert json.loads((tmp_path / HISTORY_FILE).read_text()) == {
        "loss": [0.9, 0.5],
        "val_accuracy": [0.5, 0.75],
    }
    assert set(json.loads((tmp_path / METRICS_FILE).read_text())) == {"val", "test", "training"}
    audit = json.loads((tmp_path / AUDIT_FILE).read_text())
    assert audit["leaks"]["test_images_with_train_val_duplicate"] == ["test/Mouse/b.jpg"]
    assert audit["exact_duplicates"][0]["cross_split"] is True
    assert audit["unreadable"]["count"] == 1
    assert not list(tmp_path.glob(".*"))  # written through a temporary name, none left


def test_records_answer_what_their_readers_ask() -> None:
    assert RUN.resize == "letterbox"
    assert RunRecord(config={"epochs": 3}).resize == "stretch"  # before the setting existed
    assert METRICS.accuracy("val") == 0.75 and METRICS.loss("test") is None
    assert METRICS.accuracy("train") is None
    assert METRICS.with_split("val", {"accuracy": 0.5}).accuracy("val") == 0.5
    assert METRICS.with_split("val", {}).accuracy("test") == 1.0  # the other splits are kept
    assert HISTORY.epochs == 2
    assert HISTORY.appended({"loss": 0.25}).series["loss"] == (0.9, 0.5, 0.25)
    assert AUDIT.paths_without_duplicates("test") == {"test/Mouse/d.jpg"}
    assert AUDIT.known_paths("test") == {
        "test/Mouse/b.jpg",
        "test/Mouse/d.jpg",
        "test/Battery/x.jpg",
    }
    with pytest.raises(ValueError, match="val or test"):
        AUDIT.paths_without_duplicates("train")


def test_a_missing_file_reads_as_none(tmp_path: Path) -> None:
    for read in (read_run, read_history, read_metrics, read_state, read_audit):
        assert read(tmp_path) is None


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        (RUN_FILE, "{not json", ["cannot read", RUN_FILE]),
        (RUN_FILE, "[1, 2]", ["is not a JSON object"]),
        (RUN_FILE, '{"class_names": "Battery"}', ["class_names must be a list of strings"]),
        (RUN_FILE, '{"image_size": [160]}', ["image_size must be [height, width]"]),
        (RUN_FILE, '{"config": "lite0"}', ["config must be a JSON object"]),
        (HISTORY_FILE, '{"loss": [0.5, "x"]}', ["loss must be a list of numbers"]),
        (METRICS_FILE, '{"test": 0.9}', ["test must be a JSON object"]),
        (STATE_FILE, '{"epochs_done": true}', ["epochs_done must be a whole number"]),
        (AUDIT_FILE, '{"counts": {}}', ["audit_version is missing"]),
        (AUDIT_FILE, '{"audit_version": 2}', ["audit_version 2 is not 1"]),
    ],
)
def test_a_malformed_file_is_a_clear_error(tmp_path: Path, name, content, fragments) -> None:
    (tmp_path / name).write_text(content)
    read = {
        RUN_FILE: read_run,
        HISTORY_FILE: read_history,
        METRICS_FILE: read_metrics,
        STATE_FILE: read_state,
        AUDIT_FILE: read_audit,
    }[name]
    with pytest.raises(RunFolderError) as raised:
        read(tmp_path)
    assert str(tmp_path / name) in str(raised.value)
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_a_run_json_of_an_older_trainer_still_reads(tmp_path: Path) -> None:
    """Before the Lite0 backbone: no init_from, started or command; weights named a path."""
    weights = {"kind": "none", "path": None, "sha256": None}
    old = {"class_names": list(CLASSES), "image_size": [128, 128], "data_dir": "/d",
           "config": {"epochs": 3}, "weights": weights}  # fmt: skip
    (tmp_path / RUN_FILE).write_text(json.dumps(old))
    run = read_run(tmp_path)
    assert run.class_names == CLASSES and run.image_size == (128, 128)
    assert run.weights == old["weights"] and run.init_from is None and run.command is None


def test_the_shipped_models_run_folder_reads_back_exactly() -> None:
    finetune = SHIPPED / "finetune"
    run = read_run(finetune)
    assert run.class_names[0] == "Battery" and len(run.class_names) == 10
    assert run.image_size == (160, 160) and run.resize == "stretch"
    assert run.config["backbone"] == "efficientnet-lite0"
    assert run.init_from["weights"]["kind"] == "imagenet"  # the head run it began from
    metrics = read_metrics(finetune)
    assert metrics.accuracy("val") == pytest.approx(292 / 300)
    assert run.config["augment"] == "station"
    assert metrics.training["epochs"] == 20
    assert read_history(finetune).epochs == 20
    state = read_state(finetune)
    assert state.epochs_done == 20 and state.best_epoch == 11
    assert state.history == read_history(finetune)

    audit = read_audit(SHIPPED / "audit")
    assert audit.near_threshold == 44 and audit.class_names == run.class_names
    # The audit gives the de-duplicated subsets the reports were scored on.
    test = read_metrics(SHIPPED / "test")
    for split, result in (("val", metrics.splits["val"]), ("test", test.splits["test"])):
        assert len(audit.paths_without_duplicates(split)) == result["dedup"]["n"]
    # Written again, every file is what the trainer wrote: the format is unchanged.
    for folder, read in ((finetune, read_run), (finetune, read_metrics),
                         (finetune, read_history), (SHIPPED / "audit", read_audit)):  # fmt: skip
        record = read(folder)
        name = {read_run: RUN_FILE, read_metrics: METRICS_FILE, read_history: HISTORY_FILE,
                read_audit: AUDIT_FILE}[read]  # fmt: skip
        assert record.to_json() == json.loads((folder / name).read_text()), name


def test_a_state_is_replaced_not_changed() -> None:
    state = TrainingState()
    later = replace(state, epochs_done=1, history=state.history.appended({"loss": 1.0}))
    assert state.epochs_done == 0 and state.history.epochs == 0
    assert later.history.series == {"loss": (1.0,)}


def test_run_json_records_the_dataset_relative_to_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.json travels with the model: no path of this machine, yet the converter finds
    the dataset from any working directory; older absolute records still resolve."""
    from synthetic_dataset import make_dataset
    from trainer.dataset import load_dataset
    from trainer.fit import new_run_record
    from trainer.weights import resolve_weights

    data = make_dataset(
        tmp_path / "data", classes=CLASSES, per_split={"train": 1, "val": 1, "test": 1}
    )
    run_dir = tmp_path / "runs" / "one"
    run_dir.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(weights="none")
    dataset = load_dataset(Path("data"))  # as typed, relative to the working directory
    record = new_run_record(dataset, config, resolve_weights("none", config.backbone), run_dir)
    write_run(run_dir, record)
    assert json.loads((run_dir / RUN_FILE).read_text())["data_dir"] == "../../data"
    assert str(tmp_path) not in (run_dir / RUN_FILE).read_text()

    monkeypatch.chdir(run_dir)  # another working directory: still the same folder
    assert read_run(run_dir).data_folder(run_dir) == data.resolve()
    older = replace(record, data_dir=str(data.resolve()))
    assert older.data_folder(run_dir) == data.resolve()
    # A report shows the older record's folder relative to the run folder too.
    assert older.moved(run_dir, to=run_dir).data_dir == "../../data"
    assert older.moved(run_dir, to=tmp_path / "soup").data_dir == "../data"


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch) -> None:
    """write_text_atomic fsyncs the temporary file, then renames it; plots are written
    through a temporary file too, so a stop mid-save never leaves a torn picture."""
    import os

    from trainer import files, plots

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        os, "replace", lambda a, b: calls.append(("replace", Path(a).name)) or real_replace(a, b)
    )
    files.write_text_atomic(tmp_path / "state.json", "{}\n")
    assert calls == ["fsync", ("replace", calls[1][1])] and calls[1][1].startswith(".state.json")
    assert (tmp_path / "state.json").read_text() == "{}\n"

    calls.clear()
    picture = plots.training_curves({"loss": [1.0, 0.5]}, tmp_path / "curves.png")
    assert calls[-2:] == ["fsync", ("replace", calls[-1][1])]
    assert calls[-1][1].startswith(".curves.png")
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "state.json"]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"epochs_done": 1' + "1" * 5_000 + "}",
        '{"epochs_done": 1, "history": {}, "best": 1' + "0" * 400 + "}",
    ],
    ids=["deep", "longer-than-int-reads", "larger-than-a-float"],
)
def test_a_hostile_record_is_a_clear_error_not_a_traceback(tmp_path, text) -> None:
    (tmp_path / "state.json").write_text(text)
    with pytest.raises(RunFolderError, match=r"cannot read .*state.json|state.json: a number too"):
        read_state(tmp_path)

"""The dataset audit: counts, unreadable files and duplicates on a generated dataset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from synthetic_dataset import make_dataset
from trainer.audit import DEFAULT_HASH_DISTANCE, AuditError, run_audit
from trainer.audit.hashing import phash
from trainer.dataset import DatasetError, load_dataset
from trainer.run_folder import AUDIT_FILE, Audit, RunFolderError, read_audit

PER_SPLIT = {"train": 5, "val": 2, "test": 3}
CLASSES = ("alpha", "beta", "gamma")


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", CLASSES, PER_SPLIT, 48)


def _near_copy(source: Path, target: Path) -> None:
    """Same picture, different file: brighter and re-encoded at a lower JPEG quality."""
    with Image.open(source) as image:
        ImageEnhance.Brightness(image.convert("RGB")).enhance(1.08).save(target, quality=60)


@pytest.fixture
def planted(clean: Path) -> Path:
    """The clean dataset plus one of each problem the audit must find."""
    shutil.copy(clean / "train/alpha/alpha_0.jpg", clean / "train/alpha/alpha_copy.jpg")
    shutil.copy(clean / "train/beta/beta_1.jpg", clean / "test/beta/beta_leak.jpg")
    shutil.copy(clean / "train/gamma/gamma_2.jpg", clean / "train/alpha/mislabelled.jpg")
    _near_copy(clean / "test/gamma/gamma_0.jpg", clean / "train/gamma/gamma_near.jpg")
    data = (clean / "val/alpha/alpha_0.jpg").read_bytes()
    (clean / "val/alpha/truncated.jpg").write_bytes(data[: len(data) // 2])
    (clean / "val/beta/empty.png").write_bytes(b"")
    (clean / "test/gamma/garbage.jpg").write_bytes(b"this is not a JPEG at all")
    (clean / "train/alpha/notes.txt").write_text("labelling notes")
    return clean


def _groups_with(audit: dict, kind: str, path: str) -> list[dict]:
    return [g for g in audit[kind] if path in {m["path"] for m in g["members"]}]


def test_clean_dataset_counts_and_no_false_duplicates(clean: Path, tmp_path: Path) -> None:
    audit = run_audit(clean, tmp_path / "audit").to_json()

    assert audit["counts"] == {split: dict.fromkeys(CLASSES, n) for split, n in PER_SPLIT.items()}
    assert audit["totals"] == {split: 3 * n for split, n in PER_SPLIT.items()}
    assert audit["images"]["formats"] == {"JPEG": 30}
    assert audit["images"]["modes"] == {"RGB": 30}
    assert audit["images"]["most_common_sizes"] == {"48x48": 30}
    assert audit["unreadable"]["count"] == 0
    assert audit["non_image_files"]["count"] == 0
    assert audit["exact_duplicates"] == [] and audit["near_duplicates"] == []
    assert audit["summary"]["any"]["groups"] == 0
    clean_test = Audit.from_json(audit).paths_without_duplicates("test")
    assert clean_test == set(audit["usable_images"]["test"])
    assert len(clean_test) == 9


def test_audit_states_its_hash_and_threshold(clean: Path, tmp_path: Path) -> None:
    audit = run_audit(clean, tmp_path / "audit", hash_distance=12).to_json()
    hashing = audit["hashing"]
    assert "SHA-256" in hashing["exact"]
    assert "pHash" in hashing["near"]
    assert hashing["near_threshold"] == 12
    assert hashing["near_threshold_of_bits"] == 256
    default = run_audit(clean, tmp_path / "a2", pictures=False).near_threshold
    assert default == DEFAULT_HASH_DISTANCE


def test_planted_problems_are_found(planted: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    audit = run_audit(planted, out).to_json()

    # Exact duplicate within a split.
    [group] = _groups_with(audit, "exact_duplicates", "train/alpha/alpha_copy.jpg")
    assert {m["path"] for m in group["members"]} == {
        "train/alpha/alpha_0.jpg",
        "train/alpha/alpha_copy.jpg",
    }
    assert not group["cross_split"] and not group["conflicting_labels"]

    # Exact duplicate across splits, leaking a training image into test.
    [group] = _groups_with(audit, "exact_duplicates", "test/beta/beta_leak.jpg")
    assert group["cross_split"] and group["splits"] == ["train", "test"]

    # The same file filed under two classes.
    [group] = _groups_with(audit, "exact_duplicates", "train/alpha/mislabelled.jpg")
    assert group["conflicting_labels"] and group["labels"] == ["alpha", "gamma"]
    assert {m["label"] for m in group["members"]} == {"alpha", "gamma"}

    # A re-encoded, brightened copy is a near duplicate (not exact), across splits.
    [group] = _groups_with(audit, "near_duplicates", "train/gamma/gamma_near.jpg")
    assert {m["path"] for m in group["members"]} == {
        "test/gamma/gamma_0.jpg",
        "train/gamma/gamma_near.jpg",
    }
    assert group["cross_split"] and group["max_distance"] <= DEFAULT_HASH_DISTANCE
    assert not _groups_with(audit, "exact_duplicates", "train/gamma/gamma_near.jpg")

    summary = audit["summary"]
    assert summary["exact"]["groups"] == 3
    assert summary["exact"]["cross_split_groups"] == 1
    assert summary["exact"]["conflicting_label_groups"] == 1
    assert summary["near"]["groups"] == 1
    assert summary["any"]["groups"] == 4
    assert summary["test_images_with_train_val_duplicate"] == 2

    # Unreadable files are listed with a reason and left out of everything else.
    reasons = {u["path"]: u["reason"] for u in audit["unreadable"]["files"]}
    assert set(reasons) == {
        "val/alpha/truncated.jpg",
        "val/beta/empty.png",
        "test/gamma/garbage.jpg",
    }
    assert "truncated" in reasons["val/alpha/truncated.jpg"]
    assert "empty" in reasons["val/beta/empty.png"]
    assert {u.path for u in Audit.from_json(audit).unreadable} == set(reasons)
    usable = {p for paths in audit["usable_images"].values() for p in paths}
    assert not usable & set(reasons)
    assert audit["counts"]["val"] == {"alpha": 2, "beta": 2, "gamma": 2}
    assert audit["counts"]["train"] == {"alpha": 7, "beta": 5, "gamma": 6}

    assert audit["non_image_files"] == {"count": 1, "paths": ["train/alpha/notes.txt"]}

    # Evaluation keeps only test images without a train/val duplicate.
    clean_test = Audit.from_json(audit).paths_without_duplicates("test")
    assert "test/beta/beta_leak.jpg" not in clean_test
    assert "test/gamma/gamma_0.jpg" not in clean_test
    assert "test/gamma/garbage.jpg" not in clean_test
    assert len(clean_test) == len(audit["usable_images"]["test"]) - 2 == 8

    # Everything lands on disk, the JSON exactly as returned, and reads back typed.
    assert json.loads((out / AUDIT_FILE).read_text()) == audit
    assert read_audit(out) == Audit.from_json(audit)
    assert read_audit(out).paths_without_duplicates("val") == Audit.from_json(
        audit
    ).paths_without_duplicates("val")
    for name in audit["pictures"].values():
        assert (out / name).stat().st_size > 0
    assert set(audit["pictures"]) >= {"class_distribution", "samples_per_class", "duplicate_pairs"}

    # What the person who ran it reads on the console, from the same record.
    counts = {split: len(paths) for split, paths in audit["usable_images"].items()}
    assert read_audit(out).findings() == (
        f"{sum(counts.values())} readable images (train {counts['train']} · val {counts['val']} "
        f"· test {counts['test']}); 3 groups of exact and 1 of near duplicates; 2 test "
        "images have a copy in an earlier split (the de-duplicated accuracy leaves them out); "
        "1 non-image file ignored"
    )


def test_threshold_zero_keeps_exact_but_drops_near(planted: Path, tmp_path: Path) -> None:
    audit = run_audit(planted, tmp_path / "audit", hash_distance=0, pictures=False).to_json()
    assert audit["summary"]["exact"]["groups"] == 3
    assert audit["near_duplicates"] == []
    assert audit["pictures"] == {}


def test_bad_arguments_raise(clean: Path, tmp_path: Path) -> None:
    with pytest.raises(AuditError):
        run_audit(clean, tmp_path / "audit", hash_distance=300)
    with pytest.raises(DatasetError):
        run_audit(tmp_path / "nowhere", tmp_path / "audit")
    with pytest.raises(RunFolderError, match="audit_version is missing"):
        Audit.from_json({"not": "an audit"})
    audit = run_audit(clean, tmp_path / "audit", pictures=False)
    with pytest.raises(ValueError, match="only removed from val or test"):
        audit.paths_without_duplicates("train")


def test_phash_is_stable_under_small_changes_only() -> None:
    rng = np.random.default_rng(3)

    def texture() -> np.ndarray:
        cells = rng.integers(30, 220, (16, 16, 3), dtype=np.uint8)  # no clipping when brightened
        return np.asarray(Image.fromarray(cells).resize((64, 64), Image.Resampling.BILINEAR))

    pixels = texture()
    h = phash(pixels)
    assert h.shape == (256,) and h.dtype == bool
    assert (h != phash(pixels + np.uint8(12))).sum() <= 16
    assert (h != phash(texture())).sum() > 64
    with pytest.raises(ValueError):
        phash(np.zeros((32, 32, 3), dtype=np.uint8))


def run_trainer_cli(*args: str | Path) -> tuple[int, str]:
    """`ewaste-train` in-process; (exit status, stderr)."""
    from contextlib import redirect_stderr
    from io import StringIO

    from trainer.cli import main

    err = StringIO()
    with redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def test_images_in_sub_folders_of_a_class_are_listed_not_taken(clean: Path, tmp_path: Path) -> None:
    backup = clean / "train/alpha/old/beta_backup"
    backup.mkdir(parents=True)
    shutil.copy(clean / "train/beta/beta_0.jpg", backup / "b.jpg")  # a beta, under alpha/

    dataset = load_dataset(clean)
    assert backup / "b.jpg" not in dataset.paths("train")
    assert dataset.splits["train"].nested_images == [backup / "b.jpg"]

    code, err = run_trainer_cli("audit", "--data", clean, "--out", tmp_path / "audit")
    assert code == 0
    assert "1 image(s) in sub-folders of class folders were left out" in err
    written = json.loads((tmp_path / "audit" / AUDIT_FILE).read_text())
    assert written["nested_images"] == {"count": 1, "paths": ["train/alpha/old/beta_backup/b.jpg"]}
    # An absolute --data is written relative to the report: no path of this machine in it.
    assert written["dataset_root"] == os.path.relpath(clean, tmp_path / "audit")
    assert (tmp_path / "audit" / written["dataset_root"]).resolve() == clean.resolve()


def test_a_class_without_training_images_warns_in_audit_and_stops_fit(
    clean: Path, tmp_path: Path
) -> None:
    for image in (clean / "train/gamma").iterdir():
        image.unlink()

    code, err = run_trainer_cli("audit", "--data", clean, "--out", tmp_path / "audit")
    assert code == 0 and "warning: train: no readable image of gamma" in err

    run = tmp_path / "run"
    code, err = run_trainer_cli("fit", "--data", clean, "--out", run, "--weights", "none")
    assert code == 2 and "no training images for gamma" in err
    assert not (run / "audit").exists()  # refused before any slow work


def test_unreadable_images_are_counted_on_the_console(planted: Path, tmp_path: Path) -> None:
    code, err = run_trainer_cli("audit", "--data", planted, "--out", tmp_path / "audit")
    assert code == 0 and "3 unreadable image(s) excluded" in err


def test_an_out_path_that_is_a_file_is_a_user_error(clean: Path, tmp_path: Path) -> None:
    taken = tmp_path / "results.txt"
    taken.write_text("not a folder")
    code, err = run_trainer_cli("audit", "--data", clean, "--out", taken)
    assert code == 2 and f"--out {taken} is a file" in err
    assert "Traceback" not in err and taken.read_text() == "not a folder"


def test_a_broken_link_in_the_dataset_is_listed_as_unreadable(clean: Path, tmp_path: Path) -> None:
    (clean / "train/alpha/gone.jpg").symlink_to(tmp_path / "moved-elsewhere.jpg")
    audit = run_audit(clean, tmp_path / "audit", pictures=False).to_json()
    reasons = {u["path"]: u["reason"] for u in audit["unreadable"]["files"]}
    assert list(reasons) == ["train/alpha/gone.jpg"]
    assert "train/alpha/gone.jpg" not in audit["usable_images"]["train"]


def test_a_single_class_warns_in_audit_and_stops_fit(tmp_path: Path) -> None:
    """One class trained, then failed at export: nothing to tell apart, said up front."""
    data = make_dataset(tmp_path / "data", classes=("alpha",), per_split={"train": 2, "val": 1,
                        "test": 1}, size=16)  # fmt: skip
    code, err = run_trainer_cli("audit", "--data", data, "--out", tmp_path / "audit")
    assert code == 0 and "warning: only one class (alpha): a classifier needs at least" in err

    run = tmp_path / "run"
    tiny = ["--preset", "lite0-head", "--weights", "none", "--image-size", "16", "--epochs", "1",
            "--batch-size", "2", "--eager", "--cache-dir", tmp_path / "cache"]  # fmt: skip
    code, err = run_trainer_cli("fit", "--data", data, "--out", run, *tiny)
    assert code == 2 and "has only one class, alpha: a classifier needs at least two" in err
    assert not run.exists()  # refused before any slow work

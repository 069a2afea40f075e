"""The model and samples that ship inside the package, used the way a user first meets them."""

from __future__ import annotations

import csv
import subprocess
import sys
from importlib import resources
from pathlib import Path

from desktop.core.assets import default_model_path
from desktop.core.engine import Engine

DATASET_CLASSES = (
    "Battery", "Keyboard", "Microwave", "Mobile", "Mouse", "PCB", "Player", "Printer",
    "Television", "Washing Machine",
)  # fmt: skip
CLASSIFY = Path(sys.executable).parent / "ewaste-classify"


def _samples_dir() -> Path:
    return Path(str(resources.files("desktop.assets") / "samples"))


def test_shipped_model_is_self_describing_and_small():
    path = default_model_path()
    assert path.is_file(), f"no model shipped at {path}"
    assert path.stat().st_size < 30 * 1024 * 1024
    engine = Engine()
    assert engine.model_path == path
    assert engine.class_names == DATASET_CLASSES
    meta = engine.info.metadata
    # Trained without ImageNet weights here: the file itself must say so.
    assert meta["weights"]["kind"] == "none"
    assert "trained from scratch" in meta["summary"]
    assert 0 < meta["metrics"]["test_accuracy"] <= 1
    assert len(meta["source_sha256"]) == 64
    assert engine.info.cam_output is not None


def test_classify_runs_from_any_folder_on_the_installed_samples(tmp_path):
    out = tmp_path / "results.csv"
    result = subprocess.run(
        [str(CLASSIFY), str(_samples_dir()), "--csv", str(out)],
        cwd=tmp_path,  # not the source tree: the installed package must find its model
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(DATASET_CLASSES)
    assert "0 non-image files skipped" in result.stdout  # the folder holds only the samples
    assert all(row["status"] in ("ok", "review") for row in rows)
    # Each sample is named after its class; the shipped model should get most of them.
    correct = sum(
        Path(row["path"]).stem.replace("-", " ") == row["predicted_class"].lower() for row in rows
    )
    assert correct >= 8, rows

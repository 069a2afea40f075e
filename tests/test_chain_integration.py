"""The real chain, as a user runs it: ewaste-train fit -> ewaste-convert export ->
ewaste-classify, on a tiny generated dataset. The CSV must equal Keras on the same files."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from desktop.core.preprocessing import load_model_input
from synthetic_dataset import make_dataset

CLASSES = ("Battery", "PCB", "Washing Machine")
SIZE = 32


def run_command(name: str, *args: object) -> subprocess.CompletedProcess:
    """Run an installed console script (the venv's bin folder sits beside the interpreter)."""
    script = Path(sys.executable).parent / name
    result = subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_fit_export_classify_agree_with_keras(tmp_path):
    data = make_dataset(
        tmp_path / "data", classes=CLASSES, per_split={"train": 6, "val": 3, "test": 4}, size=40
    )
    run = tmp_path / "run"
    run_command(
        "ewaste-train", "fit", "--data", data, "--out", run, "--preset", "lite0",
        "--image-size", SIZE, "--epochs", "1", "--batch-size", "6",
        "--cache-dir", tmp_path / "cache", "--eager",  # the notebook's test traces the graph
    )  # fmt: skip
    model_path = tmp_path / "model.onnx"
    run_command("ewaste-convert", "export", run / "model.keras", "--out", model_path)
    csv_path = tmp_path / "results.csv"
    classified = run_command(
        "ewaste-classify", data / "test", "--csv", csv_path, "--model", model_path
    )
    assert str(csv_path) in classified.stdout + classified.stderr

    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    test_files = sorted((data / "test").rglob("*.jpg"))
    assert len(rows) == len(test_files) and all(row["status"] != "error" for row in rows)

    model = keras.saving.load_model(run / "model.keras")
    class_names = sorted(CLASSES)
    for row in rows:
        pixels = load_model_input(row["path"], (SIZE, SIZE))[None]
        expected = np.asarray(model.predict_on_batch(pixels))[0]
        assert row["predicted_class"] == class_names[int(expected.argmax())], row["path"]
        got = np.array([float(row[f"prob_{name}"]) for name in class_names])
        np.testing.assert_allclose(got, expected, atol=1e-4)

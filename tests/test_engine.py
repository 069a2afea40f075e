"""The inference engine with a real ONNX Runtime session on the tiny model and real files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import desktop.core.engine as engine_module
import desktop.core.prediction_loop as prediction_loop
from decode_counter import count_decodes, wait_for_decode_threads_to_end, wait_for_decodes
from desktop.core.assets import default_model_path
from desktop.core.engine import Engine, Prediction
from desktop.core.model_info import ModelError
from desktop.core.preprocessing import load_model_input
from desktop.core.results import DEFAULT_REVIEW_THRESHOLD, count_statuses, status_of
from fixtures_images import AMBIGUOUS_SAMPLE, SAMPLE_EXPECTED_CLASS, write_solid
from tiny_model import (
    CAM_GRID,
    CLASS_NAMES,
    PROTOTYPE_COLOURS,
    build_tiny_model,
    expected_cam,
    expected_probabilities,
    tiny_metadata,
)


@pytest.fixture(scope="module")
def engine(tiny_model_path: Path) -> Engine:
    return Engine(tiny_model_path, threads=1)


def solid_batch(colours: list[tuple[int, int, int]]) -> np.ndarray:
    batch = np.empty((len(colours), 32, 32, 3), dtype=np.float32)
    for i, colour in enumerate(colours):
        batch[i] = colour
    return batch


def test_engine_reads_the_model_metadata(engine: Engine, tiny_model_path: Path) -> None:
    assert engine.class_names == CLASS_NAMES
    assert engine.info.input_size == (32, 32)
    assert engine.model_path == tiny_model_path
    assert engine.provider == "CPUExecutionProvider"
    assert engine.static_batch is None


def test_predict_batch_computes_the_model(engine: Engine) -> None:
    colours = [*PROTOTYPE_COLOURS.values(), (255, 64, 0), (10, 200, 90)]
    batch = solid_batch(colours)
    probabilities = engine.predict_batch(batch)
    assert probabilities.shape == (len(colours), 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(
        probabilities, expected_probabilities(np.array(colours)), rtol=1e-4, atol=1e-6
    )
    # Each prototype colour is its own class, confidently.
    top = probabilities[:10].argmax(axis=1)
    assert [CLASS_NAMES[i] for i in top] == list(PROTOTYPE_COLOURS)
    assert probabilities[:10].max(axis=1).min() > 0.9


def test_predict_batch_rejects_the_wrong_shape(engine: Engine) -> None:
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 3\)"):
        engine.predict_batch(np.zeros((2, 64, 64, 3), dtype=np.float32))
    assert engine.predict_batch(np.zeros((0, 32, 32, 3), np.float32)).shape == (0, 10)


def test_static_batch_model_pads_and_splits(engine: Engine, tiny_static_model_path: Path) -> None:
    static = Engine(tiny_static_model_path, threads=1)
    assert static.static_batch == 4
    colours = list(PROTOTYPE_COLOURS.values())
    for count in (1, 3, 4, 5, 9):
        batch = solid_batch(colours[:count] if count <= 10 else colours)
        np.testing.assert_allclose(
            static.predict_batch(batch), engine.predict_batch(batch), rtol=1e-6, atol=1e-7
        )


def test_classify_file_matches_predict_batch_on_the_preprocessed_file(
    engine: Engine, sample_images_dir: Path
) -> None:
    for name, class_name in SAMPLE_EXPECTED_CLASS.items():
        path = sample_images_dir / name
        prediction = engine.classify_file(path)
        assert prediction.ok and prediction.error is None
        assert prediction.path == str(path)
        reference = engine.predict_batch(
            load_model_input(path, (32, 32), engine.info.resize)[None]
        )[0]
        np.testing.assert_array_equal(prediction.probabilities, reference)
        assert CLASS_NAMES[prediction.top_index] == class_name


def test_classify_yields_batches_in_input_order(
    engine: Engine, sample_images_dir: Path, tiny_static_model_path: Path
) -> None:
    paths = sorted(sample_images_dir.iterdir()) * 2  # 12 files, duplicates allowed
    missing = sample_images_dir / "missing.jpg"
    paths.insert(5, missing)
    for model in (engine, Engine(tiny_static_model_path, threads=1, decode_workers=2)):
        batches = list(model.classify(paths, batch_size=5))
        assert [len(b) for b in batches] == [5, 5, 3]
        flat = [p for batch in batches for p in batch]
        assert [p.path for p in flat] == [str(p) for p in paths]
        assert flat[5].error == "file not found" and flat[5].probabilities is None
        for prediction, path in zip(flat, paths, strict=True):
            if path != missing:
                reference = engine.predict_batch(
                    load_model_input(path, (32, 32), engine.info.resize)[None]
                )[0]
                np.testing.assert_allclose(prediction.probabilities, reference, rtol=1e-6)


def test_statuses_flag_the_ambiguous_image_for_review(
    engine: Engine, sample_images_dir: Path
) -> None:
    paths = sorted(sample_images_dir.iterdir())
    predictions = [p for batch in engine.classify(paths) for p in batch]
    statuses = {Path(p.path).name: status_of(p, DEFAULT_REVIEW_THRESHOLD) for p in predictions}
    assert statuses.pop(AMBIGUOUS_SAMPLE) == "review"
    assert set(statuses.values()) == {"ok"}
    counts = count_statuses(predictions + [Prediction.failed("x.jpg", "empty file")])
    assert (counts.ok, counts.review, counts.error) == (5, 1, 1)


def test_prediction_properties() -> None:
    prediction = Prediction("a.jpg", np.array([0.1, 0.6, 0.3]))
    assert prediction.ok
    assert prediction.top_index == 1
    assert prediction.confidence == pytest.approx(0.6)
    assert prediction.top_k(2) == [(1, pytest.approx(0.6)), (2, pytest.approx(0.3))]
    assert prediction.probabilities.dtype == np.float32
    with pytest.raises(ValueError):
        prediction.probabilities[0] = 1.0  # read-only: safe to share between threads
    failed = Prediction.failed("b.jpg", "empty file (0 bytes)")
    assert not failed.ok and failed.top_index is None and failed.confidence is None
    assert failed.top_k(3) == []
    assert status_of(failed, 0.6) == "error"
    with pytest.raises(ValueError):
        Prediction("c.jpg", None)


def test_nan_probabilities_become_an_error_row_not_ok(tmp_path: Path) -> None:
    # The model gives NaN for reddish images only; a blank image passes the load check.
    broken = Engine(build_tiny_model(tmp_path / "nan.onnx", nan_for_red=True), threads=1)
    red = write_solid(tmp_path / "red.png", PROTOTYPE_COLOURS["Battery"])
    blue = write_solid(tmp_path / "blue.png", PROTOTYPE_COLOURS["Microwave"])
    predictions = [p for batch in broken.classify([red, blue]) for p in batch]
    assert [p.error for p in predictions] == ["model produced NaN/inf probabilities", None]
    assert predictions[0].probabilities is None and predictions[0].cam is None
    assert CLASS_NAMES[predictions[1].top_index] == "Microwave"
    assert [status_of(p) for p in predictions] == ["error", "ok"]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_status_never_calls_a_non_finite_confidence_ok(bad: float) -> None:
    prediction = Prediction("a.jpg", np.array([0.1, bad, 0.2]))
    assert status_of(prediction, 0.6) == "review"


def test_stop_before_the_first_batch_yields_nothing(
    engine: Engine, sample_images_dir: Path
) -> None:
    paths = sorted(sample_images_dir.iterdir())
    assert list(engine.classify(paths, batch_size=2, should_stop=lambda: True)) == []


def test_stop_after_a_batch_ends_the_run(engine: Engine, sample_images_dir: Path) -> None:
    paths = sorted(sample_images_dir.iterdir())
    stop = threading.Event()
    batches = []
    for batch in engine.classify(paths, batch_size=2, should_stop=stop.is_set):
        batches.append(batch)
        stop.set()
    assert len(batches) == 1


def large_copies(large_jpeg_path: Path, folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(count):
        path = folder / f"large_{i:02d}.jpg"
        os.link(large_jpeg_path, path)  # same bytes, no disk cost; each decodes on its own
        paths.append(path)
    return paths


def test_stop_while_decoding_drops_the_rest_of_the_batch(
    tiny_model_path: Path, large_jpeg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(tiny_model_path, threads=1, decode_workers=1)
    decoded = count_decodes(monkeypatch)
    # 150 camera-size photos on one decode thread: seconds of work for the whole batch.
    paths = large_copies(large_jpeg_path, tmp_path / "large", 150)
    # Stop once a few files have begun decoding: in the middle of batch 1, while the
    # consumer is already waiting for it.
    batches = list(engine.classify(paths, batch_size=150, should_stop=lambda: len(decoded) >= 3))
    decoded_when_returned = len(decoded)
    wait_for_decode_threads_to_end()
    assert batches == []
    # The run returned without waiting for the batch, and the queued files were dropped
    # rather than decoded in the background after it returned.
    assert decoded_when_returned < len(paths)
    assert len(decoded) < len(paths), f"{len(decoded)} of {len(paths)} decoded"


def test_next_batch_decodes_while_the_consumer_works(
    tiny_model_path: Path, large_jpeg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(tiny_model_path, threads=1, decode_workers=1)
    decoded = count_decodes(monkeypatch)
    paths = large_copies(large_jpeg_path, tmp_path / "large", 32)
    run = engine.classify(paths, batch_size=16)
    first = next(run)
    # The consumer now works on batch 1 and asks for nothing: batch 2 must decode anyway.
    wait_for_decodes(decoded, 32)
    assert sorted(decoded) == sorted(str(path) for path in paths)
    second = next(run)
    assert [p.ok for p in first + second] == [True] * 32
    assert [p.path for p in first + second] == [str(path) for path in paths]


def test_abandoning_the_generator_does_not_wait_for_running_decodes(
    engine: Engine, sample_images_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(path) for path in sorted(sample_images_dir.iterdir())]
    real_decode = prediction_loop.decode
    gate, finished = threading.Event(), threading.Event()

    def decode_batch_2_held_at_the_gate(path, *args, **kwargs):
        if path in paths[2:4]:  # batch 2 is decoding while the consumer holds batch 1
            gate.wait(60)
            finished.set()
        return real_decode(path, *args, **kwargs)

    monkeypatch.setattr(prediction_loop, "decode", decode_batch_2_held_at_the_gate)
    run = engine.classify(paths, batch_size=2)
    next(run)
    try:
        run.close()  # would block until the gate times out if it waited for the decode
        assert not finished.is_set(), "close() waited for a running decode"
    finally:
        gate.set()


@pytest.mark.parametrize("batch_size", [0, -1])
def test_classify_rejects_a_bad_batch_size(engine: Engine, batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        engine.classify(["a.jpg"], batch_size=batch_size)  # raises before any iteration


# -- models the engine must refuse, each with one clear message ---------------------------


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def build(tmp_path: Path, **options) -> Path:
    return build_tiny_model(tmp_path / "model.onnx", **options)


@pytest.mark.parametrize(
    ("make_model", "message"),
    [
        (lambda tmp: tmp / "absent.onnx", "model file not found"),
        (lambda tmp: tmp, "not a file"),
        (lambda tmp: write_file(tmp / "photo.onnx", b"\xff\xd8 not a model"), "not a usable ONNX"),
        (lambda tmp: build(tmp, metadata={}), "has no E-Waste Sorter metadata"),
        (lambda tmp: build(tmp, graph_classes=5), "[batch, 10] for the 10 classes"),
        (
            lambda tmp: build(tmp, metadata=tiny_metadata(input_size=(64, 64))),
            "expected [batch, 64, 64, 3]",
        ),
        (lambda tmp: build(tmp, channels=1), "expected [batch, 32, 32, 3]"),
        (lambda tmp: build(tmp, softmax=False), "not a probability distribution"),
        (
            lambda tmp: build(tmp, metadata={**tiny_metadata(), "ewaste_format": 99}),
            "metadata format 99",
        ),
        (lambda tmp: build(tmp, metadata=tiny_metadata(cam=True)), "names output 'cam'"),
    ],
    ids=[
        "missing",
        "folder",
        "not-onnx",
        "no-metadata",
        "class-count",
        "input-size",
        "channels",
        "logits",
        "format",
        "cam-missing",
    ],
)
def test_unusable_models_raise_model_error(tmp_path: Path, make_model, message: str) -> None:
    path = make_model(tmp_path)
    with pytest.raises(ModelError) as caught:
        Engine(path)
    assert message in str(caught.value)


def test_shipped_model_is_used_by_default() -> None:
    shipped = default_model_path()
    assert shipped.name == "ewaste-classifier.onnx"
    assert shipped.parent.joinpath("__init__.py").is_file()  # inside desktop.assets
    engine = Engine()
    assert engine.model_path == shipped
    assert len(engine.class_names) == 10


def test_missing_shipped_model_says_to_pass_one(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(engine_module, "default_model_path", lambda: tmp_path / "none.onnx")
    with pytest.raises(ModelError, match="no model shipped at .*pass --model"):
        Engine()


# -- class activation maps -------------------------------------------------------------


@pytest.fixture(scope="module")
def cam_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    folder = tmp_path_factory.mktemp("cam-model")
    return Engine(build_tiny_model(folder / "tiny-cam.onnx", cam=True), threads=1)


def structured_images(folder: Path) -> list[Path]:
    """PNGs (lossless, model-sized) whose colour changes across the CAM grid."""
    rng = np.random.default_rng(7)
    green_over_black = np.zeros((32, 32, 3), dtype=np.uint8)
    green_over_black[:24, :, 1] = 255  # top three rows of the 4x2 grid green, bottom black
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    paths = []
    for name, pixels in (("green_over_black.png", green_over_black), ("noise.png", noise)):
        Image.fromarray(pixels).save(folder / name)
        paths.append(folder / name)
    return paths


def test_cam_model_returns_the_map_of_the_predicted_class(
    cam_engine: Engine, tmp_path: Path
) -> None:
    assert cam_engine.has_cam and cam_engine.cam_grid == CAM_GRID
    paths = [*structured_images(tmp_path), tmp_path / "missing.png"]
    predictions = [p for batch in cam_engine.classify(paths, batch_size=2) for p in batch]
    images = np.stack(
        [load_model_input(path, (32, 32), cam_engine.info.resize) for path in paths[:2]]
    )
    expected = expected_cam(images)  # (2, 4, 2, 10): every class
    for prediction, maps in zip(predictions[:2], expected, strict=True):
        top = prediction.top_index
        assert prediction.cam.shape == CAM_GRID and prediction.cam.dtype == np.float32
        np.testing.assert_allclose(prediction.cam, maps[:, :, top], rtol=1e-5, atol=1e-5)
    green = predictions[0]
    assert CLASS_NAMES[green.top_index] == "Keyboard"  # mostly green
    assert green.cam[:3].min() > green.cam[3].max()  # it looked at the green part
    assert predictions[2].error == "file not found" and predictions[2].cam is None
    # The probabilities are those of the model without CAM: the same classifier.
    np.testing.assert_allclose(
        [p.probabilities for p in predictions[:2]],
        expected_probabilities(images.mean(axis=(1, 2))),
        rtol=1e-4,
        atol=1e-6,
    )


def test_cam_model_with_a_static_batch_pads_and_splits_the_maps(
    cam_engine: Engine, tmp_path: Path
) -> None:
    static = Engine(build_tiny_model(tmp_path / "static.onnx", cam=True, batch=4), threads=1)
    batch = np.random.default_rng(3).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    probabilities, cams, _ = static.predict(batch)
    assert probabilities.shape == (6, 10) and cams.shape == (6, *CAM_GRID, 10)
    np.testing.assert_allclose(cams, expected_cam(batch), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probabilities, cam_engine.predict_batch(batch), rtol=1e-6)
    empty = cam_engine.predict(np.zeros((0, 32, 32, 3), np.float32))
    assert empty[0].shape == (0, 10) and empty[1].shape == (0, *CAM_GRID, 10)


def test_model_without_cam_runs_only_the_probabilities(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(tiny_model_path, threads=1)
    assert not engine.has_cam and engine.cam_grid is None
    session = engine._session
    requested: list[list[str]] = []
    original_run = session.run

    def run(names, feeds, *args):
        requested.append(list(names))
        return original_run(names, feeds, *args)

    monkeypatch.setattr(session, "run", run)
    paths = structured_images(tmp_path)
    predictions = [p for batch in engine.classify(paths) for p in batch]
    assert all(p.ok and p.cam is None for p in predictions)
    probabilities, cams, _ = engine.predict(np.zeros((1, 32, 32, 3), np.float32))
    assert cams is None and probabilities.shape == (1, 10)
    assert requested and all(names == ["probabilities"] for names in requested)


def test_flip_average_mirrors_each_map_back_before_averaging(
    cam_engine: Engine, tmp_path: Path
) -> None:
    # Green on the left half only, fading from top to bottom: its map differs between the
    # grid's two columns, so a mirrored map averaged without mirroring it back (or mirrored
    # along the wrong axis) would not equal the map.
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, :16, 1] = np.linspace(255, 64, 32, dtype=np.uint8)[:, None]
    path = tmp_path / "green_left.png"
    Image.fromarray(pixels).save(path)
    image = load_model_input(path, (32, 32), cam_engine.info.resize)[None]

    probabilities, cams, _ = cam_engine.predict(image, flip_average=True)
    # The tiny model's maps are block means, so a mirror just mirrors them: the average
    # of the map and the mirrored-back map of the mirror is the map itself.
    np.testing.assert_allclose(cams, expected_cam(image), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        probabilities, expected_probabilities(image.mean(axis=(1, 2))), rtol=1e-4, atol=1e-6
    )
    green = cams[0, :, :, CLASS_NAMES.index("Keyboard")]
    assert green[:, 0].min() > green[:, 1].max()  # still on the left, where the green is

    [prediction] = next(cam_engine.classify([path], flip_average=True))
    top = prediction.top_index
    np.testing.assert_allclose(prediction.probabilities, probabilities[0], rtol=1e-6)
    np.testing.assert_allclose(prediction.cam, cams[0, :, :, top], rtol=1e-6)
    single = cam_engine.classify_file(path, flip_average=True)
    np.testing.assert_allclose(single.cam, prediction.cam, rtol=1e-6)


def test_flip_average_on_a_static_batch_model_pads_both_views(tmp_path: Path) -> None:
    static = Engine(build_tiny_model(tmp_path / "static.onnx", cam=True, batch=4), threads=1)
    batch = np.random.default_rng(5).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    probabilities, cams, _ = static.predict(batch, flip_average=True)
    assert probabilities.shape == (3, 10) and cams.shape == (3, *CAM_GRID, 10)
    mirrored_back = expected_cam(batch[:, :, ::-1])[:, :, ::-1]
    np.testing.assert_allclose(
        cams, (expected_cam(batch) + mirrored_back) / 2, rtol=1e-5, atol=1e-5
    )


def test_flip_average_of_no_readable_image_is_an_empty_result(
    cam_engine: Engine, tmp_path: Path
) -> None:
    probabilities, cams, _ = cam_engine.predict(
        np.zeros((0, 32, 32, 3), np.float32), flip_average=True
    )
    assert probabilities.shape == (0, 10) and cams.shape == (0, *CAM_GRID, 10)
    [row] = next(cam_engine.classify([tmp_path / "missing.png"], flip_average=True))
    assert row.error == "file not found"
    with pytest.raises(ValueError, match=r"got \(1, 16, 16, 3\)"):  # the caller's shape
        cam_engine.predict_batch(np.zeros((1, 16, 16, 3), np.float32), flip_average=True)

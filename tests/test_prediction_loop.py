"""The one prediction loop: the trainer's evaluation predicts exactly what the app predicts,
and the Keras adapter plugs into the same loop as the ONNX engine."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from child_signals import deliverable
from desktop.core.engine import Engine
from desktop.core.prediction_loop import classify_paths
from tiny_model import CAM_GRID, build_tiny_model
from trainer.dataset import Sample
from trainer.keras_predictor import KerasPredictor, KerasPredictorError
from trainer.split_predictions import predict_samples


def gradient_images(folder: Path, count: int = 5) -> list[Path]:
    """Model-sized PNGs whose colours differ left to right, so a mirror changes the CAM."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        pixels[:, :16] //= 4  # a dark left half
        path = folder / f"gradient-{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_evaluation_predicts_exactly_what_the_app_predicts(tmp_path: Path) -> None:
    engine = Engine(build_tiny_model(tmp_path / "cam.onnx", cam=True), threads=1)
    paths = gradient_images(tmp_path / "images")
    broken = tmp_path / "images" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    files = [*paths[:2], broken, *paths[2:]]

    app_rows = [
        p for batch in engine.classify(files, batch_size=2, flip_average=True) for p in batch
    ]
    evaluated = predict_samples(
        engine.predict,
        [Sample(path, label=0) for path in files],
        engine.input_size,
        batch_size=4,  # another batching: the figures must not depend on it
        tta_flip=True,
        resize=engine.info.resize,
    )

    assert [sample.path for sample in evaluated.kept] == paths
    [(skipped, reason)] = evaluated.skipped
    assert skipped.path == broken and reason == app_rows[2].error
    app_probabilities = np.stack([row.probabilities for row in app_rows if row.ok])
    np.testing.assert_allclose(evaluated.probabilities, app_probabilities, atol=1e-6)
    assert evaluated.were_logits is False


def test_flip_averaging_in_the_loop_mirrors_the_maps_back(tmp_path: Path) -> None:
    engine = Engine(build_tiny_model(tmp_path / "cam.onnx", cam=True), threads=1)
    [path] = gradient_images(tmp_path / "images", count=1)
    pixels = np.asarray(Image.open(path), dtype=np.float32)[None]
    mirrored_path = tmp_path / "mirrored.png"
    Image.fromarray(pixels[0, :, ::-1].astype(np.uint8)).save(mirrored_path)

    plain, mirrored = (
        next(classify_paths([p], engine.predict, (32, 32), engine.info.resize))[0]
        for p in (path, mirrored_path)
    )
    [averaged] = next(
        classify_paths([path], engine.predict, (32, 32), "stretch", flip_average=True)
    )

    assert plain.cam.shape == CAM_GRID
    expected = (plain.probabilities + mirrored.probabilities) / 2
    np.testing.assert_allclose(averaged.probabilities, expected, atol=1e-6)
    # The mirrored view's map is flipped back, so it lines up with the photo shown.
    top = averaged.top_index
    _, plain_maps, _ = engine.predict(pixels)
    _, mirror_maps, _ = engine.predict(pixels[:, :, ::-1])
    expected_map = (plain_maps[0, :, :, top] + mirror_maps[0, :, ::-1, top]) / 2
    np.testing.assert_allclose(averaged.cam, expected_map, atol=1e-5)
    assert not np.allclose(plain_maps[0, :, :, top], mirror_maps[0, :, :, top])


def test_a_keras_model_runs_through_the_same_loop(tmp_path: Path) -> None:
    import keras  # the `train` extra, part of `dev`

    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(4, 8, strides=8, activation="relu")(inputs)
    maps = keras.layers.Conv2D(10, 1, name="cam")(features)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    probabilities = keras.layers.Softmax(name="probabilities")(pooled)
    predict = KerasPredictor(keras.Model(inputs, [probabilities, maps]))
    paths = gradient_images(tmp_path / "images", count=3)

    rows = next(classify_paths(paths, predict, predict.input_size, "stretch"))

    assert predict.input_size == (32, 32)
    assert [row.path for row in rows] == [str(path) for path in paths]
    for row in rows:
        assert row.ok and row.probabilities.shape == (10,)
        assert row.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert row.cam.shape == (4, 4)  # the predicted class's map, from the 4-D output
    first, second = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    with pytest.raises(KerasPredictorError, match="2 inputs"):
        KerasPredictor(keras.Model([first, second], keras.layers.Add()([first, second])))


# Ctrl+C at random moments while the loop waits for decodes, with the stop signals raising
# `Stopped` as in ewaste-classify (desktop.core.stop_signals), then lets Python exit (which
# joins the decode threads: a lock left taken hangs it there).
STOPPED_WHILE_WAITING = """
import random, signal, sys, time
from concurrent.futures import ThreadPoolExecutor
from desktop.core.prediction_loop import _wait_unless_stopped
from desktop.core.stop_signals import Stopped, stop_signals_raise

signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGINT))
random.seed(7)
pool = ThreadPoolExecutor(max_workers=2)
stopped = 0
with stop_signals_raise():
    for _ in range(3000):
        try:
            futures = [pool.submit(time.sleep, 0.0005) for _ in range(8)]
            signal.setitimer(signal.ITIMER_REAL, random.uniform(0.00005, 0.004))
            _wait_unless_stopped(futures, lambda: False)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except Stopped:
            stopped += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
print(f"stopped {stopped} times in 3000, none half-way")
"""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="setitimer is POSIX-only")
def test_a_stop_signal_while_waiting_for_decodes_never_hangs_the_exit() -> None:
    # concurrent.futures.wait() takes the futures' locks one by one; a stop raised in the
    # middle left some taken, the decode thread finishing that future blocked for ever, and
    # the stopped command hung at exit joining it (a CI run of ewaste-classify saw it).
    with deliverable(signal.SIGINT):
        done = subprocess.run(
            [sys.executable, "-c", STOPPED_WHILE_WAITING],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"stopped [1-9]\d* times in 3000, none half-way", done.stdout.strip())


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM")
def test_a_held_stop_is_raised_after_the_block_even_when_the_block_fails() -> None:
    from desktop.core.stop_signals import Stopped, stop_signals_held, stop_signals_raise

    with deliverable(signal.SIGINT), stop_signals_raise():
        with pytest.raises(Stopped, match="SIGTERM"), stop_signals_held() as arrived:
            signal.raise_signal(signal.SIGTERM)
            assert arrived == [signal.SIGTERM]  # held: the block goes on
        with pytest.raises(Stopped, match="SIGINT") as stopped, stop_signals_held():
            signal.raise_signal(signal.SIGINT)
            raise ValueError("the block failed meanwhile")
        assert isinstance(stopped.value.__context__, ValueError)  # never lost to the failure


def test_a_stop_asked_before_the_first_batch_yields_nothing_even_if_decoded(monkeypatch) -> None:
    # Decodes that finish before the loop first waits (fast files, an idle pool) were
    # yielded: the stop was checked only while a decode was still running.
    from desktop.core import prediction_loop

    monkeypatch.setattr(prediction_loop, "decode", lambda path, size, resize, abandon: "decoded")
    for _ in range(20):
        batches = prediction_loop.decoded_batches(
            ["a.jpg", "b.jpg", "c.jpg"], (8, 8), "stretch", batch_size=2, workers=2,
            should_stop=lambda: True,
        )  # fmt: skip
        assert list(batches) == []
    seen: list = []  # a stop asked once the first batch is in
    batches = prediction_loop.decoded_batches(
        ["a.jpg", "b.jpg", "c.jpg"], (8, 8), "stretch", batch_size=2, workers=2,
        should_stop=lambda: bool(seen),
    )  # fmt: skip
    seen.extend(batches)
    assert seen == [(["a.jpg", "b.jpg"], ["decoded", "decoded"])]

"""Station-style wear for training batches: blur softens, scratches draw thin lines."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from trainer.config import TrainConfig
from trainer.data import SplitArrays, training_pipeline
from trainer.station_wear import CameraBlur, Scratches


def _checkerboard(count: int = 8, size: int = 150) -> tf.Tensor:
    """At the dataset's 150 px, where the blur's sigma is 0.5 to 2.5 pixels."""
    squares = (np.indices((size, size)).sum(axis=0) // 2) % 2 * 255.0
    return tf.constant(np.repeat(squares[None, ..., None], 3, axis=3).repeat(count, axis=0))


def _roughness(images) -> np.ndarray:
    """Mean absolute difference between horizontal neighbours, per image."""
    pixels = np.asarray(images)
    return np.abs(np.diff(pixels, axis=2)).mean(axis=(1, 2, 3))


def test_camera_blur_softens_every_chosen_image_and_keeps_flat_ones_flat():
    sharp = _checkerboard()
    blurred = CameraBlur(probability=1.0, max_sigma=2.5, seed=1)(sharp, training=True)
    assert blurred.shape == sharp.shape
    assert (_roughness(blurred) < 0.9 * _roughness(sharp)).all()
    grey = tf.fill((4, 48, 48, 3), 128.0)
    np.testing.assert_allclose(CameraBlur(1.0, 2.5, seed=1)(grey), grey, atol=1e-3)


def test_camera_blur_leaves_unchosen_images_and_inference_alone():
    sharp = _checkerboard()
    np.testing.assert_array_equal(CameraBlur(0.0, 2.5, seed=1)(sharp, training=True), sharp)
    np.testing.assert_array_equal(CameraBlur(1.0, 2.5, seed=1)(sharp, training=False), sharp)


def test_scratches_draw_thin_lines_on_chosen_images_only():
    grey = tf.fill((16, 60, 60, 3), 128.0)
    scratched = np.asarray(Scratches(probability=1.0, max_lines=6, seed=2)(grey))
    changed = (scratched != 128.0).any(axis=3).mean(axis=(1, 2))  # share of pixels per image
    assert (changed > 0).mean() >= 0.9, changed  # a very short line may miss every pixel
    assert (changed < 0.25).all(), changed  # lines, not paint over the whole item
    assert ((scratched >= 0) & (scratched <= 255)).all()
    untouched = Scratches(probability=0.0, max_lines=6, seed=2)(grey)
    np.testing.assert_array_equal(untouched, grey)


def _epochs(seed: int, augment: str = "station") -> list[np.ndarray]:
    config = TrainConfig(image_size=40, batch_size=8, augment=augment, seed=seed)
    images = np.random.default_rng(0).integers(0, 256, (16, 40, 40, 3), dtype=np.uint8)
    arrays = SplitArrays(images, np.zeros(16, np.int32), [""] * 16, [])
    keras.utils.set_random_seed(seed)
    dataset = training_pipeline(arrays, num_classes=2, config=config)
    return [np.concatenate([x.numpy() for x, _ in dataset]) for _ in range(2)]


def test_station_augmentation_is_repeatable_for_a_seed_and_adds_wear_to_strong():
    first, second = _epochs(5), _epochs(5)
    np.testing.assert_array_equal(first[1], second[1])
    # The same seed without the wear layers: the flips, zooms and colours are the same
    # draws, so whatever differs is blur or scratches, on some images, not all.
    strong = _epochs(5, augment="strong")
    worn = [not np.array_equal(a, b) for a, b in zip(first[0], strong[0], strict=True)]
    assert 0 < sum(worn) < len(worn), worn


def test_wear_works_on_landscape_batches():
    landscape = tf.fill((2, 30, 80, 3), 128.0)
    assert CameraBlur(1.0, 2.5, seed=1)(landscape).shape == (2, 30, 80, 3)
    scratched = np.asarray(Scratches(1.0, 6, seed=1)(landscape))
    assert scratched.shape == (2, 30, 80, 3)
    assert (scratched[:, :, 40:] != 128.0).any()  # lines reach past the height too

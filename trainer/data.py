"""Training data: decode each image once with the app's preprocessing, cache the pixels, and
build the tf.data pipelines (augmentation and MixUp/CutMix on training batches only)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import PIL
import tensorflow as tf
from PIL import features

from desktop.core.preprocessing import DEFAULT_RESIZE, ImageLoadError, contract, load_rgb
from desktop.core.safe_files import replaced_whole
from trainer.config import TrainConfig
from trainer.dataset import Dataset
from trainer.errors import ConfigError
from trainer.station_wear import CameraBlur, Scratches

DEFAULT_CACHE_DIR = Path(os.environ.get("EWASTE_CACHE_DIR", "~/.cache/ewaste-sorter")).expanduser()


@dataclass
class SplitArrays:
    images: np.ndarray  # (N, H, W, 3) uint8, exactly what load_rgb returns
    labels: np.ndarray  # (N,) int32
    paths: list[str]
    failures: list[tuple[str, str]]  # (path, reason) of images that could not be decoded


def load_split(
    dataset: Dataset,
    split: str,
    image_size: int,
    cache_dir: Path | None,
    resize: str = DEFAULT_RESIZE,
) -> SplitArrays:
    """Decode a split at `image_size`, reusing a cache keyed by the files and the contract."""
    samples = dataset.splits[split].samples
    key = _cache_key([str(s.path) for s in samples], image_size, resize)
    cache_file = cache_dir / f"{split}-{image_size}px-{key}.npz" if cache_dir else None
    if cache_file and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as cached:
            return SplitArrays(
                images=cached["images"],
                labels=cached["labels"],
                paths=[str(p) for p in cached["paths"]],
                failures=json.loads(str(cached["failures"])),
            )

    def decode(path: Path) -> np.ndarray | str:
        try:
            return load_rgb(path, (image_size, image_size), resize)
        except ImageLoadError as exc:
            return exc.reason

    # Pillow releases the GIL while decoding and resizing, so threads use both cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        decoded = list(pool.map(decode, [s.path for s in samples]))
    images, labels, paths, failures = [], [], [], []
    for sample, result in zip(samples, decoded, strict=True):
        if isinstance(result, str):
            failures.append((str(sample.path), result))
            continue
        images.append(result)
        labels.append(sample.label)
        paths.append(str(sample.path))
    arrays = SplitArrays(
        images=np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8),
        labels=np.asarray(labels, dtype=np.int32),
        paths=paths,
        failures=failures,
    )
    if cache_file:
        try:
            _write_cache(cache_file, arrays)
        except OSError as exc:  # a full disk, a read-only share: the run needs no cache
            reason = exc.strerror or exc
            print(
                f"warning: cannot cache the {split} split in {cache_dir} ({reason})",
                file=sys.stderr,
            )
    return arrays


def _write_cache(cache_file: Path, arrays: SplitArrays) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with replaced_whole(cache_file, "wb") as handle:
        np.savez(
            handle,
            images=arrays.images,
            labels=arrays.labels,
            paths=np.asarray(arrays.paths),
            failures=json.dumps(arrays.failures),
        )


def _cache_key(paths: list[str], image_size: int, resize: str) -> str:
    """Changes with any file (size, mtime), the input size, the contract or the decoder."""
    digest = hashlib.sha256(json.dumps(contract(resize), sort_keys=True).encode())
    # A Pillow (or its libjpeg) upgrade can change decoded pixels: re-decode then.
    digest.update(f"{image_size}|{PIL.__version__}|{features.version('jpg')}".encode())
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:  # a link whose target is gone: the decode lists it as unreadable
            digest.update(f"{path}|unreadable\n".encode())
            continue
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


# "basic": flip, rotation, zoom (the reference); "strong": + translation, contrast,
# brightness; "heavy": + saturation and random erasing; "station": "strong" + camera blur and
# scratches (trainer.station_wear).
AUGMENT_LEVELS = ("basic", "strong", "heavy", "station")


def augmentation_layers(config: TrainConfig, seed: int | None = None) -> keras.Sequential:
    seed = config.seed if seed is None else seed
    layers = [
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.1, fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomZoom(0.2, fill_mode="nearest", seed=seed + 2),
    ]
    if config.augment not in AUGMENT_LEVELS:
        raise ConfigError(
            f"unknown augment setting {config.augment!r} ({', '.join(AUGMENT_LEVELS)})"
        )
    if config.augment in ("strong", "heavy", "station"):
        layers += [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 3),
            keras.layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 4),
            keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 5),
        ]
    if config.augment == "heavy":
        # For later cycles of a from-scratch run, which fit "strong" to 97 % train accuracy.
        # (Keras's RandAugment was tried first: it costs 7x these per batch on 2 cores.)
        layers += [
            keras.layers.RandomSaturation((0.3, 0.7), seed=seed + 6),
            # Occlude a random box in half the images (factor is a probability range): the
            # class must show elsewhere too.
            keras.layers.RandomErasing(factor=(0.5, 0.5), value_range=(0, 255), seed=seed + 7),
        ]
    if config.augment == "station":
        layers += [
            CameraBlur(probability=0.25, max_sigma=2.5, seed=seed + 8),
            Scratches(probability=0.25, max_lines=6, seed=seed + 9),
        ]
    return keras.Sequential(layers, name="augmentation")


def uses_soft_labels(config: TrainConfig) -> bool:
    """MixUp/CutMix and label smoothing need one-hot targets; otherwise sparse labels."""
    return config.mix_probability > 0 or config.label_smoothing > 0


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's order and augmentation (epoch 0-based). Apart by more than
    the offsets used within an epoch (0 to 100), so no two epochs share a stream."""
    return seed + 1000 * epoch


def training_pipeline(
    arrays: SplitArrays, num_classes: int, config: TrainConfig, epoch: int = 0
) -> tf.data.Dataset:
    """One epoch's shuffled, augmented (and mixed) training batches (epoch 0-based).

    Their order and augmentation depend only on (seed, epoch), not on how many epochs this
    process has run: a run resumed at epoch N sees the batches an uninterrupted run sees,
    not epoch 1's again. Within the epoch the random state lives in Keras seed generators
    that advance from batch to batch; the map runs sequentially so they are consumed in the
    same order on every run. (Plain tf.random ops inside Dataset.map would replay the same
    values each batch, and a parallel map would consume them in a racy order.)
    """
    seed = epoch_seed(config.seed, epoch)
    augment = augmentation_layers(config, seed)
    soft = uses_soft_labels(config)
    mixing = keras.random.SeedGenerator(seed + 100)

    def prepare(images, labels):
        images = augment(tf.cast(images, tf.float32), training=True)
        images = tf.clip_by_value(images, 0.0, 255.0)
        if not soft:
            return images, labels
        targets = tf.one_hot(labels, num_classes)
        if config.mix_probability > 0:
            images, targets = _mix_batch(images, targets, config.mix_probability, mixing)
        return images, targets

    return (
        tf.data.Dataset.from_tensor_slices((arrays.images, arrays.labels))
        .shuffle(len(arrays.labels), seed=seed, reshuffle_each_iteration=False)
        .batch(config.batch_size, drop_remainder=len(arrays.labels) >= config.batch_size)
        .map(prepare)  # sequential on purpose, see above; each call is a whole batch
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_pipeline(
    arrays: SplitArrays, num_classes: int, config: TrainConfig
) -> tf.data.Dataset:
    labels = arrays.labels
    targets = tf.one_hot(labels, num_classes) if uses_soft_labels(config) else labels
    return (
        tf.data.Dataset.from_tensor_slices((tf.cast(arrays.images, tf.float32), targets))
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def _mix_batch(images, targets, probability: float, seed: keras.random.SeedGenerator):
    """With `probability`, mix the batch with a shuffled copy of itself: MixUp or CutMix,
    chosen at random (one mixing ratio per batch, as timm's batch mode does)."""
    batch = tf.shape(images)[0]
    order = keras.random.shuffle(tf.range(batch), seed=seed)
    other_images = tf.gather(images, order)
    other_targets = tf.gather(targets, order)

    def mixup():
        alpha = 0.2
        a = keras.random.gamma((), alpha, seed=seed)
        b = keras.random.gamma((), alpha, seed=seed)
        lam = a / (a + b)
        return lam * images + (1 - lam) * other_images, lam * targets + (1 - lam) * other_targets

    def cutmix():
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        lam = keras.random.uniform((), seed=seed)
        cut = tf.sqrt(1.0 - lam)
        cut_h = tf.cast(tf.cast(height, tf.float32) * cut, tf.int32)
        cut_w = tf.cast(tf.cast(width, tf.float32) * cut, tf.int32)
        cy = tf.cast(keras.random.uniform((), seed=seed) * tf.cast(height, tf.float32), tf.int32)
        cx = tf.cast(keras.random.uniform((), seed=seed) * tf.cast(width, tf.float32), tf.int32)
        y0, y1 = tf.maximum(cy - cut_h // 2, 0), tf.minimum(cy + cut_h // 2, height)
        x0, x1 = tf.maximum(cx - cut_w // 2, 0), tf.minimum(cx + cut_w // 2, width)
        rows = tf.logical_and(tf.range(height) >= y0, tf.range(height) < y1)
        cols = tf.logical_and(tf.range(width) >= x0, tf.range(width) < x1)
        box = tf.cast(tf.logical_and(rows[:, None], cols[None, :]), tf.float32)[None, :, :, None]
        mixed = images * (1 - box) + other_images * box
        # The label weight is the area actually pasted, after clipping at the borders.
        kept = 1.0 - tf.reduce_mean(box)
        return mixed, kept * targets + (1 - kept) * other_targets

    def mix():
        return tf.cond(keras.random.uniform((), seed=seed) < 0.5, mixup, cutmix)

    return tf.cond(
        keras.random.uniform((), seed=seed) < probability, mix, lambda: (images, targets)
    )

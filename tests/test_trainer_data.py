"""The training input pipeline: repeatable for a seed, fresh randomness every epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from synthetic_dataset import make_dataset
from trainer.config import TrainConfig
from trainer.data import SplitArrays, load_split, training_pipeline
from trainer.dataset import load_dataset

CONFIG = TrainConfig(image_size=24, batch_size=8, augment="strong", mix_probability=1.0, seed=7)


def _arrays() -> SplitArrays:
    rng = np.random.default_rng(0)
    labels = np.arange(32, dtype=np.int32) % 4
    images = rng.integers(0, 256, size=(32, 24, 24, 3), dtype=np.uint8)
    return SplitArrays(images=images, labels=labels, paths=[""] * 32, failures=[])


def _two_epochs(config: TrainConfig) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    keras.utils.set_random_seed(config.seed)
    dataset = training_pipeline(_arrays(), num_classes=4, config=config)
    return [[(x.numpy(), y.numpy()) for x, y in dataset] for _ in range(2)]


def _mixing_ratios(epoch) -> list[float]:
    """Each batch's mixing ratio max(lam, 1 - lam): the largest target weight of its rows
    that were mixed with an image of another class (all such rows share one ratio)."""
    ratios = []
    for _, targets in epoch:
        weights = targets.max(axis=1)
        mixed = weights[weights < 1 - 1e-6]
        ratios.append(round(float(mixed.min()), 4) if mixed.size else 1.0)
    return ratios


def test_the_same_seed_gives_the_same_batches():
    first, second = _two_epochs(CONFIG), _two_epochs(CONFIG)
    for epoch_a, epoch_b in zip(first, second, strict=True):
        for (images_a, targets_a), (images_b, targets_b) in zip(epoch_a, epoch_b, strict=True):
            np.testing.assert_array_equal(images_a, images_b)
            np.testing.assert_array_equal(targets_a, targets_b)


def test_mixing_draws_new_ratios_every_epoch():
    epoch_1, epoch_2 = _two_epochs(CONFIG)
    ratios_1, ratios_2 = _mixing_ratios(epoch_1), _mixing_ratios(epoch_2)
    assert min(ratios_1) < 1, "batches should be mixed with mix_probability 1"
    assert ratios_1 != ratios_2


def test_a_different_seed_gives_different_batches():
    other = _two_epochs(CONFIG.replace(seed=8))[0][0][0]
    assert not np.array_equal(_two_epochs(CONFIG)[0][0][0], other)


def test_heavy_augmentation_is_repeatable_too():
    heavy = CONFIG.replace(augment="heavy")
    first, second = _two_epochs(heavy), _two_epochs(heavy)
    np.testing.assert_array_equal(first[1][0][0], second[1][0][0])


def _grey_images_after(augment: str) -> np.ndarray:
    """Uniform grey images through a pipeline without mixing: geometric and colour changes
    keep each image uniform, so any spread of values inside one image is an erased box."""
    config = CONFIG.replace(augment=augment, mix_probability=0.0)
    keras.utils.set_random_seed(config.seed)
    grey = SplitArrays(
        images=np.full((32, 24, 24, 3), 128, np.uint8),
        labels=np.zeros(32, np.int32),
        paths=[""] * 32,
        failures=[],
    )
    return np.concatenate([x.numpy() for x, _ in training_pipeline(grey, 4, config)])


def test_heavy_augmentation_erases_a_box_in_about_half_the_images():
    erased = (_grey_images_after("heavy").std(axis=(1, 2, 3)) > 1).sum()
    assert 6 <= erased <= 26, f"{erased} of 32 images erased"
    assert (_grey_images_after("strong").std(axis=(1, 2, 3)) <= 1).all()


def test_an_unknown_augment_level_is_refused():
    with pytest.raises(ValueError, match="heavy"):
        training_pipeline(_arrays(), num_classes=4, config=CONFIG.replace(augment="extreme"))


def test_a_dangling_link_is_decoded_as_unreadable_not_a_crash(tmp_path):
    """A link whose target is gone is listed among the failures (and left out); the cache
    key, which reads every file's size and time, must not stop the run on it."""
    root = make_dataset(tmp_path / "data", per_split={"train": 2, "val": 1, "test": 1}, size=16)
    link = root / "train" / "alpha" / "gone.jpg"
    link.symlink_to(tmp_path / "nowhere.jpg")
    arrays = load_split(load_dataset(root), "train", 16, tmp_path / "cache")
    assert [path for path, _ in arrays.failures] == [str(link)]
    assert len(arrays.labels) == 6 and str(link) not in arrays.paths


def test_a_cache_that_cannot_be_written_is_said_and_the_split_still_loads(
    tmp_path, monkeypatch, capsys
):
    """A --cache-dir on a read-only share (accepted: it may hold a filled cache) whose
    cache does not fit these images: the decoded split is used, not lost to a traceback."""
    import errno

    import trainer.data as data

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(data, "replaced_whole", read_only)
    root = make_dataset(tmp_path / "data", per_split={"train": 2, "val": 1, "test": 1}, size=16)
    arrays = load_split(load_dataset(root), "train", 16, tmp_path / "cache")
    assert len(arrays.labels) == 6
    said = capsys.readouterr().err
    assert f"warning: cannot cache the train split in {tmp_path / 'cache'} (Read-only" in said

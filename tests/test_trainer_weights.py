"""Where the backbone's weights come from: ImageNet offline, a local file, a wrong file."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import keras
import numpy as np
import pytest

from trainer import weights as weights_module
from trainer.config import TrainConfig
from trainer.fit import init_from_record, initial_weights_file
from trainer.model import BACKBONE_NAME, build_model, load_initial_weights
from trainer.weights import WeightsError, WeightsSource, file_sha256, resolve_weights

SMALL = 32  # backbone weights do not depend on the input size; small keeps the test fast
NO_WEIGHTS = WeightsSource("none", None, None)


def _offline(monkeypatch, tmp_path):
    """No Keras cache and no network, whatever machine the test runs on."""
    monkeypatch.setattr(weights_module, "KERAS_CACHE_DIR", tmp_path / "keras-cache")

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_imagenet_offline_fails_fast_with_instructions(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(WeightsError) as caught:
        resolve_weights("imagenet")
    message = str(caught.value)
    assert "efficientnetv2-b0_notop.h5" in message
    assert "--weights PATH" in message and "--weights none" in message
    assert str(tmp_path / "keras-cache") in message


def test_imagenet_behind_a_proxy_tries_the_download_and_explains_the_failure(monkeypatch, tmp_path):
    # A proxy nobody listens on: the direct probe must be skipped (it would wrongly say
    # "no connection" on proxy-only networks) and the download's own failure reported.
    monkeypatch.setattr(weights_module, "KERAS_CACHE_DIR", tmp_path / "keras-cache")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    with pytest.raises(WeightsError) as caught:
        resolve_weights("imagenet")
    assert "--weights PATH" in str(caught.value)
    assert "no connection to" not in str(caught.value)  # the probe's message


def test_imagenet_uses_the_keras_cache_without_network_when_its_hash_matches(monkeypatch, tmp_path):
    import hashlib

    _offline(monkeypatch, tmp_path)
    cached = tmp_path / "keras-cache" / weights_module.KERAS_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"a download cut short")
    with pytest.raises(WeightsError) as refused:  # not the file Keras publishes
        resolve_weights("imagenet")
    assert f"{cached} is not Keras's EfficientNetV2B0 ImageNet file" in str(refused.value)
    assert "delete it to download it again" in str(refused.value)

    # The same check passes the file whose hash Keras publishes (here, this one's).
    known = hashlib.md5(cached.read_bytes(), usedforsecurity=False).hexdigest()
    monkeypatch.setattr(weights_module, "KERAS_WEIGHTS_MD5", known)
    source = resolve_weights("imagenet")
    assert source.kind == "imagenet" and source.path == cached
    assert source.sha256 == file_sha256(cached)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        resolve_weights(str(tmp_path / "nope.h5"))


def _backbone(seed: int):
    keras.utils.set_random_seed(seed)
    return keras.applications.EfficientNetV2B0(
        include_top=False, weights=None, input_shape=(SMALL, SMALL, 3)
    )


def test_local_weights_file_loads_every_backbone_variable(tmp_path):
    donor = _backbone(seed=1)
    # Shift every variable so none can equal a fresh initialisation by coincidence
    # (BatchNorm gammas start at exactly 1, betas at 0).
    for variable in donor.weights:
        variable.assign(variable.numpy() + 0.01)
    path = tmp_path / "donor.weights.h5"
    donor.save_weights(path)

    config = TrainConfig(image_size=SMALL, weights=str(path), frozen_layers=0)
    model = build_model(config, num_classes=3, weights=resolve_weights(str(path)))
    loaded = model.get_layer(BACKBONE_NAME).weights
    assert len(loaded) == len(donor.weights)
    for got, expected in zip(loaded, donor.weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_weights_of_another_model_are_refused(tmp_path):
    other = keras.Sequential([keras.Input((SMALL, SMALL, 3)), keras.layers.Conv2D(4, 3)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    config = TrainConfig(image_size=SMALL, weights=str(path))
    with pytest.raises(WeightsError) as raised:
        build_model(config, num_classes=3, weights=resolve_weights(str(path)))
    # One line that says what is wrong, not Keras's listing of every layer (73 KB).
    message = str(raised.value)
    assert "is not an EfficientNetV2B0 no-top weights file" in message
    assert "\n" not in message and len(message) < 400 + len(str(path))


def _saved_model(tmp_path, num_classes: int, shift: float) -> Path:
    """An earlier run's model file, every variable moved off its initial value."""
    keras.utils.set_random_seed(7)
    model = build_model(TrainConfig(image_size=SMALL, weights="none"), num_classes, NO_WEIGHTS)
    for variable in model.weights:
        variable.assign(variable.numpy() + shift)
    path = tmp_path / f"earlier-{num_classes}.keras"
    model.save(path)
    return path


def test_init_from_starts_from_every_weight_of_an_earlier_model(tmp_path):
    earlier = _saved_model(tmp_path, num_classes=3, shift=0.01)
    # The earlier run's record: a warm restart of a from-scratch run.
    first = {"path": "/runs/v0/model.keras", "sha256": "ab", "weights": NO_WEIGHTS.to_dict()}
    (tmp_path / "run.json").write_text(
        json.dumps({"weights": NO_WEIGHTS.to_dict(), "init_from": first})
    )
    config = TrainConfig(image_size=SMALL, weights="none", init_from=str(earlier))
    run_dir = tmp_path / "new-run"
    model = build_model(config, 3, NO_WEIGHTS)
    load_initial_weights(model, initial_weights_file(config, run_dir))
    expected = keras.saving.load_model(earlier).weights
    assert len(model.weights) == len(expected)
    for got, want in zip(model.weights, expected, strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    record = init_from_record(config, run_dir)
    assert record == {
        "path": f"{earlier.parent.name}/{earlier.name}",  # never this machine's full path
        "sha256": file_sha256(earlier),
        "weights": NO_WEIGHTS.to_dict(),
        "init_from": first,
    }


def test_init_from_a_model_with_other_classes_is_refused(tmp_path):
    earlier = _saved_model(tmp_path, num_classes=4, shift=0.0)
    model = build_model(TrainConfig(image_size=SMALL, weights="none"), 3, NO_WEIGHTS)
    with pytest.raises(WeightsError, match="different network"):
        load_initial_weights(model, earlier)


def test_init_from_a_model_of_another_backbone_names_both_networks(tmp_path):
    """Both output (None, 3): the message names the networks, not two identical shapes."""
    earlier = _saved_model(tmp_path, num_classes=3, shift=0.0)  # EfficientNetV2B0
    config = TrainConfig(image_size=SMALL, weights="none", backbone="efficientnet-lite0")
    model = build_model(config, 3, NO_WEIGHTS)
    with pytest.raises(WeightsError) as raised:
        load_initial_weights(model, earlier)
    message = str(raised.value)
    assert "ewaste_efficientnetv2_b0 with outputs (None, 3)" in message
    assert "this run builds ewaste_efficientnet_lite0 with outputs (None, 3)" in message


@pytest.mark.parametrize(
    ("weights", "where", "message"),
    [
        ("none", "elsewhere/nope.keras", "--init-from model not found"),
        ("imagenet", "earlier.keras", "pass --weights none"),
        ("none", "run/earlier.keras", "inside the run directory"),
    ],
)
def test_init_from_problems_are_clear_errors(tmp_path, weights, where, message):
    for name in ("earlier.keras", "run/earlier.keras"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"a model")
    config = TrainConfig(weights=weights, init_from=str(tmp_path / where))
    with pytest.raises(WeightsError, match=message):
        initial_weights_file(config, tmp_path / "run")

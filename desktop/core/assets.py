"""Where the shipped model lives (inside the installed `desktop.assets` package)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "ewaste-classifier.onnx"
# The SHA-256 of the model this version ships: a copy damaged on disk, or swapped, gives
# confident wrong answers and loads as well as the real one, so the engine refuses it.
# Shipping a new model means updating this (a test compares it with assets/).
SHIPPED_MODEL_SHA256 = "22ee1d24fbef3d9a3adabe82a97df3a809b2c249d42515a00a7ebbce3e4a0711"


def default_model_path() -> Path:
    """The path of the model shipped with the app; it may not exist in a dev checkout."""
    # The package is a plain directory (setuptools package-dir mapping, never a zip), so
    # the Traversable is a real filesystem path that ONNX Runtime can open.
    return Path(str(resources.files("desktop.assets") / DEFAULT_MODEL_NAME))

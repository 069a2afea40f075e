"""Where the shipped model lives (inside the installed `desktop.assets` package)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL_NAME = "ewaste-classifier.onnx"


def default_model_path() -> Path:
    """The path of the model shipped with the app; it may not exist in a dev checkout."""
    # The package is a plain directory (setuptools package-dir mapping, never a zip), so
    # the Traversable is a real filesystem path that ONNX Runtime can open.
    return Path(str(resources.files("desktop.assets") / DEFAULT_MODEL_NAME))

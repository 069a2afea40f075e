"""E-Waste Sorter station app: `desktop.core` is the Qt-free inference engine and headless
command; `desktop.gui` is the PySide6 window. Nothing here imports TensorFlow."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "ewaste-sorter"


def package_version() -> str:
    """The installed version, as pyproject.toml gives it (the one place it is written); the
    one-folder build carries the package's metadata for this."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "unknown (not installed)"

"""Shared fixtures: a tiny real ONNX model and real image files (good and bad).

The builders live in `tiny_model` and `fixtures_images` (importable from tests, since pytest
puts this folder on sys.path); this file only wires them into fixtures.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_images import (
    restore_permissions,
    write_bad_inputs,
    write_large_jpeg,
    write_sample_images,
)
from tiny_model import build_tiny_model


def pytest_configure(config: pytest.Config) -> None:
    # Qt tests must run without a display (CI, SSH sessions, the lead's laptop alike).
    os.environ["QT_QPA_PLATFORM"] = "offscreen"


# Where the programs the tests start, and the libraries imported after the tests were
# collected, put their temporary and cache files (Gradio's client downloads, Chromium's
# profile and crash reports, a killed trainer's autograph sources), by the variable that
# names the place. Keras and Matplotlib, imported at collection, keep their one cache file
# each in the home folder.
SYSTEM_FOLDERS = {
    "TMPDIR": "tmp",
    "GRADIO_TEMP_DIR": "tmp/gradio",
    "XDG_CONFIG_HOME": "config",
    "XDG_CACHE_HOME": "cache",
    "MPLCONFIGDIR": "matplotlib",
    "KERAS_HOME": "keras",
    "IPYTHONDIR": "ipython",
}


@pytest.fixture(scope="session", autouse=True)
def system_folders_inside_the_runs_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Those places, inside the run's temporary folder (removed with it when every test
    passes), not the machine's /tmp and home: a CI machine that runs the suite day after
    day must not fill up with what each run leaves."""
    root = tmp_path_factory.mktemp("system")
    with pytest.MonkeyPatch.context() as patch:
        for variable, folder in SYSTEM_FOLDERS.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            patch.setenv(variable, str(root / folder))
        patch.setattr(tempfile, "tempdir", None)  # read again, from TMPDIR
        yield


@pytest.fixture(scope="session")
def project_version() -> str:
    """The version pyproject.toml gives, read as text (Python 3.10 has no tomllib)."""
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8")
    found = re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE)
    assert found, "pyproject.toml has no version line"
    return found.group(1)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ONNX classifier (dynamic batch, 32x32 input, the 10 classes) with metadata."""
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny-classifier.onnx")


@pytest.fixture(scope="session")
def tiny_static_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same classifier with a static batch dimension of 4."""
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny-static4.onnx", batch=4)


@pytest.fixture
def sample_images_dir(tmp_path: Path) -> Path:
    """A folder of solid-colour JPEG/PNG images, see fixtures_images.SAMPLE_IMAGES."""
    return write_sample_images(tmp_path / "samples")


@pytest.fixture(scope="session")
def large_jpeg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000x3000 JPEG (written once per session, it takes a moment)."""
    return write_large_jpeg(tmp_path_factory.mktemp("large") / "large_4000x3000.jpg")


@pytest.fixture
def bad_inputs_dir(tmp_path: Path, large_jpeg_path: Path) -> Iterator[Path]:
    """A folder with every bad input of fixtures_images.BAD_INPUTS and the special folders."""
    folder = write_bad_inputs(tmp_path / "bad inputs", large_jpeg_path)
    yield folder
    restore_permissions(folder)


@pytest.fixture
def make_window(qtbot, tiny_model_path: Path, tmp_path: Path):
    """A factory of real main windows on the tiny model, shown and with the model loaded."""
    from desktop.gui.app import create_window, parse_args  # Qt only for the tests that ask
    from desktop.gui.settings import AppSettings

    def make():
        options = parse_args(["--model", str(tiny_model_path), "--batch", "4"])
        window = create_window(options, AppSettings.at(tmp_path / "settings.ini"))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
        return window

    return make

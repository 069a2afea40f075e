"""The station app never loads the training stack, checked on a real launch.

A subprocess runs the real `ewaste-app` entry point offscreen on the tiny model and a folder
(so the model loads and a run completes), closes the window when done, and reports which
modules ended up in sys.modules. A control run asks for a module the app does load
(onnxruntime, imported on the model-loading thread) to prove the check can fail.
The subprocesses run outside the checkout and without PYTHONPATH, so they import the
installed package (what CI builds and installs), not the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ["tensorflow", "keras", "tf2onnx", "trainer", "converter"]

# Wraps create_window so the window closes itself once its run is over (or the model
# failed), then reports the exit status, the rows and the loaded top-level packages.
LAUNCH = r"""
import json, sys
from PySide6.QtCore import QTimer
import desktop.gui.app as app_module

watched = json.loads(sys.argv[1])
create = app_module.create_window
state = {}

def create_window(options, settings=None):
    window = create(options, settings)
    def poll():
        if window.last_summary is not None or window.model_error:
            state["rows"] = window.results.rowCount()
            state["model_error"] = window.model_error
            window.close()
    timer = QTimer(window)
    timer.timeout.connect(poll)
    timer.start(50)
    return window

app_module.create_window = create_window
state["exit"] = app_module.main(sys.argv[2:])
state["found"] = sorted({m.split(".")[0] for m in sys.modules} & set(watched))
print("RESULT " + json.dumps(state))
"""


def installed_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess that imports the installed package, not the source
    tree: no PYTHONPATH (run it with cwd outside the checkout too, as `-c` puts the cwd
    first on sys.path)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # the app's QSettings go here
        XDG_DATA_HOME=str(tmp_path / "data"),  # and its copy of an unsaved review
    )
    return env


def launch(watched: list[str], args: list[str], tmp_path: Path) -> dict:
    env = installed_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, json.dumps(watched), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.fixture
def launch_args(tiny_model_path: Path, sample_images_dir: Path) -> list[str]:
    return ["--model", str(tiny_model_path), str(sample_images_dir)]


def test_real_launch_never_imports_the_training_stack(
    launch_args: list[str], tmp_path: Path
) -> None:
    result = launch(FORBIDDEN, launch_args, tmp_path)
    assert result["exit"] == 0
    assert result["rows"] == 6 and result["model_error"] is None  # it really ran
    assert result["found"] == []


def test_the_import_check_can_fail(launch_args: list[str], tmp_path: Path) -> None:
    # onnxruntime is imported lazily on a pool thread; the same probe must see it.
    result = launch([*FORBIDDEN, "onnxruntime"], launch_args, tmp_path)
    assert result["found"] == ["onnxruntime"]


def test_bad_model_launch_keeps_the_window_and_exits_cleanly(
    tmp_path: Path, sample_images_dir: Path
) -> None:
    result = launch(FORBIDDEN, ["--model", str(tmp_path / "missing.onnx")], tmp_path)
    assert result["exit"] == 0
    assert "model file not found" in result["model_error"]
    assert result["rows"] == 0
    assert result["found"] == []


def test_plain_import_of_the_app_module(tmp_path: Path) -> None:
    code = (
        "import sys, json, desktop.gui.app; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=installed_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []

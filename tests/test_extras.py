"""The commands of an optional extra, started from an install without it (the station's):
one line naming what to install and status 2, never a ModuleNotFoundError traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize(
    ("command", "absent", "argv", "says"),
    [
        ("ewaste-web", ["gradio"], [], "needs the web extra (gradio not installed): "
         "pip install 'ewaste-sorter[web]'"),
        ("ewaste-train", ["tensorflow", "keras"], ["audit", "--data", "d", "--out", "o"],
         "needs the train extra (tensorflow, keras not installed): "
         "pip install 'ewaste-sorter[train]'"),
        ("ewaste-convert", ["onnx"], ["verify", "m.keras", "m.onnx"],
         "needs the train extra (onnx not installed): pip install 'ewaste-sorter[train]'"),
    ],
)  # fmt: skip
def test_a_command_of_an_extra_not_installed_says_what_to_install(
    command: str, absent: list[str], argv: list[str], says: str
) -> None:
    # The installed command itself (its console-script entry point), with the extra's
    # modules made impossible to import, as on a station.
    script = textwrap.dedent(
        f"""
        import sys
        from importlib.metadata import entry_points
        for name in {absent!r}:
            sys.modules[name] = None
        [command] = [e for e in entry_points(group="console_scripts") if e.name == {command!r}]
        sys.exit(command.load()({argv!r}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"{command}: error: {says}\n"

"""The commands of an optional extra, run on an install without it: one line that names the
pip command, not a ModuleNotFoundError traceback (the station install has none of them)."""

from __future__ import annotations

import importlib.util

# The modules each extra brings that its commands import (see pyproject.toml).
EXTRA_MODULES = {
    "train": ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib"),
    "web": ("gradio",),
}


def missing_extra(extra: str, modules: tuple[str, ...] | None = None) -> str | None:
    """Why the commands of `extra` cannot run here (its modules not installed, or those of
    `modules` that a command needs), or None."""
    needed = EXTRA_MODULES[extra] if modules is None else modules
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"needs the {extra} extra ({', '.join(missing)} not installed): "
        f"pip install 'ewaste-sorter[{extra}]'"
    )

"""Atomic writes for run artefacts: a reader (the converter, a resumed run, a person) never
sees a half-written file, and a run killed mid-write keeps the previous good one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f"partial-{path.name}")
    with open(partial, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        # On disk before the rename: after a power cut the new name never points at an
        # empty file (ext4 and others may commit the rename before the data).
        os.fsync(handle.fileno())
    os.replace(partial, path)


def write_json_atomic(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")

"""Atomic writes for run artefacts: a reader (the converter, a resumed run, a person) never
sees a half-written file, and a run killed mid-write keeps the previous good one. The one
rule for that is the app's (`desktop.core.safe_files.replaced_whole`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from desktop.core.safe_files import replaced_whole


def write_text_atomic(path: Path, text: str) -> None:
    with replaced_whole(Path(path), "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_json_atomic(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")

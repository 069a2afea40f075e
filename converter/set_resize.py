"""Change how an exported model's photos reach its input: its metadata's resize mode.

A model trained on photos its items fill (the catalogue dataset) can be fed the "item"
mode's crop of a phone photo instead of the whole photo: nothing in the graph changes, only
what the metadata tells the app to do. The choice is a measurement, not a guess: compare
the modes on validation photos first (benchmarks/bench_item_size.py). The change is
recorded in the file's `export` metadata, so the file still says how it was trained.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import onnx

from converter.errors import ConvertError
from converter.metadata import attach_metadata, read_metadata
from desktop.core.model_info import ModelError, decode_metadata, parse_model_info
from desktop.core.preprocessing import RESIZE_MODES


def with_resize_mode(model: onnx.ModelProto, resize: str, source: str) -> onnx.ModelProto:
    """A copy of `model` whose metadata says `resize` (a key of RESIZE_MODES)."""
    if resize not in RESIZE_MODES:
        raise ConvertError(f"unknown resize mode {resize!r}: {', '.join(RESIZE_MODES)}")
    props = read_metadata(model)
    try:
        before = parse_model_info(props, source=source).resize
    except ModelError as exc:
        raise ConvertError(str(exc)) from exc
    if before == resize:
        raise ConvertError(f"{source} already resizes with {resize}")
    values: dict[str, Any] = decode_metadata(props)
    values["preprocessing"] = {**values["preprocessing"], "resize": RESIZE_MODES[resize]}
    export = values.get("export") if isinstance(values.get("export"), dict) else {}
    changes = [*export.get("resize_changes", []), _change(before, resize)]
    values["export"] = {**export, "resize_changes": changes}
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    attach_metadata(changed, values)
    return changed


def _change(before: str, after: str) -> dict[str, str]:
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return {"from": before, "to": after, "date": date, "by": "ewaste-convert set-resize"}

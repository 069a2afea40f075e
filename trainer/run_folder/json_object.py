"""Checked reading of the run folder's JSON files: each error names the file and the key."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainer.errors import TrainerError


class RunFolderError(TrainerError):
    """A run folder's file is there but is not what the trainer writes; the message says
    which file and what is wrong with it."""


class JsonObject:
    """The keys of one JSON object, each read with its expected type; errors name the file."""

    def __init__(self, value: Any, where: str):
        if not isinstance(value, Mapping):
            raise RunFolderError(f"{where} is not a JSON object")
        self.value = value
        self.where = where

    def fail(self, key: str, expected: str) -> RunFolderError:
        return RunFolderError(f"{self.where}: {key} must be {expected}, got {self.value[key]!r}")

    def optional(self, key: str, kind: type | tuple[type, ...], expected: str) -> Any:
        value = self.value.get(key)
        if value is None:
            return None
        # JSON true and false are Python ints too: only a true-or-false key takes them.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(key, expected)
        return value

    def required(self, key: str, kind: type | tuple[type, ...], expected: str) -> Any:
        if key not in self.value:
            raise RunFolderError(f"{self.where}: {key} is missing")
        value = self.optional(key, kind, expected)
        if value is None:
            raise self.fail(key, expected)
        return value

    def number(self, key: str) -> float | None:
        value = self.optional(key, (int, float), "a number")
        return None if value is None else float(value)

    def strings(self, key: str, required: bool = False) -> tuple[str, ...] | None:
        value = (self.required if required else self.optional)(key, list, "a list of strings")
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            raise self.fail(key, "a list of strings")
        return tuple(value)

    def object(self, key: str) -> dict[str, Any] | None:
        return self.optional(key, dict, "a JSON object")


def read_json_object(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, a huge number
        raise RunFolderError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, dict):
        raise RunFolderError(f"{path} is not a JSON object")
    return value


def read_record(path: Path, from_json: Callable[..., Any]) -> Any:
    """`from_json` of the object in the file at `path`; None when there is no such file."""
    value = read_json_object(path)
    if value is None:
        return None
    try:
        return from_json(value, where=str(path))
    except OverflowError as exc:  # an integer of hundreds of digits, where a float goes
        raise RunFolderError(f"{path}: a number too large to be one") from exc

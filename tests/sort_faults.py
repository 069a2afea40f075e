"""Faults injected into a real sort: the manifest's row append failing part way."""

from __future__ import annotations

import os

import pytest

import desktop.core.sorting as sorting


def manifest_fails_after(monkeypatch: pytest.MonkeyPatch, rows: int, code: int) -> list:
    """Let `rows` manifest rows be written, then fail each append with OSError `code` (a
    full disk, a stick pulled out). Returns the Filed entries written, as they are."""
    added: list = []
    real_add = sorting._Manifest.add

    def add(manifest, filed):
        if len(added) == rows:
            raise OSError(code, os.strerror(code))
        added.append(filed)
        real_add(manifest, filed)

    monkeypatch.setattr(sorting._Manifest, "add", add)
    return added

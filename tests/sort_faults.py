"""Faults injected into a real sort: the manifest's row append failing part way, a write
finding the disk full."""

from __future__ import annotations

import csv
import errno
import os

import pytest

from desktop.core import sort_manifest
from desktop.core.sort_records import Filed


def disk_full(*args, **kwargs):
    """Stands in for any write: the disk is full."""
    raise OSError(errno.ENOSPC, "No space left on device")


def manifest_fails_after(monkeypatch: pytest.MonkeyPatch, rows: int, code: int) -> list:
    """Let `rows` manifest rows be written, then fail each row's write with OSError `code`
    as os.write raises it (a full disk, a stick pulled out). Returns the Filed entries
    written, as they are."""
    added: list = []
    real_append = sort_manifest.ManifestWriter._append

    def append(manifest, data: bytes):
        cells = next(csv.reader([data.decode("utf-8")]))
        if tuple(cells) != sort_manifest.MANIFEST_COLUMNS:  # a row, not the header
            if len(added) == rows:
                raise OSError(code, os.strerror(code))
            added.append(Filed(*cells))
        real_append(manifest, data)

    monkeypatch.setattr(sort_manifest.ManifestWriter, "_append", append)
    return added

"""Where the photos earlier sorts into a destination filed are now: for the app's rows of
photos a sort moved, and for a results CSV reopened after a sort (or after its undo)."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path

from .file_placing import already_back
from .sort_manifest import (
    MANIFEST_FILE,
    UNDONE_MANIFEST_FILE,
    latest_in_place,
    manifest_entries,
    read_manifest,
)
from .sort_records import Filed, SortError


def earlier_moves(dest: str | os.PathLike[str]) -> dict[str, Filed]:
    """Source path -> the manifest row of each photo a sort into `dest` moved there and
    that is still in place (empty when `dest` holds no manifest)."""
    dest = Path(os.path.realpath(dest))
    latest = latest_in_place(manifest_entries(dest))
    return {source: entry for source, entry in latest.items() if entry.action == "move"}


def current_places(
    dest: str | os.PathLike[str], wanted: Collection[str] | None = None
) -> dict[str, str]:
    """Each path a results CSV may name a photo sorted into `dest` by (where it was before
    the sort, or an earlier place in `dest` before a person's class re-filed it) -> where
    it is now: in `dest`, or where an undo put it back (a CSV exported between the sort and
    the undo names the photos in `dest`). `wanted`: only these paths (each photo an undo put
    back is read to be found). SortError when `dest` holds no manifest at all."""
    dest = Path(os.path.realpath(dest))
    undone = undone_manifests(dest)
    if not (dest / MANIFEST_FILE).is_file() and not undone:
        raise SortError(f"{dest} holds no {MANIFEST_FILE}: no sort went into it")
    places = _put_back_places(dest, undone, wanted)  # first: a sort since has the last word
    entries = manifest_entries(dest)
    latest = latest_in_place(entries)
    now = {(e.source, e.sha256): e.destination for e in latest.values()}
    for entry in entries:
        place = now.get((entry.source, entry.sha256))
        if place is not None:
            places[entry.source] = places[entry.destination] = place
    return places


def undone_manifests(dest: Path) -> list[Path]:
    """manifest.undone.csv, manifest.undone (2).csv, ... oldest first."""

    def number(path: Path) -> int:
        found = re.fullmatch(r".* \((\d+)\)", path.stem)
        return int(found.group(1)) if found else 1

    stem = Path(UNDONE_MANIFEST_FILE).stem
    return sorted(dest.glob(f"{stem}*.csv"), key=number)


def _put_back_places(
    dest: Path, undone: list[Path], wanted: Collection[str] | None
) -> dict[str, str]:
    """Where the undos of `undone` put each photo back (found by SHA-256 at its source, or
    the numbered name beside it). A place in `dest` that two undone sorts used for different
    photos is left out: a CSV row naming it could be either. Unreadable manifests are
    skipped (a hand-edited one must not make the folder no sort folder)."""
    asked = None if wanted is None else set(wanted)
    filed: dict[str, Filed | None] = {}  # place in dest -> its photo (None: two photos)
    for manifest in undone:
        try:
            entries = read_manifest(manifest, dest)
        except SortError:
            continue
        for entry in entries:
            if not isinstance(entry, Filed):
                continue
            if asked is not None and not {entry.source, entry.destination} & asked:
                continue
            other = filed.get(entry.destination, entry)
            same = other is not None and other.sha256 == entry.sha256
            filed[entry.destination] = entry if same else None
    places = {}
    for place, entry in filed.items():
        if entry is None:
            continue
        back = already_back(Path(entry.source), entry.sha256, Path(place))
        if back is not None:
            places[place] = places[entry.source] = str(back)
    return places

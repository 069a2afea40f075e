"""Dataset audit: counts, image facts, unreadable files and duplicates, before any training.

`run_audit` indexes the dataset with `trainer.dataset.load_dataset`, decodes every image once
with the shared `load_rgb` (so "unreadable" means exactly what training would choke on),
and writes `audit.json` plus pictures into the output folder.

Duplicates come in two kinds:
  exact  byte-identical files (SHA-256 of the file bytes);
  near   perceptually the same picture (256-bit pHash within a Hamming distance), e.g. the
         same photo re-encoded, resized or slightly recoloured.
A duplicate that spans splits leaks test or validation images into training and inflates
every score measured on them; one whose copies carry different labels is a labelling error.
All paths in audit.json are POSIX paths relative to the dataset root.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from desktop.core.preprocessing import ImageLoadError, load_rgb
from trainer.dataset import SPLITS, Dataset, Sample, load_dataset
from trainer.errors import TrainerError
from trainer.files import write_json_atomic

AUDIT_FILE = "audit.json"
AUDIT_VERSION = 1

# pHash, 256 bits: 64x64 greyscale -> 2-D DCT -> top-left 16x16 (lowest frequencies) -> bit =
# coefficient above the block's median. Robust to re-encoding, resizing and recolouring. The
# common 64-bit variant (8x8 of 32x32) is too coarse for this data: centred products on white
# backgrounds share their lowest frequencies, so it put a battery 4 bits from a keyboard.
HASH_BITS = 256
_HASH_SIDE = 16
_HASH_SOURCE = 64
# Chosen by looking at the real dataset's pairs (all of them from 17 to 56 bits, a sample
# below): up to 44 every pair is the same photo (re-encoded, rescaled, slightly cropped or
# recoloured). From 46 on, different products shot the same way (another battery, a turntable
# in another colour) mix in with more heavily re-cropped copies, so a higher threshold buys
# recall with false alarms. Unrelated images sit near 128; distinct photos' nearest
# neighbours at 64-100. The borderline picture shows what the threshold leaves out.
DEFAULT_HASH_DISTANCE = 44
# Pairs up to this far above the threshold are drawn in a separate picture, so a person can
# check that the threshold does not miss real duplicates.
_BORDERLINE_MARGIN = 12
DEFAULT_MAX_PAIR_PICTURES = 24


class AuditError(TrainerError):
    """The audit cannot run with these arguments; the message says why."""


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One readable image: where it is, what it is, and its fingerprints."""

    path: str  # relative to the dataset root, POSIX
    split: str
    label: str
    sha256: str
    phash: np.ndarray  # (HASH_BITS,) bool
    width: int
    height: int
    mode: str
    format: str


@dataclass(frozen=True)
class Unreadable:
    path: str
    split: str
    label: str
    reason: str


# ---------------------------------------------------------------------------------------------
# Hashing


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: `m @ x @ m.T` is the 2-D DCT of an n x n block."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(_HASH_SOURCE)
# ITU-R 601 luma, the weights Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])


def phash(rgb: np.ndarray) -> np.ndarray:
    """256-bit perceptual hash (as 256 bools) of a 64x64x3 RGB array."""
    if rgb.shape != (_HASH_SOURCE, _HASH_SOURCE, 3):
        raise ValueError(f"phash expects a {_HASH_SOURCE}x{_HASH_SOURCE}x3 array, got {rgb.shape}")
    grey = rgb.astype(np.float64) @ _LUMA
    low = (_DCT @ grey @ _DCT.T)[:_HASH_SIDE, :_HASH_SIDE]
    return (low > np.median(low)).ravel()


def hamming_pairs(
    hashes: np.ndarray, max_distance: int, block: int = 1024
) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """All pairs (i < j) within `max_distance` bits, and each hash's nearest-neighbour distance.

    Computed in row blocks with a matrix product so memory stays O(block * n) at any size.
    """
    n = len(hashes)
    bits = hashes.astype(np.float32)
    inverse = 1.0 - bits
    pairs: list[tuple[int, int, int]] = []
    nearest = np.full(n, HASH_BITS + 1, dtype=np.int64)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        # Differing bits = ones of a against zeros of b plus zeros of a against ones of b.
        dist = np.rint(bits[rows] @ inverse.T + inverse[rows] @ bits.T).astype(np.int64)
        local = np.arange(rows.start, rows.stop)
        dist[np.arange(len(local)), local] = HASH_BITS + 1  # ignore self
        nearest[rows] = dist.min(axis=1)
        ii, jj = np.nonzero(dist <= max_distance)
        for i, j in zip(ii + start, jj, strict=True):
            if i < j:
                pairs.append((int(i), int(j), int(dist[i - start, j])))
    return pairs, nearest


# ---------------------------------------------------------------------------------------------
# Scanning


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _inspect(sample: Sample, split: str, label: str, root: Path) -> ImageRecord | Unreadable:
    """Read one file once: hash its bytes, decode it with the shared loader, read its header."""
    rel = _relative(sample.path, root)
    try:
        data = sample.path.read_bytes()
    except OSError as exc:
        return Unreadable(rel, split, label, f"cannot read file: {exc.strerror or exc}")
    try:
        rgb = load_rgb(sample.path, (_HASH_SOURCE, _HASH_SOURCE))
        # Header only (no decode): the file's own size, mode and format, before conversion.
        with Image.open(io.BytesIO(data)) as image:
            width, height, mode, fmt = image.width, image.height, image.mode, image.format
    except ImageLoadError as exc:
        return Unreadable(rel, split, label, exc.reason)
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the audit
        return Unreadable(rel, split, label, f"{type(exc).__name__}: {exc}")
    return ImageRecord(
        path=rel,
        split=split,
        label=label,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(rgb),
        width=width,
        height=height,
        mode=mode,
        format=fmt or "unknown",
    )


def scan(
    dataset: Dataset, workers: int | None = None
) -> tuple[list[ImageRecord], list[Unreadable]]:
    """Inspect every indexed image; readable ones become records, the rest are listed."""
    jobs = [
        (sample, split, dataset.class_names[sample.label])
        for split in SPLITS
        for sample in dataset.splits[split].samples
    ]
    workers = workers or min(4, os.cpu_count() or 1)
    # Threads suffice: file reads, hashlib and Pillow's decoder release the GIL.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _inspect(*job, dataset.root), jobs))
    records = [r for r in results if isinstance(r, ImageRecord)]
    unreadable = [r for r in results if isinstance(r, Unreadable)]
    return records, unreadable


# ---------------------------------------------------------------------------------------------
# Grouping


def components(n: int, edges: Iterable[tuple[int, int, int]]) -> list[list[int]]:
    """Connected components (of two or more nodes) of a graph on 0..n-1, by union-find."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    found: dict[int, list[int]] = {}
    for i in range(n):
        found.setdefault(find(i), []).append(i)
    return [members for members in found.values() if len(members) > 1]


def _group_entry(records: Sequence[ImageRecord], members: Sequence[int]) -> dict[str, Any]:
    splits = sorted({records[i].split for i in members}, key=SPLITS.index)
    labels = sorted({records[i].label for i in members})
    return {
        "size": len(members),
        "splits": splits,
        "labels": labels,
        "cross_split": len(splits) > 1,
        "conflicting_labels": len(labels) > 1,
        "members": [
            {
                "path": records[i].path,
                "split": records[i].split,
                "label": records[i].label,
                "sha256": records[i].sha256,
            }
            for i in members
        ],
    }


def _member_order(records: Sequence[ImageRecord]):
    return lambda i: (SPLITS.index(records[i].split), records[i].path)


def exact_groups(records: Sequence[ImageRecord]) -> list[list[int]]:
    by_sha: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_sha.setdefault(record.sha256, []).append(i)
    order = _member_order(records)
    groups = [sorted(g, key=order) for g in by_sha.values() if len(g) > 1]
    return sorted(groups, key=lambda g: order(g[0]))


def near_groups(
    records: Sequence[ImageRecord], pairs: Iterable[tuple[int, int, int]], threshold: int
) -> tuple[list[list[int]], list[int]]:
    """Duplicate groups (pHash within `threshold`) that hold more than one distinct file.

    Groups are connected components, so A~B and B~C put A, B and C together. Byte-identical
    copies always hash alike, so an exact group either stands alone (reported as exact only)
    or sits inside one of these. Returns the groups and the largest edge distance of each.
    """
    kept = [(i, j, d) for i, j, d in pairs if d <= threshold]
    order = _member_order(records)
    groups = [
        sorted(members, key=order)
        for members in components(len(records), kept)
        if len({records[i].sha256 for i in members}) > 1
    ]
    groups.sort(key=lambda g: order(g[0]))
    index = {i: n for n, g in enumerate(groups) for i in g}
    max_distance = [0] * len(groups)
    for i, _, d in kept:
        if i in index:
            max_distance[index[i]] = max(max_distance[index[i]], d)
    return groups, max_distance


def _kind_summary(groups: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {
        "groups": len(groups),
        "images": sum(g["size"] for g in groups),
        # Copies beyond the first of each group: what keeping one per group would remove.
        "redundant_images": sum(g["size"] - 1 for g in groups),
        "cross_split_groups": sum(g["cross_split"] for g in groups),
        "conflicting_label_groups": sum(g["conflicting_labels"] for g in groups),
    }


def _leaks(groups: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Evaluation images whose duplicate sits in an earlier split (val<-train, test<-train/val)."""
    leaked: dict[str, set[str]] = {"val": set(), "test": set()}
    for group in groups:
        splits = {m["split"] for m in group["members"]}
        for member in group["members"]:
            if member["split"] == "test" and splits & {"train", "val"}:
                leaked["test"].add(member["path"])
            if member["split"] == "val" and "train" in splits:
                leaked["val"].add(member["path"])
    return {split: sorted(paths) for split, paths in leaked.items()}


# ---------------------------------------------------------------------------------------------
# Summaries


def _counts(dataset: Dataset, records: Sequence[ImageRecord]) -> dict[str, dict[str, int]]:
    counts = {split: dict.fromkeys(dataset.class_names, 0) for split in SPLITS}
    for record in records:
        counts[record.split][record.label] += 1
    return counts


def _image_summary(records: Sequence[ImageRecord]) -> dict[str, Any]:
    if not records:
        return {"count": 0}
    widths = np.array([r.width for r in records])
    heights = np.array([r.height for r in records])
    sizes = Counter(f"{r.width}x{r.height}" for r in records)
    return {
        "count": len(records),
        "width": {"min": int(widths.min()), "max": int(widths.max()), "mean": float(widths.mean())},
        "height": {
            "min": int(heights.min()),
            "max": int(heights.max()),
            "mean": float(heights.mean()),
        },
        "distinct_sizes": len(sizes),
        "most_common_sizes": dict(sizes.most_common(10)),
        "modes": dict(Counter(r.mode for r in records).most_common()),
        "formats": dict(Counter(r.format for r in records).most_common()),
    }


# ---------------------------------------------------------------------------------------------
# Entry points


def run_audit(
    dataset_root: str | Path,
    out_dir: str | Path,
    hash_distance: int = DEFAULT_HASH_DISTANCE,
    *,
    max_pair_pictures: int = DEFAULT_MAX_PAIR_PICTURES,
    pictures: bool = True,
    workers: int | None = None,
) -> dict[str, Any]:
    """Audit the dataset at `dataset_root`; write audit.json (and pictures) into `out_dir`.

    hash_distance: largest pHash Hamming distance (of 256 bits) that counts as a near
        duplicate. Raises AuditError for a value outside 0..256 and DatasetError (from
        `load_dataset`) for a folder that is not a dataset. Unreadable images are listed and
        excluded, never fatal. Returns the dict written to audit.json.
    """
    if not 0 <= hash_distance <= HASH_BITS:
        raise AuditError(f"hash distance must be between 0 and {HASH_BITS}, got {hash_distance}")
    dataset = load_dataset(dataset_root)
    root = dataset.root
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    records, unreadable = scan(dataset, workers)
    hashes = np.array([r.phash for r in records], dtype=bool).reshape(-1, HASH_BITS)
    pairs, nearest = hamming_pairs(hashes, hash_distance + _BORDERLINE_MARGIN)

    exact = exact_groups(records)
    near, near_max = near_groups(records, pairs, hash_distance)
    exact_entries = [
        {"id": f"exact-{n + 1}", "sha256": records[g[0]].sha256, **_group_entry(records, g)}
        for n, g in enumerate(exact)
    ]
    near_entries = [
        {"id": f"near-{n + 1}", "max_distance": near_max[n], **_group_entry(records, g)}
        for n, g in enumerate(near)
    ]
    within = [(i, j, d) for i, j, d in pairs if d <= hash_distance]
    # Exact and near together, each image counted once: what de-duplication would touch.
    any_entries = [_group_entry(records, g) for g in components(len(records), within)]
    leaks = _leaks(any_entries)
    non_images = [
        _relative(p, root) for split in SPLITS for p in dataset.splits[split].skipped_non_images
    ]
    # Where each image's closest other image lies: duplicates form the low tail.
    histogram = Counter(min(int(d) // 8, 16) for d in nearest if d <= HASH_BITS)

    audit: dict[str, Any] = {
        "audit_version": AUDIT_VERSION,
        "dataset_root": str(root.resolve()),
        "class_names": list(dataset.class_names),
        "counts": _counts(dataset, records),
        "totals": {split: sum(1 for r in records if r.split == split) for split in SPLITS},
        "images": _image_summary(records),
        "non_image_files": {"count": len(non_images), "paths": non_images},
        "unreadable": {
            "count": len(unreadable),
            "files": [asdict(u) for u in unreadable],
        },
        "hashing": {
            "exact": "SHA-256 of the file bytes",
            "near": (
                f"pHash, {HASH_BITS} bits: image decoded with desktop.core.preprocessing.load_rgb "
                f"at {_HASH_SOURCE}x{_HASH_SOURCE}, ITU-R 601 greyscale, 2-D DCT-II, top-left "
                f"{_HASH_SIDE}x{_HASH_SIDE} coefficients compared with their median"
            ),
            "near_threshold": hash_distance,
            "near_threshold_of_bits": HASH_BITS,
            "near_rule": (
                f"two images are near duplicates when their pHash Hamming distance is <= "
                f"{hash_distance} of {HASH_BITS} bits; groups are connected components"
            ),
            "nearest_neighbour_distance_histogram": {
                (f"{8 * b}-{8 * b + 7}" if b < 16 else ">=128"): histogram[b] for b in range(17)
            },
        },
        "summary": {
            "exact": _kind_summary(exact_entries),
            "near": _kind_summary(near_entries),
            "any": _kind_summary(any_entries),
            "test_images_with_train_val_duplicate": len(leaks["test"]),
            "val_images_with_train_duplicate": len(leaks["val"]),
        },
        "leaks": {
            "test_images_with_train_val_duplicate": leaks["test"],
            "val_images_with_train_duplicate": leaks["val"],
        },
        "exact_duplicates": exact_entries,
        "near_duplicates": near_entries,
        # Every audited, readable image: lets evaluation derive de-duplicated subsets.
        "usable_images": {split: [r.path for r in records if r.split == split] for split in SPLITS},
        "pictures": {},
    }
    if pictures:
        audit["pictures"] = _draw(
            audit, records, pairs, root, out, hash_distance, max_pair_pictures
        )
    write_json_atomic(out / AUDIT_FILE, audit)
    return audit


def load_audit(path: str | Path) -> dict[str, Any]:
    """Read an audit.json (or the audit.json inside a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / AUDIT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AuditError(f"cannot read audit {path}: {exc}") from exc


def paths_without_duplicates(audit: dict[str, Any], split: str) -> set[str]:
    """Images of an evaluation split (relative paths) with no duplicate in an earlier split.

    test: no exact or near duplicate in train or val. val: none in train.
    """
    leak_keys = {
        "test": "test_images_with_train_val_duplicate",
        "val": "val_images_with_train_duplicate",
    }
    if split not in leak_keys:
        raise AuditError(f"duplicates are only removed from val or test, not {split!r}")
    try:
        usable = set(audit["usable_images"][split])
        leaked = set(audit["leaks"][leak_keys[split]])
    except (KeyError, TypeError) as exc:
        raise AuditError(f"not an audit produced by trainer.audit: missing {exc}") from exc
    return usable - leaked


def test_paths_without_duplicates(audit: dict[str, Any]) -> set[str]:
    """Test images (relative paths) with no exact or near duplicate in train or val."""
    return paths_without_duplicates(audit, "test")


# Not a pytest test, whatever its name says.
test_paths_without_duplicates.__test__ = False  # type: ignore[attr-defined]


def unreadable_paths(audit: dict[str, Any]) -> set[str]:
    """Relative paths of the images the audit could not decode (training must skip them)."""
    return {entry["path"] for entry in audit["unreadable"]["files"]}


# ---------------------------------------------------------------------------------------------
# Pictures


def _rank_pair(records: Sequence[ImageRecord], i: int, j: int, d: int) -> tuple:
    a, b = records[i], records[j]
    conflict = a.label != b.label
    cross = a.split != b.split
    # Conflicting labels, then cross-split, then the closest.
    return (not conflict, not cross, d, a.path)


def _pair_caption(records: Sequence[ImageRecord], i: int, j: int, d: int) -> dict[str, Any]:
    a, b = records[i], records[j]
    kind = "exact" if a.sha256 == b.sha256 else f"near d={d}"
    flags = [
        f for f, on in (("CONFLICT", a.label != b.label), ("CROSS-SPLIT", a.split != b.split)) if on
    ]
    return {
        "a": a.path,
        "b": b.path,
        "a_caption": f"{a.split}/{a.label}",
        "b_caption": f"{b.split}/{b.label}",
        "title": " ".join([kind, *flags]),
    }


def _representative_pairs(
    records: Sequence[ImageRecord],
    pairs: Sequence[tuple[int, int, int]],
    threshold: int,
) -> list[tuple[int, int, int]]:
    """One pair per duplicate group (its most telling one), most telling groups first."""
    within = [(i, j, d) for i, j, d in pairs if d <= threshold]
    group_of = {i: n for n, g in enumerate(components(len(records), within)) for i in g}
    best: dict[int, tuple[int, int, int]] = {}
    for i, j, d in within:
        g = group_of[i]
        if g not in best or _rank_pair(records, i, j, d) < _rank_pair(records, *best[g]):
            best[g] = (i, j, d)
    return sorted(best.values(), key=lambda p: _rank_pair(records, *p))


def _draw(
    audit: dict[str, Any],
    records: Sequence[ImageRecord],
    pairs: Sequence[tuple[int, int, int]],
    root: Path,
    out: Path,
    threshold: int,
    max_pairs: int,
) -> dict[str, str]:
    from trainer import plots  # matplotlib only when pictures are wanted

    drawn = {
        "class_distribution": plots.class_distribution(
            audit["counts"], audit["class_names"], out / "class_distribution.png"
        ),
        "samples_per_class": plots.sample_grid(
            _samples_per_class(records, audit["class_names"]), root, out / "samples_per_class.png"
        ),
    }
    chosen = _representative_pairs(records, pairs, threshold)
    drawn["duplicate_pairs"] = plots.image_pairs(
        [_pair_caption(records, *p) for p in chosen[:max_pairs]],
        root,
        out / "duplicate_pairs.png",
        title=(
            f"Duplicate groups: one pair each, {min(len(chosen), max_pairs)} of {len(chosen)} "
            f"(conflicting labels and cross-split first; pHash threshold {threshold})"
        ),
        empty_text="No exact or near duplicates found",
    )
    # The closest pairs the threshold rejects, to check it does not miss real duplicates.
    borderline = sorted((p for p in pairs if p[2] > threshold), key=lambda p: (p[2], p[0]))
    drawn["near_duplicate_borderline"] = plots.image_pairs(
        [_pair_caption(records, *p) for p in borderline[:max_pairs]],
        root,
        out / "near_duplicate_borderline.png",
        title=(
            f"Closest pairs NOT counted as duplicates (pHash distance {threshold + 1}"
            f"-{threshold + _BORDERLINE_MARGIN}), {min(len(borderline), max_pairs)} of "
            f"{len(borderline)}"
        ),
        empty_text=f"No pairs at pHash distance {threshold + 1}-{threshold + _BORDERLINE_MARGIN}",
    )
    return {name: path.name for name, path in drawn.items()}


def _samples_per_class(
    records: Sequence[ImageRecord], class_names: Sequence[str], per_class: int = 8
) -> dict[str, list[str]]:
    """The first few train images of each class (train is what the model learns from)."""
    chosen: dict[str, list[str]] = {name: [] for name in class_names}
    for preferred in SPLITS:
        for record in records:
            if record.split == preferred and len(chosen[record.label]) < per_class:
                chosen[record.label].append(record.path)
    return chosen

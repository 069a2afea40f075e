"""The audit's pictures: classes, sample images, one pair per duplicate group, and the
closest pairs the threshold leaves out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.audit.grouping import components, within
from trainer.audit.hashing import BORDERLINE_MARGIN, Pair
from trainer.audit.scanning import ImageRecord
from trainer.dataset import SPLITS
from trainer.run_folder import Audit

DEFAULT_MAX_PAIR_PICTURES = 24
SAMPLES_PER_CLASS = 8


def draw_pictures(
    audit: Audit,
    records: Sequence[ImageRecord],
    pairs: Sequence[Pair],
    root: Path,
    out: Path,
    max_pairs: int = DEFAULT_MAX_PAIR_PICTURES,
) -> dict[str, str]:
    """Draw every picture into `out`; returns their file names by picture name."""
    from trainer import plots  # matplotlib only when pictures are wanted

    threshold = audit.near_threshold
    drawn = {
        "class_distribution": plots.class_distribution(
            audit.counts, list(audit.class_names), out / "class_distribution.png"
        ),
        "samples_per_class": plots.sample_grid(
            samples_per_class(records, audit.class_names), root, out / "samples_per_class.png"
        ),
    }
    chosen = representative_pairs(records, pairs, threshold)
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
    far = threshold + BORDERLINE_MARGIN
    drawn["near_duplicate_borderline"] = plots.image_pairs(
        [_pair_caption(records, *p) for p in borderline[:max_pairs]],
        root,
        out / "near_duplicate_borderline.png",
        title=(
            f"Closest pairs NOT counted as duplicates (pHash distance {threshold + 1}-{far}), "
            f"{min(len(borderline), max_pairs)} of {len(borderline)}"
        ),
        empty_text=f"No pairs at pHash distance {threshold + 1}-{far}",
    )
    return {name: path.name for name, path in drawn.items()}


def _rank_pair(records: Sequence[ImageRecord], i: int, j: int, d: int) -> tuple:
    a, b = records[i], records[j]
    # Conflicting labels, then cross-split, then the closest.
    return (a.label == b.label, a.split == b.split, d, a.path)


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


def representative_pairs(
    records: Sequence[ImageRecord], pairs: Sequence[Pair], threshold: int
) -> list[Pair]:
    """One pair per duplicate group (its most telling one), most telling groups first."""
    kept = within(pairs, threshold)
    group_of = {i: n for n, g in enumerate(components(len(records), kept)) for i in g}
    best: dict[int, Pair] = {}
    for i, j, d in kept:
        g = group_of[i]
        if g not in best or _rank_pair(records, i, j, d) < _rank_pair(records, *best[g]):
            best[g] = (i, j, d)
    return sorted(best.values(), key=lambda p: _rank_pair(records, *p))


def samples_per_class(
    records: Sequence[ImageRecord], class_names: Sequence[str], per_class: int = SAMPLES_PER_CLASS
) -> dict[str, list[str]]:
    """The first few train images of each class (train is what the model learns from)."""
    chosen: dict[str, list[str]] = {name: [] for name in class_names}
    for preferred in SPLITS:
        for record in records:
            if record.split == preferred and len(chosen[record.label]) < per_class:
                chosen[record.label].append(record.path)
    return chosen

"""The audit's findings for people: counts, image facts, how duplicates were found, and
how many there are."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.audit.hashing import EXACT_HASH_DESCRIPTION, HASH_BITS, NEAR_HASH_DESCRIPTION
from trainer.audit.scanning import ImageRecord
from trainer.dataset import SPLITS
from trainer.run_folder import LEAK_KEYS, DuplicateGroup


def counts(class_names: Sequence[str], records: Sequence[ImageRecord]) -> dict[str, dict]:
    """Readable images per split and class."""
    found = {split: dict.fromkeys(class_names, 0) for split in SPLITS}
    for record in records:
        found[record.split][record.label] += 1
    return found


def totals(records: Sequence[ImageRecord]) -> dict[str, int]:
    return {split: sum(1 for r in records if r.split == split) for split in SPLITS}


def image_facts(records: Sequence[ImageRecord]) -> dict[str, Any]:
    """Sizes, colour modes and file formats of the readable images."""
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


def hashing(threshold: int, nearest: np.ndarray) -> dict[str, Any]:
    """How duplicates were found, and where each image's closest other image lies:
    duplicates form the low tail of that histogram."""
    histogram = Counter(min(int(d) // 8, 16) for d in nearest if d <= HASH_BITS)
    return {
        "exact": EXACT_HASH_DESCRIPTION,
        "near": NEAR_HASH_DESCRIPTION,
        "near_threshold": threshold,
        "near_threshold_of_bits": HASH_BITS,
        "near_rule": (
            f"two images are near duplicates when their pHash Hamming distance is <= "
            f"{threshold} of {HASH_BITS} bits; groups are connected components"
        ),
        "nearest_neighbour_distance_histogram": {
            (f"{8 * b}-{8 * b + 7}" if b < 16 else ">=128"): histogram[b] for b in range(17)
        },
    }


def _kind(groups: Sequence[DuplicateGroup]) -> dict[str, int]:
    return {
        "groups": len(groups),
        "images": sum(len(g.members) for g in groups),
        # Copies beyond the first of each group: what keeping one per group would remove.
        "redundant_images": sum(len(g.members) - 1 for g in groups),
        "cross_split_groups": sum(g.cross_split for g in groups),
        "conflicting_label_groups": sum(g.conflicting_labels for g in groups),
    }


def duplicates(
    exact: Sequence[DuplicateGroup],
    near: Sequence[DuplicateGroup],
    either: Sequence[DuplicateGroup],
    leaks: dict[str, tuple[str, ...]],
) -> dict[str, Any]:
    return {
        "exact": _kind(exact),
        "near": _kind(near),
        "any": _kind(either),
        **{key: len(leaks[split]) for split, key in LEAK_KEYS.items()},
    }

"""Dataset audit: counts, image facts, unreadable files and duplicates, before any training.

`run_audit` indexes the dataset with `trainer.dataset.load_dataset`, decodes every image once
with the shared `load_rgb` (so "unreadable" means exactly what training would choke on),
and writes `audit.json` (trainer.run_folder.Audit) plus pictures into the output folder.

Duplicates come in two kinds:
  exact  byte-identical files (SHA-256 of the file bytes);
  near   perceptually the same picture (256-bit pHash within a Hamming distance), e.g. the
         same photo re-encoded, resized or slightly recoloured.
A duplicate that spans splits leaks test or validation images into training and inflates
every score measured on them; one whose copies carry different labels is a labelling error.
All paths in audit.json are POSIX paths relative to the dataset root, and the dataset root
is relative to the folder audit.json is in.

The work is split by concern: hashing (fingerprints), scanning (reading the files),
grouping (duplicate groups and leaks), summary (findings for people), pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from trainer.audit import grouping, summary
from trainer.audit.hashing import (
    BORDERLINE_MARGIN,
    DEFAULT_HASH_DISTANCE,
    HASH_BITS,
    Pair,
    hamming_pairs,
)
from trainer.audit.pictures import DEFAULT_MAX_PAIR_PICTURES, draw_pictures
from trainer.audit.scanning import ImageRecord, relative_path, scan
from trainer.dataset import SPLITS, Dataset, load_dataset
from trainer.errors import TrainerError
from trainer.run_folder import Audit, relative_data_dir, write_audit

__all__ = [
    "DEFAULT_HASH_DISTANCE",
    "AuditError",
    "AuditFindings",
    "audit_dataset",
    "run_audit",
]


class AuditError(TrainerError):
    """The audit cannot run with these arguments; the message says why."""


@dataclass(frozen=True)
class AuditFindings:
    """The audit, and what its pictures are drawn from."""

    audit: Audit
    records: list[ImageRecord]
    pairs: list[Pair]  # every pair within the threshold plus the borderline margin


def audit_dataset(
    dataset: Dataset, hash_distance: int = DEFAULT_HASH_DISTANCE, workers: int | None = None
) -> AuditFindings:
    """Audit an indexed dataset; reads its images and writes nothing."""
    if not 0 <= hash_distance <= HASH_BITS:
        raise AuditError(f"hash distance must be between 0 and {HASH_BITS}, got {hash_distance}")
    records, unreadable = scan(dataset, workers)
    hashes = np.array([r.phash for r in records], dtype=bool).reshape(-1, HASH_BITS)
    pairs, nearest = hamming_pairs(hashes, hash_distance + BORDERLINE_MARGIN)
    exact = grouping.exact_groups(records)
    near = grouping.near_groups(records, pairs, hash_distance)
    either = grouping.any_groups(records, pairs, hash_distance)
    leaks = grouping.leaks(either)
    root = dataset.root
    non_images = [p for split in SPLITS for p in dataset.splits[split].skipped_non_images]
    nested = [p for split in SPLITS for p in dataset.splits[split].nested_images]
    audit = Audit(
        dataset_root=root.as_posix(),  # as given; run_audit makes it relative to its report
        class_names=tuple(dataset.class_names),
        # Every audited, readable image: lets evaluation derive de-duplicated subsets.
        usable_images={s: tuple(r.path for r in records if r.split == s) for s in SPLITS},
        unreadable=tuple(unreadable),
        leaks=leaks,
        hashing=summary.hashing(hash_distance, nearest),
        exact_duplicates=tuple(exact),
        near_duplicates=tuple(near),
        non_image_files=tuple(relative_path(p, root) for p in non_images),
        nested_images=tuple(relative_path(p, root) for p in nested),
        counts=summary.counts(dataset.class_names, records),
        totals=summary.totals(records),
        images=summary.image_facts(records),
        summary=summary.duplicates(exact, near, either, leaks),
    )
    return AuditFindings(audit, records, pairs)


def run_audit(
    dataset_root: str | Path,
    out_dir: str | Path,
    hash_distance: int = DEFAULT_HASH_DISTANCE,
    *,
    max_pair_pictures: int = DEFAULT_MAX_PAIR_PICTURES,
    pictures: bool = True,
    workers: int | None = None,
) -> Audit:
    """Audit the dataset at `dataset_root`; write audit.json (and pictures) into `out_dir`.

    hash_distance: largest pHash Hamming distance (of 256 bits) that counts as a near
        duplicate. Raises AuditError for a value outside 0..256 and DatasetError (from
        `load_dataset`) for a folder that is not a dataset. Unreadable images are listed and
        excluded, never fatal. Returns what it wrote to audit.json, as the typed record.
    """
    dataset = load_dataset(dataset_root)
    findings = audit_dataset(dataset, hash_distance, workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Relative to the folder audit.json lands in: reports travel, and keep no path of this
    # machine even when the dataset was typed as an absolute path.
    audit = replace(findings.audit, dataset_root=relative_data_dir(dataset.root, out))
    if pictures:
        drawn = draw_pictures(
            audit, findings.records, findings.pairs, dataset.root, out, max_pair_pictures
        )
        audit = replace(audit, pictures=drawn)
    write_audit(out, audit)
    return audit

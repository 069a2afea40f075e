"""Duplicate groups from fingerprints: exact (same bytes) and near (close pHash), and the
evaluation images they leak into training."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from trainer.audit.hashing import Pair
from trainer.audit.scanning import ImageRecord
from trainer.dataset import SPLITS
from trainer.run_folder import DuplicateGroup, GroupMember


def components(n: int, edges: Iterable[Pair]) -> list[list[int]]:
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


def within(pairs: Iterable[Pair], threshold: int) -> list[Pair]:
    return [(i, j, d) for i, j, d in pairs if d <= threshold]


def _member_order(records: Sequence[ImageRecord]):
    return lambda i: (SPLITS.index(records[i].split), records[i].path)


def _members(records: Sequence[ImageRecord], indices: Sequence[int]) -> tuple[GroupMember, ...]:
    return tuple(
        GroupMember(records[i].path, records[i].split, records[i].label, records[i].sha256)
        for i in indices
    )


def exact_groups(records: Sequence[ImageRecord]) -> list[DuplicateGroup]:
    """Byte-identical files, ordered by split then path."""
    by_sha: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_sha.setdefault(record.sha256, []).append(i)
    order = _member_order(records)
    groups = sorted(
        (sorted(g, key=order) for g in by_sha.values() if len(g) > 1), key=lambda g: order(g[0])
    )
    return [
        DuplicateGroup(f"exact-{n + 1}", _members(records, g), sha256=records[g[0]].sha256)
        for n, g in enumerate(groups)
    ]


def near_groups(
    records: Sequence[ImageRecord], pairs: Iterable[Pair], threshold: int
) -> list[DuplicateGroup]:
    """Duplicate groups (pHash within `threshold`) that hold more than one distinct file.

    Groups are connected components, so A~B and B~C put A, B and C together. Byte-identical
    copies always hash alike, so an exact group either stands alone (reported as exact only)
    or sits inside one of these. Each records the largest edge distance inside it.
    """
    kept = within(pairs, threshold)
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
    return [
        DuplicateGroup(f"near-{n + 1}", _members(records, g), max_distance=max_distance[n])
        for n, g in enumerate(groups)
    ]


def any_groups(
    records: Sequence[ImageRecord], pairs: Iterable[Pair], threshold: int
) -> list[DuplicateGroup]:
    """Exact and near together, each image counted once: what de-duplication would touch."""
    return [
        DuplicateGroup(f"any-{n + 1}", _members(records, g))
        for n, g in enumerate(components(len(records), within(pairs, threshold)))
    ]


def leaks(groups: Iterable[DuplicateGroup]) -> dict[str, tuple[str, ...]]:
    """Evaluation images whose duplicate sits in an earlier split (val<-train, test<-train/val)."""
    leaked: dict[str, set[str]] = {"val": set(), "test": set()}
    for group in groups:
        splits = set(group.splits)
        for member in group.members:
            if member.split == "test" and splits & {"train", "val"}:
                leaked["test"].add(member.path)
            if member.split == "val" and "train" in splits:
                leaked["val"].add(member.path)
    return {split: tuple(sorted(paths)) for split, paths in leaked.items()}

"""audit/audit.json: the dataset audit's findings (trainer.audit computes and writes them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from desktop.core.wording import plural
from trainer.dataset import SPLITS
from trainer.files import write_json_atomic
from trainer.run_folder.json_object import JsonObject, RunFolderError, read_record

AUDIT_DIR = "audit"
AUDIT_FILE = "audit.json"
AUDIT_VERSION = 1


@dataclass(frozen=True)
class UnreadableFile:
    path: str  # relative to the dataset root, POSIX
    split: str
    label: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "split": self.split, "label": self.label, "reason": self.reason}


@dataclass(frozen=True)
class GroupMember:
    path: str
    split: str
    label: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "split": self.split, "label": self.label, "sha256": self.sha256}


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are copies of one another: byte-identical (exact, with their `sha256`) or
    perceptually the same (near, with the largest pHash distance inside the group)."""

    id: str
    members: tuple[GroupMember, ...]
    sha256: str | None = None  # exact groups
    max_distance: int | None = None  # near groups

    @property
    def splits(self) -> list[str]:
        present = {m.split for m in self.members}
        return [s for s in SPLITS if s in present]

    @property
    def labels(self) -> list[str]:
        return sorted({m.label for m in self.members})

    @property
    def cross_split(self) -> bool:
        return len(self.splits) > 1

    @property
    def conflicting_labels(self) -> bool:
        """The same picture filed under two classes: a labelling error."""
        return len(self.labels) > 1

    def to_json(self) -> dict[str, Any]:
        kind = {"sha256": self.sha256} if self.sha256 is not None else {}
        if self.max_distance is not None:
            kind["max_distance"] = self.max_distance
        return {
            "id": self.id,
            **kind,
            "size": len(self.members),
            "splits": self.splits,
            "labels": self.labels,
            "cross_split": self.cross_split,
            "conflicting_labels": self.conflicting_labels,
            "members": [m.to_json() for m in self.members],
        }


# The audit.json key of each evaluation split's leaked images.
LEAK_KEYS = {
    "test": "test_images_with_train_val_duplicate",
    "val": "val_images_with_train_duplicate",
}


@dataclass(frozen=True)
class Audit:
    """audit.json. Evaluation reads the typed fields and `near_threshold`; `hashing`,
    `counts`, `totals`, `images` and `summary` are otherwise findings for people, kept as
    the JSON the audit writes."""

    dataset_root: str
    class_names: tuple[str, ...]
    usable_images: dict[str, tuple[str, ...]]  # split -> every readable image, relative
    unreadable: tuple[UnreadableFile, ...]
    # Evaluation images with a duplicate in an earlier split (val: train, test: train/val).
    leaks: dict[str, tuple[str, ...]]
    hashing: dict[str, Any]  # how duplicates were found; "near_threshold" in pHash bits
    exact_duplicates: tuple[DuplicateGroup, ...] = ()
    near_duplicates: tuple[DuplicateGroup, ...] = ()
    non_image_files: tuple[str, ...] = ()
    nested_images: tuple[str, ...] = ()  # in sub-folders of a class folder: left out
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    pictures: dict[str, str] = field(default_factory=dict)  # name -> file in the audit folder

    def warnings(self) -> list[str]:
        """What a person must hear before training on this dataset."""
        found = []
        if len(self.class_names) < 2:  # fit refuses it: nothing to tell apart
            found.append(
                f"only one class ({', '.join(self.class_names)}): a classifier needs at "
                "least two class folders, and fit refuses fewer"
            )
        found += [
            f"{split}: no readable image of {', '.join(empty)}"
            for split, per_class in self.counts.items()
            if (empty := [name for name, count in per_class.items() if count == 0])
        ]
        if self.nested_images:
            found.append(
                f"{len(self.nested_images)} image(s) in sub-folders of class folders were left "
                f"out (first: {self.nested_images[0]}); move them into a class folder"
            )
        if self.unreadable:
            found.append(
                f"{len(self.unreadable)} unreadable image(s) excluded "
                f"(first: {self.unreadable[0].path}: {self.unreadable[0].reason})"
            )
        return found

    def findings(self) -> str:
        """The audit in one line, for the person who ran it."""
        sizes = " · ".join(f"{split} {len(paths):,}" for split, paths in self.usable_images.items())
        total = sum(len(paths) for paths in self.usable_images.values())
        copies = [f"{len(self.leaks[s])} {s}" for s in ("val", "test") if self.leaks.get(s)]
        line = (
            f"{total:,} readable images ({sizes}); {len(self.exact_duplicates)} groups of "
            f"exact and {len(self.near_duplicates)} of near duplicates"
        )
        if copies:
            line += (
                f"; {' and '.join(copies)} images have a copy in an earlier split "
                "(the de-duplicated accuracy leaves them out)"
            )
        if self.non_image_files:
            line += f"; {plural(len(self.non_image_files), 'non-image file')} ignored"
        return line

    @property
    def near_threshold(self) -> int:
        """The largest pHash distance (of 256 bits) counted as a near duplicate."""
        return self.hashing["near_threshold"]

    def known_paths(self, split: str) -> set[str]:
        """Every image of `split` the audit saw, readable or not."""
        unreadable = {u.path for u in self.unreadable if u.split == split}
        return set(self.usable_images.get(split, ())) | unreadable

    def paths_without_duplicates(self, split: str) -> set[str]:
        """Readable images of an evaluation split with no duplicate in an earlier split."""
        if split not in LEAK_KEYS:
            raise ValueError(f"duplicates are only removed from val or test, not {split!r}")
        return set(self.usable_images.get(split, ())) - set(self.leaks.get(split, ()))

    def to_json(self) -> dict[str, Any]:
        return {
            "audit_version": AUDIT_VERSION,
            "dataset_root": self.dataset_root,
            "class_names": list(self.class_names),
            "counts": self.counts,
            "totals": self.totals,
            "images": self.images,
            "non_image_files": {
                "count": len(self.non_image_files),
                "paths": list(self.non_image_files),
            },
            "unreadable": {
                "count": len(self.unreadable),
                "files": [u.to_json() for u in self.unreadable],
            },
            "hashing": self.hashing,
            "summary": self.summary,
            "leaks": {key: list(self.leaks.get(split, ())) for split, key in LEAK_KEYS.items()},
            "exact_duplicates": [g.to_json() for g in self.exact_duplicates],
            "near_duplicates": [g.to_json() for g in self.near_duplicates],
            "usable_images": {split: list(paths) for split, paths in self.usable_images.items()},
            "pictures": self.pictures,
            # Only when there are any: audits written before this key read back unchanged.
            **(
                {
                    "nested_images": {
                        "count": len(self.nested_images),
                        "paths": list(self.nested_images),
                    }
                }
                if self.nested_images
                else {}
            ),
        }

    @classmethod
    def from_json(cls, value: Any, where: str = AUDIT_FILE) -> Audit:
        obj = JsonObject(value, where)
        version = obj.required("audit_version", int, "a whole number")
        if version != AUDIT_VERSION:
            raise RunFolderError(f"{where}: audit_version {version} is not {AUDIT_VERSION}")
        hashing = JsonObject(obj.required("hashing", dict, "a JSON object"), f"{where}: hashing")
        hashing.required("near_threshold", int, "a whole number")
        leaks = JsonObject(obj.required("leaks", dict, "a JSON object"), f"{where}: leaks")
        return cls(
            dataset_root=obj.required("dataset_root", str, "a folder path"),
            class_names=obj.strings("class_names", required=True),
            usable_images=_split_paths(obj, "usable_images"),
            unreadable=tuple(
                UnreadableFile(**_entry(f, f"{where}: unreadable", UnreadableFile))
                for f in _section_list(obj, "unreadable", "files")
            ),
            leaks={split: leaks.strings(key, required=True) for split, key in LEAK_KEYS.items()},
            hashing=hashing.value,
            exact_duplicates=_groups(obj, "exact_duplicates"),
            near_duplicates=_groups(obj, "near_duplicates"),
            non_image_files=tuple(_section_list(obj, "non_image_files", "paths")),
            nested_images=tuple(_section_list(obj, "nested_images", "paths")),
            counts=obj.object("counts") or {},
            totals=obj.object("totals") or {},
            images=obj.object("images") or {},
            summary=obj.object("summary") or {},
            pictures=obj.object("pictures") or {},
        )


def _split_paths(obj: JsonObject, key: str) -> dict[str, tuple[str, ...]]:
    splits = JsonObject(obj.required(key, dict, "a JSON object"), f"{obj.where}: {key}")
    return {split: splits.strings(split, required=True) for split in splits.value}


def _section_list(obj: JsonObject, key: str, inner: str) -> list[Any]:
    """The list under `key`.`inner` (e.g. unreadable.files); empty when there is none."""
    section = obj.object(key)
    if section is None:
        return []
    return JsonObject(section, f"{obj.where}: {key}").optional(inner, list, "a list") or []


def _entry(value: Any, where: str, record: type) -> dict[str, Any]:
    """The string fields of the dataclass `record`, from one JSON object."""
    entry = JsonObject(value, where)
    return {f.name: entry.required(f.name, str, "a string") for f in dataclass_fields(record)}


def _groups(obj: JsonObject, key: str) -> tuple[DuplicateGroup, ...]:
    groups = []
    for value in obj.optional(key, list, "a list of groups") or []:
        group = JsonObject(value, f"{obj.where}: {key}")
        members = group.required("members", list, "a list of images")
        groups.append(
            DuplicateGroup(
                id=group.required("id", str, "a string"),
                members=tuple(
                    GroupMember(**_entry(m, f"{group.where} member", GroupMember)) for m in members
                ),
                sha256=group.optional("sha256", str, "a string"),
                max_distance=group.optional("max_distance", int, "a whole number"),
            )
        )
    return tuple(groups)


def audit_folder(run_folder: Path) -> Path:
    """Where a run keeps its dataset audit."""
    return Path(run_folder) / AUDIT_DIR


def read_audit(folder: Path) -> Audit | None:
    """The audit.json in `folder` (an audit folder, e.g. `audit_folder(run)`)."""
    return read_record(Path(folder) / AUDIT_FILE, Audit.from_json)


def write_audit(folder: Path, audit: Audit) -> None:
    write_json_atomic(Path(folder) / AUDIT_FILE, audit.to_json())

"""Find the splits, classes and image files of a dataset folder.

Layout: DATA/{train,val|validation,test}/<class name>/<image files>, split names in any
letter case. Class labels are the class folder names, sorted, so index i always means the
same class in every split and in the exported model. Only the files directly inside a class
folder are its samples: a sub-folder (`Battery/old/Mouse_backup/m.jpg`) may hold anything,
so its images are listed as `nested_images` and left out, never taken as that class.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from desktop.core.preprocessing import is_supported_image
from trainer.errors import TrainerError

SPLIT_ALIASES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
SPLITS = ("train", "val", "test")


class DatasetError(TrainerError):
    """The dataset folder cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class Split:
    name: str
    root: Path
    samples: list[Sample] = field(default_factory=list)
    skipped_non_images: list[Path] = field(default_factory=list)
    nested_images: list[Path] = field(default_factory=list)  # in sub-folders: left out


@dataclass
class Dataset:
    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, Split]

    def paths(self, split: str) -> list[Path]:
        return [s.path for s in self.splits[split].samples]

    def labels(self, split: str) -> list[int]:
        return [s.label for s in self.splits[split].samples]

    def empty_classes(self, split: str) -> list[str]:
        """Classes with no image file in `split` (a class that cannot be learnt or scored)."""
        labels = set(self.labels(split))
        return [name for label, name in enumerate(self.class_names) if label not in labels]


def find_split_dirs(root: Path) -> dict[str, Path]:
    """Map canonical split names to their folders; raise DatasetError if any is missing."""
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        canonical = SPLIT_ALIASES.get(child.name.lower())
        if canonical and child.is_dir():
            if canonical in found:
                raise DatasetError(
                    f"two folders for the {canonical} split: {found[canonical]}, {child}"
                )
            found[canonical] = child
    missing = [s for s in SPLITS if s not in found]
    if missing:
        raise DatasetError(
            f"{root} has no {', '.join(missing)} split folder "
            "(expected train/, val/ or validation/, and test/, in any letter case)"
        )
    return found


def load_dataset(root: str | Path) -> Dataset:
    """Index every split; the class set must be the same in each, else DatasetError."""
    root = Path(root)
    split_dirs = find_split_dirs(root)
    classes_per_split = {
        name: sorted(
            p.name for p in folder.iterdir() if p.is_dir() and not _is_hidden(Path(p.name))
        )
        for name, folder in split_dirs.items()
    }
    reference = classes_per_split["train"]
    if not reference:
        raise DatasetError(f"{split_dirs['train']} has no class folders")
    every_class = set().union(*classes_per_split.values())
    missing = {
        name: sorted(every_class - set(classes))
        for name, classes in classes_per_split.items()
        if set(classes) != every_class
    }
    if missing:
        details = _unicode_forms(classes_per_split)  # first: it explains what follows
        details += [f"missing from {name}: {', '.join(names)}" for name, names in missing.items()]
        raise DatasetError("the class folders differ between splits; " + "; ".join(details))
    splits = {}
    for name, folder in split_dirs.items():
        split = Split(name=name, root=folder)
        for label, class_name in enumerate(reference):
            for path in sorted((folder / class_name).rglob("*")):
                if not _file_or_broken_link(path) or _is_hidden(path.relative_to(folder)):
                    continue
                if not is_supported_image(path):
                    split.skipped_non_images.append(path)
                elif path.parent != folder / class_name:
                    split.nested_images.append(path)
                else:
                    split.samples.append(Sample(path, label))
        splits[name] = split
    return Dataset(root=root, class_names=tuple(reference), splits=splits)


def _unicode_forms(classes_per_split: dict[str, list[str]]) -> list[str]:
    """Names that look the same but are spelt in other Unicode forms in different splits
    (a folder copied from a Mac keeps "à" as "a" + an accent: NFD, not NFC): said plainly,
    or "missing from test: X; missing from train: X" names one folder twice."""
    spellings: dict[str, dict[str, list[str]]] = {}  # NFC name -> spelling -> splits
    for split, names in classes_per_split.items():
        for name in names:
            forms = spellings.setdefault(unicodedata.normalize("NFC", name), {})
            forms.setdefault(name, []).append(split)
    return [
        f"{shown} is spelt in {len(forms)} Unicode forms, the same letters stored as other "
        "characters ("
        + "; ".join(f"{', '.join(splits)}: {_form(name)}" for name, splits in forms.items())
        + "): rename its folders so that every split spells it alike"
        for shown, forms in spellings.items()
        if len(forms) > 1
    ]


def _form(name: str) -> str:
    for form in ("NFC", "NFD"):
        if unicodedata.is_normalized(form, name):
            return form
    return "mixed"


def _file_or_broken_link(path: Path) -> bool:
    """A file, or a link whose target is gone: an image the audit then lists as unreadable,
    not one left out unsaid. Never a folder, a pipe or a device (reading one could block)."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def _is_hidden(path: Path) -> bool:
    """Tool and OS clutter inside the dataset (.ipynb_checkpoints, __MACOSX, ._photo.jpg)
    is not data; `path` is relative to a split folder."""
    return any(part.startswith((".", "__")) for part in path.parts)

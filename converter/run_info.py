"""What the trainer left next to a model: run.json, metrics.json and the dataset splits.

Everything here is optional for a user's own model: a missing run.json only means the class
names must come from --classes and there is no test split to check against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converter.errors import ConvertError
from desktop.core.preprocessing import is_supported_image
from trainer.config import recorded_resize

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class RunInfo:
    run_dir: Path
    run: dict[str, Any] | None  # run.json, None when there is none
    metrics: dict[str, Any] | None  # metrics.json, None when there is none

    @property
    def data_dir(self) -> Path | None:
        value = (self.run or {}).get("data_dir")
        return Path(value) if value else None

    @property
    def resize(self) -> str:
        return recorded_resize(self.run)

    @property
    def image_size(self) -> tuple[int, int] | None:
        value = (self.run or {}).get("image_size")
        if value is None:
            return None
        try:  # the trainer writes [H, W]
            height, width = (int(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ConvertError(f"{self.run_dir / RUN_FILE}: bad image_size {value!r}") from exc
        return (height, width)


def read_run_info(model_path: Path) -> RunInfo:
    run_dir = model_path.resolve().parent
    return RunInfo(
        run_dir=run_dir,
        run=_read_json(run_dir / RUN_FILE),
        metrics=_read_json(run_dir / METRICS_FILE),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConvertError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise ConvertError(f"{path} is not a JSON object")
    return value


def resolve_class_names(info: RunInfo, classes_arg: str | None, num_outputs: int) -> list[str]:
    """Class names from --classes, else run.json; their count must match the model output."""
    if classes_arg is not None:
        names = [name.strip() for name in classes_arg.split(",")]
        source = "--classes"
    elif info.run is not None and "class_names" in info.run:
        names = info.run["class_names"]
        source = str(info.run_dir / RUN_FILE)
    else:
        raise ConvertError(
            f"no class names: there is no {RUN_FILE} with class_names next to the model; "
            "pass --classes A,B,C"
        )
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConvertError(f"class names from {source} must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ConvertError(f"class names from {source} are not distinct: {names!r}")
    if len(names) != num_outputs:
        raise ConvertError(
            f"{len(names)} class names from {source} but the model outputs {num_outputs} "
            "probabilities"
        )
    return names


def recorded_metrics(info: RunInfo) -> dict[str, float] | None:
    """Validation and test accuracy and loss from metrics.json (those it has), for the model
    metadata."""
    picked = {}
    for split in ("val", "test"):
        result = (info.metrics or {}).get(split)
        if isinstance(result, dict):
            picked.update(
                {
                    f"{split}_{key}": float(result[key])
                    for key in ("accuracy", "loss")
                    if isinstance(result.get(key), int | float)
                }
            )
    return picked or None


@dataclass(frozen=True)
class LabelledImages:
    """Image files with their class index (index into the model's class names)."""

    source: str
    paths: list[Path]
    labels: list[int]


def dataset_split(info: RunInfo, split: str, class_names: list[str]) -> LabelledImages | None:
    """One split of run.json's dataset, or None when the folder is not on this machine.

    Uses the trainer's own indexer, so labels are numbered exactly as in training.
    """
    data_dir = info.data_dir
    if data_dir is None or not data_dir.is_dir():
        return None
    # Imported here: the trainer package is only needed when a dataset is at hand.
    from trainer.dataset import DatasetError, load_dataset

    try:
        dataset = load_dataset(data_dir)
    except DatasetError as exc:
        raise ConvertError(f"dataset {data_dir} from {RUN_FILE}: {exc}") from exc
    if list(dataset.class_names) != list(class_names):
        raise ConvertError(
            f"the class folders of {data_dir} ({', '.join(dataset.class_names)}) do not match "
            f"the model's class names ({', '.join(class_names)})"
        )
    return LabelledImages(
        source=f"{split} split of {data_dir}",
        paths=dataset.paths(split),
        labels=dataset.labels(split),
    )


def images_in_folder(folder: Path) -> list[Path]:
    """Every image file under `folder` (recursively), sorted."""
    if not folder.is_dir():
        raise ConvertError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and is_supported_image(p))
    if not paths:
        raise ConvertError(f"no image files in {folder}")
    return paths

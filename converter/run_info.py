"""What the trainer left next to a model: run.json, metrics.json and the dataset splits.

Everything here is optional for a user's own model: a missing run.json only means the class
names must come from --classes and there is no validation split to check against.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from converter.errors import ConvertError
from desktop.core.preprocessing import is_supported_image
from trainer.run_folder import (
    RUN_FILE,
    Metrics,
    RunFolderError,
    RunRecord,
    read_metrics,
    read_run,
    relative_data_dir,
)


@dataclass(frozen=True)
class RunInfo:
    run_dir: Path
    run: RunRecord | None  # run.json, None when there is none
    metrics: Metrics | None  # metrics.json, None when there is none
    resize_given: str | None = None  # export --resize, for a model without run.json

    @property
    def data_dir(self) -> Path | None:
        return self.run.data_folder(self.run_dir) if self.run else None

    @property
    def resize(self) -> str:
        if self.run is not None:
            return self.run.resize
        if self.resize_given is None:
            raise ConvertError(NO_RESIZE)
        return self.resize_given

    @property
    def image_size(self) -> tuple[int, int] | None:
        return self.run.image_size if self.run else None


NO_RESIZE = (
    f"there is no {RUN_FILE} next to the model to say how it resized its images: pass "
    "--resize stretch or --resize letterbox, the mode it was trained with"
)


def with_resize(info: RunInfo, resize: str | None) -> RunInfo:
    """`info` with export's --resize, which only stands in for a missing run.json: a guess
    would put the wrong mode in the metadata, and parity (which follows the metadata on both
    sides) could not notice."""
    if info.run is None:
        if resize is None:
            raise ConvertError(NO_RESIZE)
        return replace(info, resize_given=resize)
    if resize is not None and resize != info.run.resize:
        raise ConvertError(
            f"--resize {resize} contradicts {RUN_FILE}, whose run resized with "
            f"{info.run.resize}: leave --resize out"
        )
    return info


def read_run_info(model_path: Path) -> RunInfo:
    run_dir = model_path.resolve().parent
    try:
        return RunInfo(run_dir=run_dir, run=read_run(run_dir), metrics=read_metrics(run_dir))
    except RunFolderError as exc:
        raise ConvertError(str(exc)) from exc


def resolve_class_names(info: RunInfo, classes_arg: str | None, num_outputs: int) -> list[str]:
    """Class names from --classes, else run.json; their count must match the model output.

    --classes may repeat run.json's names but never differ: output i is the class the run
    trained as i, and other names or another order would relabel every prediction.
    """
    recorded = list(info.run.class_names) if info.run and info.run.class_names else None
    if classes_arg is not None:
        names = [name.strip() for name in classes_arg.split(",")]
        source = "--classes"
    elif recorded is not None:
        names = recorded
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
    if recorded is not None and names != recorded:
        raise ConvertError(
            f"--classes {', '.join(names)} differs from the class names the model was trained "
            f"with ({', '.join(recorded)}, in {RUN_FILE}): leave --classes out"
        )
    return names


def recorded_metrics(info: RunInfo) -> dict[str, float] | None:
    """Validation and test accuracy and loss from metrics.json (those it has), for the model
    metadata."""
    if info.metrics is None:
        return None
    picked = {}
    for split in ("val", "test"):
        for name, value in (
            ("accuracy", info.metrics.accuracy(split)),
            ("loss", info.metrics.loss(split)),
        ):
            if value is not None:
                picked[f"{split}_{name}"] = value
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
        # Relative to the run folder: the report travels, this machine's path must not.
        source=f"{split} split of {relative_data_dir(data_dir, info.run_dir)}",
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

"""run.json: what a run was."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainer.files import write_json_atomic
from trainer.run_folder.json_object import JsonObject, read_record

RUN_FILE = "run.json"
# Runs recorded before the resize setting existed stretched their images.
RESIZE_BEFORE_THE_SETTING = "stretch"


@dataclass(frozen=True)
class RunRecord:
    """run.json: what a run was. `weights` and `init_from` stay the JSON objects the trainer
    writes (trainer.weights.WeightsSource.to_dict, trainer.fit.init_from_record): they
    travel as they are into the ONNX metadata, and older runs wrote other keys in them."""

    class_names: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None  # (height, width)
    data_dir: str | None = None  # relative to the run folder (older runs: absolute)
    config: dict[str, Any] | None = None  # trainer.config.TrainConfig.to_dict()
    weights: dict[str, Any] | None = None
    init_from: dict[str, Any] | None = None  # the earlier model a warm restart began from
    soup: dict[str, Any] | None = None  # a weight average's ingredients (trainer.soup)
    versions: dict[str, str] | None = None
    started: str | None = None  # ISO 8601, UTC
    command: str | None = None

    @property
    def resize(self) -> str:
        return (self.config or {}).get("resize", RESIZE_BEFORE_THE_SETTING)

    def data_folder(self, run_dir: Path) -> Path | None:
        """The dataset folder on this machine, whatever the working directory."""
        if not self.data_dir:
            return None
        # Joining keeps an older record's absolute path as it is.
        return Path(os.path.normpath(Path(run_dir).resolve() / self.data_dir))

    def moved(self, run_dir: Path, to: Path) -> RunRecord:
        """This record, read from `run_dir`, with data_dir relative to the folder `to`
        (older runs recorded an absolute path)."""
        folder = self.data_folder(run_dir)
        if folder is None:
            return self
        return replace(self, data_dir=relative_data_dir(folder, to))

    def to_json(self) -> dict[str, Any]:
        record = {
            "class_names": None if self.class_names is None else list(self.class_names),
            "image_size": None if self.image_size is None else list(self.image_size),
            "data_dir": self.data_dir,
            "config": self.config,
            "weights": self.weights,
            "init_from": self.init_from,
            "versions": self.versions,
            "started": self.started,
            "command": self.command,
        }
        if self.soup is not None:  # only a soup's run.json has the key
            record["soup"] = self.soup
        return record

    @classmethod
    def from_json(cls, value: Any, where: str = RUN_FILE) -> RunRecord:
        obj = JsonObject(value, where)
        size = obj.optional("image_size", list, "[height, width]")
        if size is not None:
            if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
                raise obj.fail("image_size", "[height, width]")
            size = (size[0], size[1])
        return cls(
            class_names=obj.strings("class_names"),
            image_size=size,
            data_dir=obj.optional("data_dir", str, "a folder path"),
            config=obj.object("config"),
            weights=obj.object("weights"),
            init_from=obj.object("init_from"),
            soup=obj.object("soup"),
            versions=obj.object("versions"),
            started=obj.optional("started", str, "a date"),
            command=obj.optional("command", str, "a command line"),
        )


def relative_data_dir(data_dir: Path, run_dir: Path) -> str:
    """`data_dir` relative to the run folder: run.json and the reports travel to other
    machines, and a relative path still finds the dataset beside the run from any cwd."""
    data_dir, run_dir = Path(data_dir).resolve(), Path(run_dir).resolve()
    try:
        return Path(os.path.relpath(data_dir, run_dir)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return data_dir.as_posix()


def read_run(folder: Path) -> RunRecord | None:
    return read_record(Path(folder) / RUN_FILE, RunRecord.from_json)


def write_run(folder: Path, record: RunRecord) -> None:
    write_json_atomic(Path(folder) / RUN_FILE, record.to_json())

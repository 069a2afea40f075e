"""What training leaves: state.json (resumable), history.json and the model files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.files import write_json_atomic
from trainer.run_folder.json_object import JsonObject, read_record

MODEL_FILE = "model.keras"  # the final model (best weights): what the converter exports
STATE_FILE = "state.json"
HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class History:
    """Per-epoch values by Keras metric name (loss, accuracy, val_loss, val_accuracy, ...),
    plus learning_rate and seconds."""

    series: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return max((len(values) for values in self.series.values()), default=0)

    def appended(self, values: Mapping[str, float]) -> History:
        """This history with one more epoch's values."""
        series = dict(self.series)
        for key, value in values.items():
            series[key] = (*series.get(key, ()), float(value))
        return History(series)

    def to_json(self) -> dict[str, list[float]]:
        return {key: list(values) for key, values in self.series.items()}

    @classmethod
    def from_json(cls, value: Any, where: str = HISTORY_FILE) -> History:
        obj = JsonObject(value, where)
        series = {}
        for key, values in obj.value.items():
            if not isinstance(values, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            ):
                raise obj.fail(key, "a list of numbers")
            series[str(key)] = tuple(float(v) for v in values)
        return cls(series)


def read_history(folder: Path) -> History | None:
    return read_record(Path(folder) / HISTORY_FILE, History.from_json)


def write_history(folder: Path, history: History) -> None:
    write_json_atomic(Path(folder) / HISTORY_FILE, history.to_json())


@dataclass(frozen=True)
class TrainingState:
    """state.json: what a resumed run needs. It names the checkpoint and best-weights files
    that belong to it; written last in an epoch, it is the epoch's commit point."""

    epochs_done: int = 0
    history: History = field(default_factory=History)
    best: float | None = None  # the monitored metric's best value
    wait: int = 0  # epochs since it last improved
    best_epoch: int | None = None
    best_file: str | None = None
    checkpoint: str | None = None
    stopped_early: bool = False
    train_seconds: float | None = None  # set when training has finished
    # The model's random-number states (its dropout's) after the epoch: Keras saves none in
    # a checkpoint, and a resumed run must drop what an unstopped one would.
    random_states: tuple[tuple[int, ...], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "epochs_done": self.epochs_done,
            "history": self.history.to_json(),
            "best": self.best,
            "wait": self.wait,
            "best_epoch": self.best_epoch,
            "best_file": self.best_file,
            "checkpoint": self.checkpoint,
            "stopped_early": self.stopped_early,
            "train_seconds": self.train_seconds,
            "random_states": [list(s) for s in self.random_states],
        }

    @classmethod
    def from_json(cls, value: Any, where: str = STATE_FILE) -> TrainingState:
        obj = JsonObject(value, where)
        return cls(
            epochs_done=obj.optional("epochs_done", int, "a whole number") or 0,
            history=History.from_json(obj.object("history") or {}, f"{where}: history"),
            best=obj.number("best"),
            wait=obj.optional("wait", int, "a whole number") or 0,
            best_epoch=obj.optional("best_epoch", int, "a whole number"),
            best_file=obj.optional("best_file", str, "a file name"),
            checkpoint=obj.optional("checkpoint", str, "a file name"),
            stopped_early=bool(obj.optional("stopped_early", bool, "true or false")),
            train_seconds=obj.number("train_seconds"),
            random_states=_random_states(obj),
        )


def checkpoint_file(epochs_done: int) -> str:
    """The model and optimizer after `epochs_done` epochs, to resume from."""
    return f"checkpoint-epoch{epochs_done:03d}.keras"


def best_weights_file(epoch: int) -> str:
    return f"best-epoch{epoch:03d}.weights.h5"


# Every epoch's files, and saves cut short (Keras's "partial-" names and the hidden
# temporaries of `replaced_whole`): those state.json does not name are stale.
EPOCH_FILE_PATTERNS = ("checkpoint-epoch*.keras", "best-epoch*.weights.h5", "partial-*", ".*.tmp")


def read_state(folder: Path) -> TrainingState | None:
    return read_record(Path(folder) / STATE_FILE, TrainingState.from_json)


def write_state(folder: Path, state: TrainingState) -> None:
    write_json_atomic(Path(folder) / STATE_FILE, state.to_json())


def _random_states(obj: JsonObject) -> tuple[tuple[int, ...], ...]:
    states = obj.optional("random_states", list, "a list of lists of whole numbers") or []
    ok = all(
        isinstance(s, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in s)
        for s in states
    )
    if not ok:
        raise obj.fail("random_states", "a list of lists of whole numbers")
    return tuple(tuple(s) for s in states)

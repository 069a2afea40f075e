"""metrics.json: evaluation results per split, and a summary of training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.files import write_json_atomic
from trainer.run_folder.json_object import JsonObject, read_record

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class Metrics:
    """metrics.json: one result per evaluated split (trainer.metrics.classification_metrics
    plus "misclassified", "dedup" and "evaluation"), and "training", the history summary."""

    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    training: dict[str, Any] | None = None  # trainer.metrics.history_summary

    def accuracy(self, split: str) -> float | None:
        return self._number(split, "accuracy")

    def loss(self, split: str) -> float | None:
        return self._number(split, "loss")

    def _number(self, split: str, key: str) -> float | None:
        value = self.splits.get(split, {}).get(key)
        return float(value) if isinstance(value, int | float) else None

    def with_split(self, split: str, result: dict[str, Any]) -> Metrics:
        """These metrics with `split`'s result added or replaced; the others kept."""
        return Metrics({**self.splits, split: result}, self.training)

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = dict(self.splits)
        if self.training is not None:
            value["training"] = self.training
        return value

    @classmethod
    def from_json(cls, value: Any, where: str = METRICS_FILE) -> Metrics:
        obj = JsonObject(value, where)
        splits = {}
        for key in obj.value:
            if key != "training":
                splits[key] = obj.required(key, dict, "a JSON object (a split's result)")
        return cls(splits, obj.object("training"))


def read_metrics(folder: Path) -> Metrics | None:
    return read_record(Path(folder) / METRICS_FILE, Metrics.from_json)


def write_metrics(folder: Path, metrics: Metrics) -> None:
    write_json_atomic(Path(folder) / METRICS_FILE, metrics.to_json())

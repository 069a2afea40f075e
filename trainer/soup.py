"""`ewaste-train soup`: one model from the average of several fine-tunes' weights.

Fine-tunes that start from the same model and differ only in their seed end up in one basin
of the loss, and the average of their weights (a "uniform model soup", Wortsman et al.,
2022) tends to beat the single runs, at the cost of one model at inference. Each ingredient
gives its last epoch's weights by default: no epoch is then picked on the validation split,
which stays a fair measure of the soup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from trainer.errors import TrainerError
from trainer.fit import command_line, library_versions, save_atomically
from trainer.run_folder import MODEL_FILE, RUN_FILE, RunRecord, read_run, read_state, write_run
from trainer.weights import file_sha256

EPOCH_CHOICES = ("final", "best")
# Settings that may differ between ingredients; everything else makes another network or
# another starting point, whose weights do not average into a working model.
MAY_DIFFER = {"seed"}


class SoupError(TrainerError):
    """Runs whose weights cannot be averaged; the message says why."""


@dataclass(frozen=True)
class Ingredient:
    run_dir: Path
    run: RunRecord
    model_file: Path
    epoch: int

    def to_json(self) -> dict:
        # The run folder and file name, not this machine's path: the record travels into
        # the ONNX metadata.
        return {
            "path": f"{self.run_dir.resolve().name}/{self.model_file.name}",
            "sha256": file_sha256(self.model_file),
            "seed": (self.run.config or {}).get("seed"),
            "epoch": self.epoch,
        }


def make_soup(run_dirs: list[Path], out_dir: Path, epoch: str = "final") -> RunRecord:
    """Average the weights of the runs in `run_dirs` into `out_dir`/model.keras, with a
    run.json that names every ingredient by hash. Returns that record."""
    if epoch not in EPOCH_CHOICES:
        raise SoupError(f"--epoch {epoch!r}: choose {', '.join(EPOCH_CHOICES)}")
    ingredients = [ingredient(Path(run_dir), epoch) for run_dir in run_dirs]
    check_compatible(ingredients)
    if any(i.run_dir.resolve() == Path(out_dir).resolve() for i in ingredients):
        raise SoupError(f"--out {out_dir} is one of the ingredients' run folders; pass a new one")
    if (Path(out_dir) / RUN_FILE).exists():
        raise SoupError(f"--out {out_dir} already holds a run; pass a new folder")
    models = [keras.saving.load_model(i.model_file, compile=False) for i in ingredients]
    shapes = {tuple(tuple(w.shape) for w in m.weights) for m in models}
    if len(shapes) != 1:
        raise SoupError("the ingredients' networks differ in their weights' shapes")
    soup = models[0]
    soup.set_weights(average_weights([m.get_weights() for m in models]))

    out_dir.mkdir(parents=True, exist_ok=True)
    save_atomically(soup.save, out_dir / MODEL_FILE)
    first = ingredients[0].run
    record = RunRecord(
        class_names=first.class_names,
        image_size=first.image_size,
        data_dir=first.moved(ingredients[0].run_dir, to=out_dir).data_dir,
        config=first.config,
        weights=first.weights,
        init_from=first.init_from,
        soup={"epoch": epoch, "ingredients": [i.to_json() for i in ingredients]},
        versions=library_versions(),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command_line(),
    )
    write_run(out_dir, record)
    return record


def ingredient(run_dir: Path, epoch: str) -> Ingredient:
    """A finished run's model file: its last epoch's checkpoint, or its best epoch's model."""
    run, state = read_run(run_dir), read_state(run_dir)
    if run is None or state is None:
        raise SoupError(f"{run_dir} is not a training run folder (no run.json or state.json)")
    if state.train_seconds is None:  # set when the run has finished
        raise SoupError(f"{run_dir} has not finished training; resume it first")
    if epoch == "best":
        return Ingredient(run_dir, run, run_dir / MODEL_FILE, state.best_epoch or 0)
    if not state.checkpoint or not (run_dir / state.checkpoint).is_file():
        raise SoupError(f"{run_dir} kept no checkpoint of its last epoch")
    return Ingredient(run_dir, run, run_dir / state.checkpoint, state.epochs_done)


def check_compatible(ingredients: list[Ingredient]) -> None:
    """At least two distinct runs of one recipe that started from the same model."""
    if len(ingredients) < 2:
        raise SoupError("a soup needs at least two runs")
    hashes = [file_sha256(i.model_file) for i in ingredients]
    if len(set(hashes)) != len(hashes):
        raise SoupError("the same model was given twice")
    first = ingredients[0]
    for other in ingredients[1:]:
        if (other.run.class_names, other.run.image_size) != (
            first.run.class_names,
            first.run.image_size,
        ):
            raise SoupError(f"{other.run_dir} has other classes or another input size")
        differ = sorted(
            key
            for key in set(first.run.config or {}) | set(other.run.config or {})
            if key not in MAY_DIFFER
            and (first.run.config or {}).get(key) != (other.run.config or {}).get(key)
        )
        if differ:
            raise SoupError(
                f"{other.run_dir} differs from {first.run_dir} in {', '.join(differ)}; "
                "only the seed may differ"
            )
    starts = {(i.run.init_from or {}).get("sha256") for i in ingredients}
    if None in starts or len(starts) != 1:
        # Runs that began from different (or fresh) heads sit in different basins, and
        # their average is not a model.
        raise SoupError(
            "the runs must all start --init-from the same model file (the same head run)"
        )


def average_weights(weight_lists: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of each weight over the ingredients, in its own dtype."""
    return [
        np.mean(np.stack([w.astype(np.float64) for w in same]), axis=0).astype(same[0].dtype)
        for same in zip(*weight_lists, strict=True)
    ]

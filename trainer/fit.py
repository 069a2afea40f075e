"""`ewaste-train fit`: audit, train with checkpoints (resumable), evaluate, write the report.

Everything lands in the run folder (trainer.run_folder names its files): run.json first, the
audit, a checkpoint and state.json each epoch, then model.keras, history.json, and the
evaluation's metrics.json, report.md and pictures.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from desktop.core.stop_signals import stop_signals_held
from trainer import data
from trainer.config import TrainConfig
from trainer.dataset import Dataset, DatasetError, load_dataset
from trainer.errors import ConfigError, TrainerError
from trainer.model import build_model, load_earlier_model, load_initial_weights
from trainer.run_folder import (
    EPOCH_FILE_PATTERNS,
    MODEL_FILE,
    STATE_FILE,
    History,
    RunRecord,
    TrainingState,
    audit_folder,
    best_weights_file,
    checkpoint_file,
    read_run,
    read_state,
    relative_data_dir,
    write_history,
    write_run,
    write_state,
)
from trainer.weights import WeightsError, WeightsSource, file_sha256, resolve_weights


class RunState(keras.callbacks.Callback):
    """Saves a resumable checkpoint each epoch, keeps the best weights, stops early.

    Keras's EarlyStopping and ModelCheckpoint lose their counters when a run restarts;
    this keeps everything a resumed run needs in state.json. Checkpoint files are named by
    epoch and state.json, written last and atomically, names the ones that belong to it:
    a run killed at any moment resumes from a consistent epoch.
    """

    PROGRESS_SECONDS = 15  # a progress line within long epochs, not one per batch

    def __init__(self, run_dir: Path, config: TrainConfig, state: TrainingState):
        super().__init__()
        self.run_dir = run_dir
        self.config = config
        self.state = state
        self.epoch_started = 0.0
        self.last_progress = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = self.last_progress = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if now - self.last_progress >= self.PROGRESS_SECONDS:
            self.last_progress = now
            steps = self.params.get("steps") or "?"
            loss = (logs or {}).get("loss")
            loss_text = f"  loss {float(loss):.4f}" if loss is not None else ""
            print(f"  batch {batch + 1}/{steps}{loss_text}  {now - self.epoch_started:.0f}s",
                  flush=True)  # fmt: skip

    def on_epoch_end(self, epoch, logs=None):
        values = {key: float(value) for key, value in (logs or {}).items()}
        values["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        values["seconds"] = time.perf_counter() - self.epoch_started
        state = after_epoch(self.state, epoch + 1, values, self.config)
        state = replace(state, random_states=random_states(self.model))
        improved = state.best_epoch == epoch + 1  # set to this epoch only when it improved
        if improved:
            save_atomically(self.model.save_weights, self.run_dir / state.best_file)
        save_atomically(self.model.save, self.run_dir / state.checkpoint)
        if state.stopped_early:
            self.model.stop_training = True
        write_state(self.run_dir, state)  # the commit point
        _remove_files_not_in_state(self.run_dir, state)
        self.state = state
        _print_epoch(state, values, self.config, improved)


def random_states(model: keras.Model) -> tuple[tuple[int, ...], ...]:
    """The states of the model's random-number generators (its dropout's), in order."""
    return tuple(
        tuple(int(n) for n in keras.ops.convert_to_numpy(v)) for v in _random_variables(model)
    )


def _restore_random_states(model: keras.Model, states: tuple[tuple[int, ...], ...]) -> None:
    """Put back the states `random_states` saved (a run from before they were saved, or
    of another shape, keeps the fresh ones)."""
    variables = _random_variables(model)
    if len(states) != len(variables):
        return
    for variable, state in zip(variables, states, strict=True):
        if tuple(variable.shape) == (len(state),):
            variable.assign(np.array(state, dtype=variable.dtype))


def _random_variables(model: keras.Model) -> list:
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def after_epoch(
    state: TrainingState, done: int, values: dict[str, float], config: TrainConfig
) -> TrainingState:
    """The state after epoch `done` (1-based) ended with these values: its history, the
    best value of the monitored metric, the files to keep, whether to stop early."""
    value = values[config.monitor]
    maximise = "acc" in config.monitor
    improved = state.best is None or (value > state.best if maximise else value < state.best)
    if improved:
        state = replace(
            state, best=value, best_epoch=done, best_file=best_weights_file(done), wait=0
        )
    else:
        state = replace(state, wait=state.wait + 1)
    return replace(
        state,
        epochs_done=done,
        history=state.history.appended(values),
        checkpoint=checkpoint_file(done),
        stopped_early=state.wait >= config.patience,
    )


def _print_epoch(
    state: TrainingState, values: dict[str, float], config: TrainConfig, improved: bool
) -> None:
    shown = ("loss", "accuracy", "val_loss", "val_accuracy")
    print(
        f"epoch {state.epochs_done}/{config.epochs}  "
        + "  ".join(f"{k} {values[k]:.4f}" for k in shown if k in values)
        + f"  lr {values['learning_rate']:.2e}  {values['seconds']:.0f}s"
        + ("  *best*" if improved else ""),
        flush=True,
    )
    if state.stopped_early:
        print(
            f"early stop: {config.monitor} did not improve for {config.patience} epochs",
            flush=True,
        )


def fit(
    data_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    cache_dir: Path | None = data.DEFAULT_CACHE_DIR,
    report_split: str = "val",
    eager: bool = False,
) -> dict:
    """Audit, train (or finish a resumed run), evaluate on `report_split`; returns the
    metrics it wrote. Recipes are compared with "val", so the test split is read only for
    the model that ships."""
    from trainer.audit import run_audit
    from trainer.evaluate import evaluate_model
    from trainer.keras_predictor import KerasPredictor
    from trainer.report import artefact_name

    config.check()
    if not resume:
        refuse_earlier_run(run_dir)
    dataset = load_dataset(data_dir)
    if len(dataset.class_names) < 2:
        raise DatasetError(
            f"{data_dir} has only one class, {dataset.class_names[0]}: a classifier needs "
            "at least two class folders to tell apart"
        )
    if not dataset.paths("val"):
        raise DatasetError(
            "the val split has no images: every epoch is scored on it to keep the best one"
        )
    if empty := dataset.empty_classes("train"):
        raise DatasetError(
            f"no training images for {', '.join(empty)}: a class cannot be learnt from "
            "nothing (images in sub-folders of a class folder do not count)"
        )
    resolve_weights(config.weights, config.backbone)  # fail fast, before the audit's slow work
    if resume:  # a resumed run continues from its checkpoint, not from --init-from
        resumable_state(run_dir, config, dataset)
    elif init_from := initial_weights_file(config, run_dir):
        check_init_from_run(init_from, config, dataset)
        load_earlier_model(init_from)  # a file Keras cannot read fails now, not after the audit
    print(f"auditing {data_dir} ...", flush=True)
    audit = run_audit(data_dir, audit_folder(run_dir))
    for warning in audit.warnings():
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    if unreadable := [name for name, count in audit.counts["train"].items() if count == 0]:
        raise DatasetError(
            f"no readable training image of {', '.join(unreadable)}: a class cannot be "
            "learnt from nothing"
        )
    model, history = train(
        dataset, run_dir, config, resume=resume, cache_dir=cache_dir, eager=eager
    )
    print(f"evaluating on the {report_split} split ...", flush=True)
    metrics = evaluate_model(
        KerasPredictor(model),
        dataset,
        split=report_split,
        image_size=(config.image_size, config.image_size),
        resize=config.resize,
        run_dir=run_dir,
        audit=audit,
        history=history.series,
    )
    result = metrics[report_split]
    report = run_dir / artefact_name("report.md", report_split)
    print(
        f"{report_split} accuracy {result['accuracy']:.4f}  {report_split} loss "
        f"{result['loss']:.4f}  report: {report}",
        flush=True,
    )
    return metrics


def train(
    dataset: Dataset,
    run_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    cache_dir: Path | None = data.DEFAULT_CACHE_DIR,
    eager: bool = False,
) -> tuple[keras.Model, History]:
    """Train, checkpointing every epoch; with `resume`, continue an interrupted run.
    `eager` runs the steps without tracing a graph (`--eager`).

    Returns the model with the best epoch's weights (also saved as model.keras) and the
    history of every epoch, across restarts.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = resolve_weights(config.weights, config.backbone)
    state = resumable_state(run_dir, config, dataset) if resume else None
    if resume and state is None:
        print(f"nothing to resume in {run_dir}; starting a new run", flush=True)
    if state is None:
        write_run(run_dir, new_run_record(dataset, config, weights, run_dir))
    keras.utils.set_random_seed(config.seed)

    train_arrays, val_arrays = _decode(dataset, config, cache_dir)
    num_classes = len(dataset.class_names)
    val_ds = data.evaluation_pipeline(val_arrays, num_classes, config)

    if state is None:
        state = TrainingState()
        # Training batches drop the remainder, so an epoch is N // batch steps (at least 1).
        steps_per_epoch = max(1, len(train_arrays.labels) // config.batch_size)
        model = _new_model(config, num_classes, weights, run_dir, steps_per_epoch)
    else:
        model = _resumed_model(run_dir, config, state)
        print(f"resuming after epoch {state.epochs_done}", flush=True)
    # Set here, not by compile(): the checkpoints then never carry it into a later run.
    model.run_eagerly = eager

    if state.epochs_done < config.epochs and not state.stopped_early:
        progress = RunState(run_dir, config, state)
        # One fit per epoch, each with that epoch's own pipeline: a resumed run then trains
        # on the batches an uninterrupted one would (trainer.data.training_pipeline).
        for epoch in range(state.epochs_done, config.epochs):
            # Built with stop signals held: one raised in the Python TensorFlow calls back
            # while it builds came out as a pybind11 traceback, not as the stop (said after).
            with stop_signals_held():
                batches = data.training_pipeline(train_arrays, num_classes, config, epoch)
            model.fit(
                batches,
                validation_data=val_ds,
                epochs=epoch + 1,
                initial_epoch=epoch,
                callbacks=[progress],
                verbose=0,  # RunState prints one line per epoch, readable in a log file too
            )
            if progress.state.stopped_early:
                break
        state = progress.state
    return _finish(model, run_dir, config, state)


def resumable_state(run_dir: Path, config: TrainConfig, dataset: Dataset) -> TrainingState | None:
    """The state of the run in `run_dir` to continue; None when there is none. Refuses a
    resume with other flags, another dataset folder or other classes than run.json's."""
    state = read_state(run_dir)
    if state is None:
        return None
    recorded = read_run(run_dir)
    if recorded is None or recorded.config != config.to_dict():
        before, now = (recorded.config if recorded else None) or {}, config.to_dict()
        changed = [
            f"--{name.replace('_', '-')} {before.get(name)!r} then, {value!r} now"
            for name, value in now.items()
            if before.get(name) != value
        ]
        raise ConfigError(
            f"{run_dir} was started with a different configuration ({'; '.join(changed)}); "
            "resume with the same flags or use a new --out"
        )
    _check_same_data(run_dir, recorded, dataset)
    return state


def _check_same_data(run_dir: Path, recorded: RunRecord, dataset: Dataset) -> None:
    """The checkpoint learnt from run.json's dataset: other images would make a model that
    none of the run's records describe, and other classes would relabel its outputs."""
    folder = recorded.data_folder(run_dir)
    if folder is not None and folder != Path(dataset.root).resolve():
        raise ConfigError(
            f"{run_dir} was trained on {recorded.data_dir} (relative to the run folder), not "
            f"--data {dataset.root}: resume with the same --data or use a new --out"
        )
    if recorded.class_names is not None and recorded.class_names != dataset.class_names:
        raise ConfigError(
            f"{run_dir} was trained on the classes {', '.join(recorded.class_names)}, but "
            f"--data {dataset.root} has {', '.join(dataset.class_names)}: resume with the "
            "same dataset or use a new --out"
        )


def _resumed_model(run_dir: Path, config: TrainConfig, state: TrainingState) -> keras.Model:
    """The model to continue from: the last checkpoint, or model.keras when every epoch is
    done (the checkpoint is then only needed by a soup of final epochs)."""
    finished = state.stopped_early or state.epochs_done >= config.epochs
    # A run killed after its last epoch but before model.keras still has its checkpoint.
    name = MODEL_FILE if finished and (run_dir / MODEL_FILE).is_file() else state.checkpoint
    advice = "it cannot be resumed: start it again with a new --out"
    if not name or not (run_dir / name).is_file():
        raise TrainerError(f"{run_dir} has lost its checkpoint {name or ''}; {advice}")
    path = run_dir / name
    try:
        model = keras.saving.load_model(path)
    except Exception as exc:  # Keras raises many types (even "File not found") for a bad file
        raise TrainerError(f"{path} is truncated or damaged; {advice}") from exc
    _restore_random_states(model, state.random_states)
    return model


def refuse_earlier_run(run_dir: Path) -> None:
    """A new run never writes over an earlier one: its model, reports and checkpoints would
    be replaced, and files of the old model left beside the new. A run.json alone is a run
    stopped before its first epoch ended (or by a start-up error): nothing to keep."""
    if any((run_dir / name).exists() for name in (STATE_FILE, MODEL_FILE)):
        raise ConfigError(
            f"{run_dir} already holds a run; add --resume to continue it, or give a new --out"
        )


def new_run_record(
    dataset: Dataset, config: TrainConfig, weights: WeightsSource, run_dir: Path
) -> RunRecord:
    return RunRecord(
        class_names=tuple(dataset.class_names),
        image_size=(config.image_size, config.image_size),
        data_dir=relative_data_dir(dataset.root, run_dir),
        config=config.to_dict(),
        weights=weights.to_dict(),
        init_from=init_from_record(config, run_dir),
        versions=library_versions(),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command_line(),
    )


def _decode(
    dataset: Dataset, config: TrainConfig, cache_dir: Path | None
) -> tuple[data.SplitArrays, data.SplitArrays]:
    """The train and val images, decoded (or from the cache); unreadable ones left out."""
    started = time.perf_counter()
    train_arrays = data.load_split(dataset, "train", config.image_size, cache_dir, config.resize)
    val_arrays = data.load_split(dataset, "val", config.image_size, cache_dir, config.resize)
    unreadable = len(train_arrays.failures) + len(val_arrays.failures)
    print(
        f"decoded train {len(train_arrays.labels)} / val {len(val_arrays.labels)} images "
        f"({unreadable} unreadable, excluded) in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    return train_arrays, val_arrays


def _new_model(
    config: TrainConfig,
    num_classes: int,
    weights: WeightsSource,
    run_dir: Path,
    steps_per_epoch: int,
) -> keras.Model:
    model = build_model(config, num_classes, weights)
    if config.init_from:
        load_initial_weights(model, initial_weights_file(config, run_dir))
        print(f"starting from the weights of {config.init_from}", flush=True)
    compile_model(model, config, steps_per_epoch)
    return model


def _finish(
    model: keras.Model, run_dir: Path, config: TrainConfig, state: TrainingState
) -> tuple[keras.Model, History]:
    """Restore the best epoch's weights; save the model, the history and the final state."""
    if state.best_file:
        model.load_weights(run_dir / state.best_file)
        print(
            f"restored the best weights (epoch {state.best_epoch}, "
            f"{config.monitor} {state.best:.4f})",
            flush=True,
        )
    save_atomically(model.save, run_dir / MODEL_FILE)
    write_history(run_dir, state.history)
    seconds = state.history.series.get("seconds", ())
    write_state(run_dir, replace(state, train_seconds=round(sum(seconds), 1)))
    return model, state.history


def initial_weights_file(config: TrainConfig, run_dir: Path) -> Path | None:
    """The `--init-from` model file, checked; None when the run starts fresh."""
    if not config.init_from:
        return None
    path = Path(config.init_from).expanduser()
    if not path.is_file():
        raise WeightsError(f"--init-from model not found: {path}")
    if config.weights.lower() != "none":
        # Every weight comes from the earlier model: backbone weights loaded first would be
        # overwritten, and run.json would name a source the model did not come from.
        raise WeightsError(
            "--init-from replaces every weight of the model: pass --weights none with it "
            "(the earlier run's run.json says where its own weights came from)"
        )
    if path.resolve().parent == run_dir.resolve():
        raise WeightsError(
            f"--init-from {path} is inside the run directory {run_dir}, whose files this run "
            "replaces; pass a new --out"
        )
    return path


def check_init_from_run(path: Path, config: TrainConfig, dataset: Dataset) -> None:
    """Refuse an `--init-from` model whose run.json (beside it) names other classes or
    another backbone: the same number of other classes loads without a complaint, and would
    start every output from another class's weights."""
    earlier = read_run(path.parent)
    if earlier is None:  # a model without its run folder: only the shapes can be checked
        return
    if earlier.class_names is not None and earlier.class_names != dataset.class_names:
        raise WeightsError(
            f"--init-from {path} was trained on the classes {', '.join(earlier.class_names)}, "
            f"but --data {dataset.root} has {', '.join(dataset.class_names)}: start from a "
            "model of the same classes, in the same order"
        )
    backbone = (earlier.config or {}).get("backbone")
    if backbone is not None and backbone != config.backbone:
        raise WeightsError(
            f"--init-from {path} was trained with the backbone {backbone}, and this run "
            f"builds {config.backbone}: pass --backbone {backbone}, or start from a model of "
            f"{config.backbone}"
        )


def init_from_record(config: TrainConfig, run_dir: Path) -> dict | None:
    """The `--init-from` file, its hash, and (from its run.json) where its own weights came
    from, so a warm-started model's provenance stays traceable to the first run."""
    path = initial_weights_file(config, run_dir)
    if path is None:
        return None
    # The run folder and file name, not this machine's absolute path: the record travels
    # into the ONNX metadata.
    resolved = path.resolve()
    record = {"path": f"{resolved.parent.name}/{resolved.name}", "sha256": file_sha256(path)}
    earlier = read_run(path.parent)
    if earlier is not None:
        record["weights"] = earlier.weights
        record["init_from"] = earlier.init_from
    return record


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    total_steps = max(1, config.epochs * steps_per_epoch)
    warmup_steps = config.warmup_epochs * steps_per_epoch
    if config.schedule == "cosine":
        # Warm up linearly from lr/100 to lr, then cosine-decay to zero by the last epoch.
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.learning_rate / 100,
            decay_steps=max(1, total_steps - warmup_steps),
            warmup_target=config.learning_rate,
            warmup_steps=warmup_steps,
        )
    elif config.schedule == "constant":
        learning_rate = config.learning_rate
    else:
        raise ConfigError(f"unknown schedule {config.schedule!r} (constant or cosine)")
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate)
    elif config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    else:
        raise ConfigError(f"unknown optimizer {config.optimizer!r} (adam or adamw)")
    if data.uses_soft_labels(config):
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def command_line() -> str:
    """The command as typed, with the program's name and not this machine's path to it:
    the record travels into reports and the ONNX metadata."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def library_versions() -> dict[str, str]:
    import PIL

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
        "cpu_count": str(os.cpu_count()),
    }


def _remove_files_not_in_state(run_dir: Path, state: TrainingState) -> None:
    """Delete earlier epochs' checkpoints and best weights, and interrupted saves."""
    keep = {state.checkpoint, state.best_file}
    for pattern in EPOCH_FILE_PATTERNS:
        for path in run_dir.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)


def save_atomically(save, path: Path) -> None:
    """Save through a temporary name, so a run killed mid-save keeps its last good file."""
    partial = path.with_name("partial-" + path.name)  # keeps the suffix Keras checks
    save(partial)
    os.replace(partial, path)

"""A saved model (.keras, or an exported .onnx run by the app's engine) opened for
evaluation: a predictor for the prediction loop and what the file declares."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from desktop.core.prediction_loop import Predictor
from trainer.keras_predictor import KerasPredictor, KerasPredictorError
from trainer.split_predictions import EvaluationError


@dataclass(frozen=True)
class SavedModel:
    """A saved model opened for evaluation: how to predict and what it declares."""

    predict: Predictor
    input_size: tuple[int, int]
    num_classes: int
    class_names: list[str] | None  # None: the file does not name its classes
    resize: str | None  # None: the file does not record it
    unknown_threshold: float | None = None  # an exported file's open-set threshold


def _load_keras(model_path: Path) -> SavedModel:
    import keras  # only here: metrics and reports need no TensorFlow

    # Keras says "File not found" for a .keras file that is there but cut short.
    if model_path.suffix.lower() == ".keras" and not zipfile.is_zipfile(model_path):
        raise EvaluationError(
            f"{model_path} is not a whole Keras model file (a .keras file is a zip archive: "
            "one cut short, or another file so named)"
        )
    try:
        # compile=False: evaluation needs neither the optimizer nor the training loss.
        model = keras.saving.load_model(model_path, compile=False)
        predictor = KerasPredictor(model)
    except KerasPredictorError as exc:
        raise EvaluationError(f"{model_path}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise EvaluationError(f"cannot load the Keras model {model_path}: {exc}") from exc
    output_shape = model.output_shape
    if isinstance(output_shape, Mapping):
        output_shape = output_shape.get("probabilities", next(iter(output_shape.values())))
    if isinstance(output_shape, list):
        output_shape = output_shape[0]
    return SavedModel(predictor, predictor.input_size, int(output_shape[-1]), None, None)


def _load_onnx(model_path: Path) -> SavedModel:
    """The exported file run by the station app's own engine: the figures are those of
    the file that ships, and its metadata names the classes, size and resize."""
    from desktop.core.engine import Engine
    from desktop.core.model_info import ModelError

    try:
        engine = Engine(model_path)
    except ModelError as exc:
        raise EvaluationError(str(exc)) from exc
    names = list(engine.class_names)
    info = engine.info
    return SavedModel(
        engine.predict, info.input_size, len(names), names, info.resize, info.unknown_threshold
    )


def load_saved_model(model_path: Path) -> SavedModel:
    """Open `model_path`: an .onnx file through the app's Engine, anything else with Keras."""
    if model_path.suffix.lower() == ".onnx":
        return _load_onnx(model_path)
    return _load_keras(model_path)

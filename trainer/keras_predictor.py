"""A Keras model as a predictor of the one prediction loop (`desktop.core.prediction_loop`).

Evaluation, the converter's parity check and the headless benchmark run a .keras model
through this one adapter, and an exported .onnx file through the app's `Engine`, so both
sides of every comparison go through the same decoding, batching and flip averaging.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from desktop.core.model_info import CAM_OUTPUT, PROBABILITIES_OUTPUT
from desktop.core.prediction_loop import Outputs
from trainer.errors import TrainerError


class KerasPredictorError(TrainerError):
    """The Keras model does not look like an image classifier the loop can run."""


class KerasPredictor:
    """Calls `model.predict_on_batch` and splits its outputs into (probabilities, maps).

    The model takes one (N, H, W, 3) float32 0-255 input. Its outputs are the (N, C) class
    output and, optionally, an (N, h, w, C) class activation map: a single tensor, a list
    in that order, or a dict keyed by the ONNX contract's output names.
    """

    def __init__(self, model: Any):
        self.model = model
        self.input_size = keras_input_size(model)

    def __call__(self, images: np.ndarray) -> Outputs:
        raw = self.model.predict_on_batch(np.ascontiguousarray(images, dtype=np.float32))
        return split_outputs(raw)


def keras_input_size(model: Any) -> tuple[int, int]:
    """(height, width) of a Keras image model's single NHWC RGB input."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise KerasPredictorError(
                f"the model has {len(shape)} inputs; expected one image input"
            )
        shape = shape[0]
    shape = tuple(shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] != 3:
        raise KerasPredictorError(
            f"model input shape {shape} is not (batch, height, width, 3) with a fixed size"
        )
    return int(shape[1]), int(shape[2])


def split_outputs(raw: Any) -> Outputs:
    """(the (N, C) class output, the (N, h, w, C) maps or None) of a Keras output."""
    if isinstance(raw, Mapping):
        values = [raw[name] for name in (PROBABILITIES_OUTPUT, CAM_OUTPUT) if name in raw]
        values = values or list(raw.values())
    elif isinstance(raw, list | tuple):
        values = list(raw)
    else:
        values = [raw]
    arrays = [np.asarray(value, dtype=np.float32) for value in values]
    matrices = [array for array in arrays if array.ndim == 2]
    maps = [array for array in arrays if array.ndim == 4]
    if not matrices:
        raise KerasPredictorError("the model has no (batch, classes) output")
    return Outputs(matrices[0], maps[0] if maps else None)

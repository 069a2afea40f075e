"""Load a Keras classifier, find its head by layer type, build the graph to export.

The trainer's model is Input -> backbone -> GlobalAveragePooling2D -> Dropout -> Dense
(softmax). A user's model only has to end the same way; the backbone can be anything that
yields a (N, h, w, C) feature map. Layers are found by walking the functional graph back
from the output, never by their names.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from converter.errors import ConvertError
from desktop.core.model_info import CAM_OUTPUT, PROBABILITIES_OUTPUT
from trainer.keras_predictor import KerasPredictor

# Layers that are the identity at inference (training=False). Only these may sit between
# the pooled features and the final Dense for the CAM_OUTPUT to be exact.
INFERENCE_IDENTITY = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)

# A softmax row sums to 1 up to float32 rounding.
PROBABILITY_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ModelHead:
    """The parts of the classifier the converter needs."""

    dense: keras.layers.Dense | None  # the final Dense (kernel: features -> class scores)
    pooling: keras.layers.GlobalAveragePooling2D | None  # None: no CAM_OUTPUT possible
    features: keras.KerasTensor | None  # the (N, h, w, C) map fed to the pooling
    backbone: str | None  # name of the layer producing `features`, for messages
    cam_problem: str | None  # why a CAM_OUTPUT cannot be built, when it cannot


def load_keras_model(path: Path) -> keras.Model:
    """Load a .keras (or legacy .h5) file for inference; ConvertError says why it cannot."""
    if not path.exists():
        raise ConvertError(f"model not found: {path}")
    if not path.is_file():
        raise ConvertError(f"model path is not a file: {path}")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConvertError(f"cannot read model {path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ConvertError(f"{path} is not a Keras model file (a .keras file is a zip archive)")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; all mean "cannot load"
        raise ConvertError(_load_error(path, exc)) from exc
    if not isinstance(model, keras.Model):
        raise ConvertError(f"{path} does not hold a Keras model")
    return model


def _load_error(path: Path, exc: Exception) -> str:
    text = str(exc)
    missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if missing:
        return (
            f"unsupported layer: {path} uses '{missing.group(1)}', which is not a built-in "
            "Keras layer (register the custom class before converting, or rebuild the "
            "model from built-in layers)"
        )
    if "Lambda" in text and "safe_mode" in text:
        return (
            f"unsupported layer: {path} contains a Lambda layer, whose Python code Keras "
            "refuses to load from a file (rebuild the model without Lambda layers)"
        )
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"cannot load Keras model {path}: {first}"


def input_size(model: keras.Model) -> tuple[int, int]:
    """(height, width) of the single NHWC RGB input."""
    if len(model.inputs) != 1:
        raise ConvertError(f"the model must have one image input, it has {len(model.inputs)}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3:
        raise ConvertError(f"the model input must be (batch, height, width, 3), got {shape}")
    height, width = shape[1], shape[2]
    if height is None or width is None:
        raise ConvertError(
            f"the model input has no fixed size {shape}; "
            "rebuild it with keras.Input(shape=(H, W, 3))"
        )
    return (int(height), int(width))


def num_classes(model: keras.Model) -> int:
    if len(model.outputs) != 1:
        raise ConvertError(
            f"output is not a probability vector: the model has {len(model.outputs)} outputs, "
            "expected one (batch, classes) softmax output"
        )
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise ConvertError(
            f"output is not a probability vector: output shape {shape}, expected (batch, classes)"
        )
    return int(shape[1])


def find_head(model: keras.Model) -> ModelHead:
    """Find the final Dense (and the pooled feature map) behind the softmax output."""
    num_classes(model)
    last = _producer(model.outputs[0])
    if last is None:
        raise ConvertError(
            "cannot follow the model's layers back from its output (a subclassed model?); "
            "export a functional or Sequential Keras model"
        )
    dense, problem = _final_dense(last)
    if dense is None:
        return ModelHead(None, None, None, None, problem)
    pooling, features, backbone, problem = _pooled_features(dense)
    return ModelHead(dense, pooling, features, backbone, problem)


def _producer(tensor: keras.KerasTensor | None) -> keras.layers.Layer | None:
    """The layer that produced a symbolic tensor of a functional graph (None: not a layer).

    Keras records it on every KerasTensor; a nested model's own `.output` would instead
    point into its inner graph, so the history is the reliable way back.
    """
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return operation if isinstance(operation, keras.layers.Layer) else None


def _single_input(layer: keras.layers.Layer) -> keras.KerasTensor | None:
    try:
        inputs = keras.tree.flatten(layer.input)
    except (AttributeError, ValueError):
        return None
    return inputs[0] if len(inputs) == 1 else None


def _activation_name(layer: keras.layers.Layer) -> str:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear"
    name = keras.activations.serialize(activation)
    return name if isinstance(name, str) else getattr(activation, "__name__", str(activation))


def _final_dense(last: keras.layers.Layer) -> tuple[keras.layers.Dense | None, str | None]:
    """The Dense whose softmax is the model output, or None and why (then no CAM_OUTPUT).

    ConvertError when the last layer is visibly not a softmax. A nested model as the last
    layer cannot be looked into here; the numeric check on its output still applies.
    """
    if isinstance(last, keras.layers.Dense):
        if _activation_name(last) != "softmax":
            raise ConvertError(
                f"output is not a probability vector: the last layer '{last.name}' is a Dense "
                f"with activation '{_activation_name(last)}', expected softmax"
            )
        return last, None
    if isinstance(last, keras.Model):
        return None, f"the output comes from the nested model '{last.name}'"
    is_softmax = isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation) and _activation_name(last) == "softmax"
    )
    if not is_softmax:
        raise ConvertError(
            f"output is not a probability vector: the last layer '{last.name}' "
            f"({type(last).__name__}) is not a softmax"
        )
    if isinstance(last, keras.layers.Softmax) and last.axis not in (-1, 1):
        raise ConvertError(f"the output softmax '{last.name}' is not over the class axis")
    dense = _producer(_single_input(last))
    if not isinstance(dense, keras.layers.Dense) or _activation_name(dense) != "linear":
        return None, (
            f"the output softmax '{last.name}' does not directly follow a Dense layer without "
            "activation"
        )
    return dense, None


def _pooled_features(
    dense: keras.layers.Dense,
) -> tuple[
    keras.layers.GlobalAveragePooling2D | None, keras.KerasTensor | None, str | None, str | None
]:
    """Walk back from the Dense over inference-identity layers to a GlobalAveragePooling2D."""
    layer = _producer(_single_input(dense))
    while isinstance(layer, INFERENCE_IDENTITY):
        layer = _producer(_single_input(layer))
    if not isinstance(layer, keras.layers.GlobalAveragePooling2D):
        found = f"'{layer.name}' ({type(layer).__name__})" if layer is not None else "no layer"
        return (
            None,
            None,
            None,
            (
                f"the final Dense '{dense.name}' is fed by {found}, not by GlobalAveragePooling2D "
                "(with only dropout-like layers in between)"
            ),
        )
    if layer.data_format != "channels_last" or layer.keepdims:
        return (
            None,
            None,
            None,
            (f"the pooling layer '{layer.name}' must be channels_last without keepdims"),
        )
    features = _single_input(layer)
    if features is None or len(features.shape) != 4:
        return None, None, None, f"the pooling layer '{layer.name}' has no (N, h, w, C) input"
    backbone = _producer(features)
    return layer, features, backbone.name if backbone is not None else None, None


class ClassActivationMap(keras.layers.Layer):
    """Per-position class scores: feature map @ the final Dense kernel (no bias).

    Averaging this map over h and w and adding the bias gives the logits exactly, which is
    why no gradients are needed.
    """

    def __init__(self, dense: keras.layers.Dense, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self._dense = dense

    def call(self, features):
        kernel = keras.ops.cast(self._dense.kernel, "float32")
        # einsum (not matmul) converts to one ONNX MatMul with static h and w; TF lowers a
        # 4-D @ 2-D matmul through dynamic Reshapes that lose the map's shape.
        return keras.ops.einsum("nhwc,ck->nhwk", keras.ops.cast(features, "float32"), kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self._dense.units)


def build_inference_model(model: keras.Model, head: ModelHead, cam: bool) -> keras.Model:
    """The graph to export: outputs `probabilities` (and `cam`), all layers at training=False.

    Reuses the trained layers (no copy of the weights); tf2onnx traces it with training=False,
    so dropout and any augmentation-style layers become the identity.
    """
    taken = {layer.name for layer in model.layers}
    outputs = [
        keras.layers.Identity(name=_free_name(PROBABILITIES_OUTPUT, taken))(model.outputs[0])
    ]
    if cam:
        if head.features is None or head.dense is None:
            raise ConvertError(f"--cam is not possible for this model: {head.cam_problem}")
        outputs.append(
            ClassActivationMap(head.dense, name=_free_name(CAM_OUTPUT, taken))(head.features)
        )
    return keras.Model(inputs=model.inputs[0], outputs=outputs, name=f"{model.name}_inference")


def _free_name(name: str, taken: set[str]) -> str:
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    return candidate


def output_names(inference_model: keras.Model) -> list[str]:
    """The contract names of the inference model outputs, in order."""
    return [PROBABILITIES_OUTPUT, CAM_OUTPUT][: len(inference_model.outputs)]


def check_probability_output(inference_model: keras.Model, size: tuple[int, int]) -> None:
    """Numerically confirm the output rows are probability vectors (>= 0, sum to 1)."""
    probabilities = KerasPredictor(inference_model)(sample_inputs(size, count=2)).probabilities
    sums = probabilities.sum(axis=1)
    if (
        not np.all(np.isfinite(probabilities))
        or np.any(probabilities < 0)
        or np.any(np.abs(sums - 1.0) > PROBABILITY_SUM_TOLERANCE)
    ):
        raise ConvertError(
            f"output is not a probability vector: rows sum to {np.round(sums, 4).tolist()}"
        )


def sample_inputs(size: tuple[int, int], count: int = 8, seed: int = 0) -> np.ndarray:
    """Random test inputs in 0-255: black, white, uniform noise and smooth gradients."""
    height, width = size
    rng = np.random.default_rng(seed)
    batch = rng.uniform(0.0, 255.0, (count, height, width, 3)).astype(np.float32)
    if count >= 1:
        batch[0] = 0.0
    if count >= 2:
        batch[1] = 255.0
    # Image-like inputs (smooth colour ramps) reach parts of the network noise does not.
    ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    for index in range(2, min(count, 5)):
        colours = rng.uniform(0, 255, (3, 3))
        ramp = (
            colours[0] * ys[..., None]
            + colours[1] * xs[..., None]
            + colours[2] * (1 - ys[..., None])
        ) / 2
        batch[index] = np.clip(ramp, 0, 255)
    return batch


def keras_layer_names(model: keras.Model) -> list[str]:
    """All layer names, nested models included, for naming the source of a bad ONNX node."""
    names: list[str] = []
    stack: list[Sequence[keras.layers.Layer]] = [model.layers]
    while stack:
        for layer in stack.pop():
            names.append(layer.name)
            if isinstance(layer, keras.Model):
                stack.append(layer.layers)
    return names

"""A tiny real ONNX classifier for tests, built with the onnx helper API (no TensorFlow).

It honours the metadata contract of `desktop.core.model_info` and behaves like a colour
classifier, so tests can predict its answers from the pixels they write:

    image (N, 32, 32, 3) float32 0-255
      -> mean over height and width, / 255      (N, 3) mean colour in 0..1
      -> MatMul + bias                          (N, 10) logits
      -> Softmax                                (N, 10) "probabilities"

Each class has a prototype colour; the logits are -SHARPNESS * squared distance to each
prototype (the |x|^2 term is the same for every class, so it drops out and the layer is
linear). A pure prototype colour is classified confidently; a colour halfway between two
prototypes splits its probability between them and lands under the review threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from desktop.core.model_info import FORMAT_VERSION, encode_metadata
from desktop.core.preprocessing import PREPROCESSING_CONTRACT

CLASS_NAMES: tuple[str, ...] = (
    "Battery",
    "Keyboard",
    "Microwave",
    "Mobile",
    "Mouse",
    "PCB",
    "Player",
    "Printer",
    "Television",
    "Washing Machine",
)

# Prototype colour (RGB 0-255) of each class, in CLASS_NAMES order.
PROTOTYPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "Battery": (255, 0, 0),  # red
    "Keyboard": (0, 255, 0),  # green
    "Microwave": (0, 0, 255),  # blue
    "Mobile": (255, 255, 0),  # yellow
    "Mouse": (0, 255, 255),  # cyan
    "PCB": (255, 0, 255),  # magenta
    "Player": (255, 255, 255),  # white
    "Printer": (0, 0, 0),  # black
    "Television": (128, 128, 128),  # grey
    "Washing Machine": (255, 128, 0),  # orange
}

# Halfway between Battery (red) and Washing Machine (orange): about 50/50, needs review.
AMBIGUOUS_COLOUR: tuple[int, int, int] = (255, 64, 0)

SHARPNESS = 20.0
INPUT_SIZE = (32, 32)
OPSET = 17
IR_VERSION = 8


def tiny_metadata(
    class_names: Sequence[str] = CLASS_NAMES, input_size: tuple[int, int] = INPUT_SIZE
) -> dict[str, object]:
    """The contract metadata (decoded values) for a tiny model."""
    return {
        "ewaste_format": FORMAT_VERSION,
        "class_names": list(class_names),
        "input": {
            "name": "image",
            "size": list(input_size),
            "layout": "NHWC",
            "dtype": "float32",
        },
        "outputs": {"probabilities": "probabilities", "cam": None},
        "preprocessing": PREPROCESSING_CONTRACT,
        "source_sha256": "0" * 64,
    }


def expected_probabilities(mean_rgb: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """What the tiny model computes for images with these mean colours ((N, 3), 0-255)."""
    weights, bias = _layer(num_classes)
    logits = (np.asarray(mean_rgb, dtype=np.float64) / 255.0) @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def build_tiny_model(
    path: str | Path,
    *,
    batch: int | None = None,
    input_size: tuple[int, int] = INPUT_SIZE,
    graph_classes: int = len(CLASS_NAMES),
    metadata: dict[str, object] | None = None,
    channels: int = 3,
    softmax: bool = True,
) -> Path:
    """Write a tiny classifier to `path` and return the path.

    batch: None for a dynamic batch dimension, an int for a static one.
    graph_classes: the width of the real output (set it different from the metadata's
        class count to build a model whose metadata lies).
    metadata: decoded contract values (default `tiny_metadata()`); {} writes none.
    channels: the real input's channel count (3 is right; others build a broken model).
    softmax: False outputs raw logits under the name "probabilities" (a broken export).
    """
    height, width = input_size
    batch_dim: int | str = "batch" if batch is None else batch
    weights, bias = _layer(graph_classes)
    if channels != 3:
        weights = np.resize(weights, (channels, graph_classes))

    graph = helper.make_graph(
        nodes=[
            helper.make_node("ReduceMean", ["image"], ["mean_rgb"], axes=[1, 2], keepdims=0),
            helper.make_node("Mul", ["mean_rgb", "inv_255"], ["unit_rgb"]),
            helper.make_node("MatMul", ["unit_rgb", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)
            if softmax
            else helper.make_node("Identity", ["logits"], ["probabilities"]),
        ],
        name="tiny_colour_classifier",
        inputs=[
            helper.make_tensor_value_info(
                "image", TensorProto.FLOAT, [batch_dim, height, width, channels]
            )
        ],
        outputs=[
            helper.make_tensor_value_info(
                "probabilities", TensorProto.FLOAT, [batch_dim, graph_classes]
            )
        ],
        initializer=[
            numpy_helper.from_array(np.array(1.0 / 255.0, dtype=np.float32), "inv_255"),
            numpy_helper.from_array(weights.astype(np.float32), "weights"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="ewaste-sorter-tests",
    )
    model.ir_version = IR_VERSION
    values = tiny_metadata(input_size=input_size) if metadata is None else metadata
    helper.set_model_props(model, encode_metadata(values))
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def _layer(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (3, C) and bias (C,) of the nearest-prototype layer, for C classes."""
    prototypes = np.array(list(PROTOTYPE_COLOURS.values()), dtype=np.float64) / 255.0
    # Repeat prototypes if a broken test model asks for more classes than we have colours.
    prototypes = np.resize(prototypes, (num_classes, 3))
    weights = 2.0 * SHARPNESS * prototypes.T
    bias = -SHARPNESS * (prototypes**2).sum(axis=1)
    return weights, bias

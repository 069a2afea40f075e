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

With `cam=True` the model also has a class activation map output, built the way the
converter's `--cam` builds it (feature map times the final kernel, no bias):

    image -> mean colour of each block of a CAM_GRID grid, / 255    (N, h, w, 3) "features"
          -> MatMul weights                                         (N, h, w, 10) "cam"
    features -> mean over h and w (= the image's mean colour) -> as above -> probabilities
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from desktop.core.model_info import FORMAT_VERSION, encode_metadata
from desktop.core.preprocessing import contract

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
CAM_GRID = (4, 2)  # (h, w): not square, so a swapped axis shows up in the tests
OPSET = 17
IR_VERSION = 8


def tiny_metadata(
    class_names: Sequence[str] = CLASS_NAMES,
    input_size: tuple[int, int] = INPUT_SIZE,
    cam: bool = False,
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
        "outputs": {"probabilities": "probabilities", "cam": "cam" if cam else None},
        # Stretch, always: the tiny model classifies by mean colour, and the samples' colours
        # must not be diluted by letterbox padding, whatever the default mode.
        "preprocessing": contract("stretch"),
        "source_sha256": "0" * 64,
    }


def expected_probabilities(mean_rgb: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """What the tiny model computes for images with these mean colours ((N, 3), 0-255)."""
    weights, bias = _layer(num_classes)
    logits = (np.asarray(mean_rgb, dtype=np.float64) / 255.0) @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def expected_cam(images: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """The "cam" output of a `cam=True` tiny model for images (N, H, W, 3) 0-255: (N, h, w, C)."""
    batch = np.asarray(images, dtype=np.float64)
    count, height, width, _ = batch.shape
    rows, cols = CAM_GRID
    blocks = batch.reshape(count, rows, height // rows, cols, width // cols, 3)
    features = blocks.mean(axis=(2, 4)) / 255.0
    weights, _ = _layer(num_classes)
    return features @ weights


def build_tiny_model(
    path: str | Path,
    *,
    batch: int | None = None,
    input_size: tuple[int, int] = INPUT_SIZE,
    graph_classes: int = len(CLASS_NAMES),
    metadata: dict[str, object] | None = None,
    channels: int = 3,
    softmax: bool = True,
    cam: bool = False,
    cam_grid: tuple[int, int] = CAM_GRID,
    nan_for_red: bool = False,
    scaled_by_brightness: bool = False,
    crashes_when_bright: bool = False,
) -> Path:
    """Write a tiny classifier to `path` and return the path.

    batch: None for a dynamic batch dimension, an int for a static one.
    graph_classes: the width of the real output (set it different from the metadata's
        class count to build a model whose metadata lies).
    metadata: decoded contract values (default `tiny_metadata()`); {} writes none.
    channels: the real input's channel count (3 is right; others build a broken model).
    softmax: False outputs raw logits under the name "probabilities" (a broken export).
    cam: also output "cam" (N, h, w, C) over a CAM_GRID grid (the metadata must name it:
        pass `metadata=tiny_metadata(cam=True)`, or leave metadata None); `cam_grid` sets
        its (h, w), each dividing the input size.
    nan_for_red: the probabilities are NaN for images whose mean red is over half (a model
        that breaks down on some inputs only; a blank image still passes the load check):
        probabilities + 0 * sqrt(0.5 - mean red).
    scaled_by_brightness: the probabilities are multiplied by 1 + 100 * mean brightness: a
        probability vector on the blank load-time test image, garbage on any real photo.
    crashes_when_bright: ONNX Runtime fails mid-run on any image that is not black: the
        graph asks for a tensor of 10^15 * brightness floats (an allocation failure), which
        is empty for the blank load-time test image.
    """
    height, width = input_size
    batch_dim: int | str = "batch" if batch is None else batch
    weights, bias = _layer(graph_classes)
    if channels != 3:
        weights = np.resize(weights, (channels, graph_classes))

    outputs = [
        helper.make_tensor_value_info(
            "probabilities", TensorProto.FLOAT, [batch_dim, graph_classes]
        )
    ]
    initializers = [
        numpy_helper.from_array(np.array(1.0 / 255.0, dtype=np.float32), "inv_255"),
        numpy_helper.from_array(weights.astype(np.float32), "weights"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
    ]
    if cam:
        rows, cols = cam_grid
        # The mean of equal blocks' means is the image mean: the probabilities do not change.
        pooling = [
            helper.make_node("Reshape", ["image", "block_shape"], ["blocks"]),
            helper.make_node("ReduceMean", ["blocks"], ["block_rgb"], axes=[2, 4], keepdims=0),
            helper.make_node("Mul", ["block_rgb", "inv_255"], ["features"]),
            helper.make_node("MatMul", ["features", "weights"], ["cam"]),
            helper.make_node("ReduceMean", ["features"], ["unit_rgb"], axes=[1, 2], keepdims=0),
        ]
        block_shape = [-1, rows, height // rows, cols, width // cols, channels]
        initializers.append(numpy_helper.from_array(np.array(block_shape), "block_shape"))
        outputs.append(
            helper.make_tensor_value_info(
                "cam", TensorProto.FLOAT, [batch_dim, rows, cols, graph_classes]
            )
        )
    else:
        pooling = [
            helper.make_node("ReduceMean", ["image"], ["mean_rgb"], axes=[1, 2], keepdims=0),
            helper.make_node("Mul", ["mean_rgb", "inv_255"], ["unit_rgb"]),
        ]

    head = (
        "softmax"
        if nan_for_red or scaled_by_brightness or crashes_when_bright
        else ("probabilities")
    )
    breakdown = []
    if crashes_when_bright:
        initializers += [
            numpy_helper.from_array(np.array(1e15, dtype=np.float32), "huge"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "one_dim"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "nothing"),
        ]
        breakdown = [
            helper.make_node("ReduceMax", ["unit_rgb"], ["brightest"], keepdims=0),
            helper.make_node("Mul", ["brightest", "huge"], ["count_float"]),
            helper.make_node("Cast", ["count_float"], ["count"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["count", "one_dim"], ["shape"]),
            helper.make_node("ConstantOfShape", ["shape"], ["block"]),
            helper.make_node("ReduceSum", ["block"], ["block_sum"], keepdims=0),
            helper.make_node("Mul", ["block_sum", "nothing"], ["zero_sum"]),
            helper.make_node("Add", ["softmax", "zero_sum"], ["probabilities"]),
        ]
    if scaled_by_brightness:
        initializers += [
            numpy_helper.from_array(np.full((3, 1), 100.0 / 3, dtype=np.float32), "gain"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        ]
        breakdown = [
            helper.make_node("MatMul", ["unit_rgb", "gain"], ["brightness"]),
            helper.make_node("Add", ["brightness", "one"], ["factor"]),
            helper.make_node("Mul", ["softmax", "factor"], ["probabilities"]),
        ]
    if nan_for_red:
        initializers += [
            numpy_helper.from_array(np.array([[1.0], [0.0], [0.0]], dtype=np.float32), "red"),
            numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
        breakdown = [
            helper.make_node("MatMul", ["unit_rgb", "red"], ["red_mean"]),
            helper.make_node("Sub", ["half", "red_mean"], ["headroom"]),
            helper.make_node("Sqrt", ["headroom"], ["root"]),  # NaN when red is over half
            helper.make_node("Mul", ["root", "zero"], ["nan_or_zero"]),
            helper.make_node("Add", ["softmax", "nan_or_zero"], ["probabilities"]),
        ]

    graph = helper.make_graph(
        nodes=[
            *pooling,
            helper.make_node("MatMul", ["unit_rgb", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], [head], axis=-1)
            if softmax
            else helper.make_node("Identity", ["logits"], [head]),
            *breakdown,
        ],
        name="tiny_colour_classifier",
        inputs=[
            helper.make_tensor_value_info(
                "image", TensorProto.FLOAT, [batch_dim, height, width, channels]
            )
        ],
        outputs=outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="ewaste-sorter-tests",
    )
    model.ir_version = IR_VERSION
    values = tiny_metadata(input_size=input_size, cam=cam) if metadata is None else metadata
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

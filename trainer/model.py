"""The classifier: a backbone (EfficientNetV2B0 or EfficientNet-Lite0) + GAP / dropout /
softmax head.

Augmentation is not part of the model (it lives in the training data pipeline), so the
saved model is the inference graph the converter exports. Each backbone normalises its
input itself: the model takes float RGB pixels in 0-255 whatever the backbone.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np

from desktop.core.model_info import INPUT_NAME
from trainer import lite0, torch_weights
from trainer.config import TrainConfig
from trainer.errors import ConfigError
from trainer.weights import WeightsError, WeightsSource

BACKBONE_NAME = "backbone"


def build_model(config: TrainConfig, num_classes: int, weights: WeightsSource) -> keras.Model:
    shape = (config.image_size, config.image_size, 3)
    inputs = keras.Input(shape=shape, name=INPUT_NAME)
    if config.backbone == "efficientnet-lite0":
        backbone = lite0.build_lite0(shape, name=BACKBONE_NAME)
        if weights.path is not None:
            load_lite0_weights(backbone, weights)
    elif config.backbone == "efficientnetv2-b0":
        backbone = keras.applications.EfficientNetV2B0(
            include_top=False, weights=None, input_shape=shape, include_preprocessing=True
        )
        backbone.name = BACKBONE_NAME
        if weights.path is not None:
            load_backbone_weights(backbone, weights)
    else:
        raise ConfigError(f"unknown backbone {config.backbone!r}")
    freeze_first_layers(backbone, config.frozen_layers)
    if config.batchnorm == "frozen":
        freeze_batchnorm(backbone)
    elif config.batchnorm != "train":
        raise ConfigError(f"batchnorm must be 'train' or 'frozen', not {config.batchnorm!r}")
    features = backbone(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    dropped = keras.layers.Dropout(config.dropout, name="head_dropout")(pooled)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(dropped)
    model_name = "ewaste_" + config.backbone.replace("-", "_")
    return keras.Model(inputs, outputs, name=model_name)


def load_lite0_weights(backbone: keras.Model, weights: WeightsSource) -> None:
    """Read the PyTorch state dict (restricted unpickler) into the Keras Lite0 backbone."""
    try:
        state = torch_weights.read_state_dict(weights.path, weights.sha256)
        lite0.load_torch_state(backbone, state)
    except (torch_weights.TorchWeightsError, lite0.Lite0WeightsError) as exc:
        raise WeightsError(f"{weights.path}: {exc}") from exc


def load_backbone_weights(backbone: keras.Model, weights: WeightsSource) -> None:
    """Load a no-top weights file and prove that every backbone variable came from it."""
    before = [np.array(v.numpy(), copy=True) for v in backbone.weights]
    try:
        backbone.load_weights(str(weights.path))
    except Exception as exc:
        raise WeightsError(
            f"{weights.path} is not an EfficientNetV2B0 no-top weights file the backbone "
            f"can load ({_first_line(exc)})"
        ) from exc
    unchanged = [
        v.path
        for v, old in zip(backbone.weights, before, strict=True)
        if np.array_equal(v.numpy(), old)
    ]
    if unchanged:
        raise WeightsError(
            f"{weights.path} left {len(unchanged)} of {len(before)} backbone variables at "
            f"their initial values (first: {', '.join(unchanged[:3])}); "
            "it is not an EfficientNetV2B0 weights file"
        )


def load_earlier_model(path: Path) -> keras.Model:
    """The `--init-from` model, or a WeightsError that says why it cannot be read."""
    if not zipfile.is_zipfile(path):  # Keras says "File not found" of a file that is there
        raise WeightsError(
            f"--init-from {path} is not a .keras model file (not a zip archive: cut short, "
            "or another kind of file)"
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise WeightsError(
            f"--init-from {path} is not a model this trainer saved ({_first_line(exc)})"
        ) from exc


def load_initial_weights(model: keras.Model, path: Path) -> None:
    """Start `model` from every weight of an earlier run's model of the same shape."""
    earlier = load_earlier_model(path)
    ours = [tuple(v.shape) for v in model.weights]
    theirs = [tuple(v.shape) for v in earlier.weights]
    if ours != theirs:
        raise WeightsError(
            f"--init-from {path} is a different network (another class count or backbone): "
            f"{earlier.name} with outputs {earlier.output_shape}; this run builds "
            f"{model.name} with outputs {model.output_shape}"
        )
    model.set_weights(earlier.get_weights())


def freeze_first_layers(backbone: keras.Model, count: int) -> None:
    """Freeze the first `count` layers. BatchNorm in frozen layers stays in inference mode."""
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= count


def freeze_batchnorm(backbone: keras.Model) -> None:
    """Keep every BatchNorm in inference mode (Keras runs frozen BatchNorm that way), so
    small, augmented batches do not overwrite the ImageNet statistics."""
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _first_line(exc: Exception, limit: int = 200) -> str:
    """The gist of a loading error: Keras's can list every layer of both models (tens of
    KB), which buries the message; the cause stays chained for a debugger."""
    lines = str(exc).strip().splitlines()
    text = lines[0].rstrip(":") if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."

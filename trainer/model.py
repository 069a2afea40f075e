"""The classifier: EfficientNetV2B0 backbone + GAP / dropout / softmax head.

Augmentation is not part of the model (it lives in the training data pipeline), so the
saved model is the inference graph the converter exports. The backbone keeps Keras's
built-in preprocessing: the model takes float pixels in 0-255.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from trainer.config import TrainConfig
from trainer.weights import WeightsError, WeightsSource

BACKBONE_NAME = "backbone"


def build_model(config: TrainConfig, num_classes: int, weights: WeightsSource) -> keras.Model:
    inputs = keras.Input(shape=(config.image_size, config.image_size, 3), name="image")
    backbone = keras.applications.EfficientNetV2B0(
        include_top=False,
        weights=None,
        input_shape=(config.image_size, config.image_size, 3),
        include_preprocessing=True,
    )
    backbone.name = BACKBONE_NAME
    if weights.path is not None:
        load_backbone_weights(backbone, weights)
    freeze_first_layers(backbone, config.frozen_layers)
    features = backbone(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    dropped = keras.layers.Dropout(config.dropout, name="head_dropout")(pooled)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(dropped)
    return keras.Model(inputs, outputs, name="ewaste_efficientnetv2b0")


def load_backbone_weights(backbone: keras.Model, weights: WeightsSource) -> None:
    """Load a no-top weights file and prove that every backbone variable came from it."""
    before = [np.array(v.numpy(), copy=True) for v in backbone.weights]
    try:
        backbone.load_weights(str(weights.path))
    except Exception as exc:
        raise WeightsError(
            f"{weights.path} is not an EfficientNetV2B0 no-top weights file the backbone "
            f"can load: {exc}"
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


def load_initial_weights(model: keras.Model, path: Path) -> None:
    """Start `model` from every weight of an earlier run's model of the same shape."""
    try:
        earlier = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise WeightsError(f"--init-from {path} is not a model this trainer saved: {exc}") from exc
    ours = [tuple(v.shape) for v in model.weights]
    theirs = [tuple(v.shape) for v in earlier.weights]
    if ours != theirs:
        raise WeightsError(
            f"--init-from {path} is a different network (another class count or backbone): "
            f"it outputs {earlier.output_shape}, this run needs {model.output_shape}"
        )
    model.set_weights(earlier.get_weights())


def freeze_first_layers(backbone: keras.Model, count: int) -> None:
    """Freeze the first `count` layers. BatchNorm in frozen layers stays in inference mode."""
    for index, layer in enumerate(backbone.layers):
        layer.trainable = index >= count

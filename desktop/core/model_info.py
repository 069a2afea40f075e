"""The ONNX model contract: what the converter writes into `metadata_props` and the app reads.

Every value is a JSON string (parsed with `json.loads`, never `eval`). The app learns the
class names, input size and preprocessing from the model file itself, so nothing about the
classes is hard-coded on the station side.

Required keys:
  ewaste_format    1 (bumped on an incompatible change of this contract)
  class_names      ["Battery", ...]: index = position in the probability output
  input            {"name": "image", "size": [height, width], "layout": "NHWC", "dtype": "float32"}
  outputs          {"probabilities": "probabilities", "cam": "cam" or null}
  preprocessing    desktop.core.preprocessing.PREPROCESSING_CONTRACT
Optional keys that change what the app computes (ewaste-convert open-set writes them,
with the outputs "logits" and "unknown_score"):
  calibration      {"temperature": T, ...}: probabilities = softmax(logits / T)
  open_set         {"threshold": t, "score": "...", ...}: unknown_score > t means the
                   item is probably none of the classes (status "unknown")
Optional keys (shown to the user, never needed to run): source_sha256, metrics, training,
export, weights.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .limits import MAX_CLASS_NAME_LENGTH, MAX_CLASSES, MAX_INPUT_SIDE
from .preprocessing import LAYOUT, PREPROCESSING_CONTRACT, RESIZE_MODES, resize_mode_of

FORMAT_VERSION = 1
# The exported graph's tensor names: the converter gives them, the metadata names them.
INPUT_NAME = "image"
PROBABILITIES_OUTPUT = "probabilities"
CAM_OUTPUT = "cam"
# Optional outputs of a model with calibration and unknown-item detection (ewaste-convert
# open-set): the engine divides the logits by the metadata's temperature, and compares the
# unknown score with the metadata's threshold.
LOGITS_OUTPUT = "logits"
UNKNOWN_OUTPUT = "unknown_score"
REQUIRED_KEYS = ("ewaste_format", "class_names", "input", "outputs", "preprocessing")
# Preprocessing facts that change the pixels the model sees: a model trained with anything
# else would be fed wrong inputs by this app, so it is refused rather than used silently.
# "resize" is checked too, against every mode this app implements (the model says which).
CHECKED_PREPROCESSING = (
    "decoder",
    "exif_orientation",
    "color",
    "transparency",
    "high_bit_depth",
    "value_range",
    "layout",
    "dtype",
)


class ModelError(Exception):
    """The model file cannot be used by the app; the message says why, for the user."""


@dataclass(frozen=True)
class ModelInfo:
    class_names: tuple[str, ...]
    input_name: str
    input_size: tuple[int, int]  # (height, width)
    probabilities_output: str
    cam_output: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    resize: str = "stretch"  # a key of preprocessing.RESIZE_MODES, from the metadata
    logits_output: str | None = None  # with `temperature`: calibrated probabilities
    temperature: float | None = None
    unknown_output: str | None = None  # with `unknown_threshold`: the "unknown" status
    unknown_threshold: float | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def backbone(self) -> str | None:
        """A short line for the status bar: the backbone and where its weights came from,
        e.g. "efficientnet-lite0, ImageNet weights (Apache-2.0)"; None when not recorded."""
        weights = self.metadata.get("weights")
        if not isinstance(weights, dict):
            return None
        text = str(weights.get("backbone", "efficientnetv2-b0"))
        if weights.get("kind") == "none":
            return f"{text}, trained from scratch"
        text += ", ImageNet weights" if weights.get("kind") == "imagenet" else ", own weights"
        return f"{text} ({weights['license']})" if weights.get("license") else text


def encode_metadata(values: dict[str, Any]) -> dict[str, str]:
    """JSON-encode each value, ready for ONNX `metadata_props`."""
    return {key: json.dumps(value, ensure_ascii=False) for key, value in values.items()}


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """Parse `metadata_props` values written by `encode_metadata`; raise ModelError if bad."""
    decoded = {}
    for key, raw in props.items():
        try:
            decoded[key] = json.loads(raw)
        except (TypeError, ValueError, RecursionError) as exc:
            # ValueError covers bad JSON and integers too long to convert; RecursionError
            # arrays nested thousands deep.
            preview = raw if len(raw) <= 80 else raw[:77] + "..."
            raise ModelError(
                f"model metadata '{key}' is not valid JSON ({type(exc).__name__}): {preview!r}"
            ) from None
    return decoded


def parse_model_info(props: dict[str, str], source: str = "model") -> ModelInfo:
    """Validate the contract in `props` (ONNX `metadata_props`) and return a ModelInfo."""
    missing = [key for key in REQUIRED_KEYS if key not in props]
    if missing:
        raise ModelError(
            f"{source} has no E-Waste Sorter metadata (missing {', '.join(missing)}). "
            "Export it with `ewaste-convert export`, which writes the class names and "
            "input size into the file."
        )
    meta = decode_metadata(props)
    if type(meta["ewaste_format"]) is not int or meta["ewaste_format"] != FORMAT_VERSION:
        raise ModelError(
            f"{source} uses metadata format {meta['ewaste_format']!r}, this app reads "
            f"format {FORMAT_VERSION}"
        )
    names = _checked_class_names(meta["class_names"], source)
    try:
        spec = meta["input"]
        height, width = (int(v) for v in spec["size"])
        input_name = str(spec["name"])
        outputs = meta["outputs"]
        probabilities = str(outputs["probabilities"])
        cam = outputs.get("cam")
        logits, unknown = outputs.get(LOGITS_OUTPUT), outputs.get(UNKNOWN_OUTPUT)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelError(f"{source}: malformed input/outputs metadata ({exc})") from None
    if spec.get("layout", LAYOUT) != LAYOUT or not (
        8 <= height <= MAX_INPUT_SIDE and 8 <= width <= MAX_INPUT_SIDE
    ):
        raise ModelError(
            f"{source}: unsupported input {height}x{width} {spec.get('layout')!r} (need NHWC, "
            f"from 8x8 to {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE})"
        )
    resize = _check_preprocessing(meta["preprocessing"], source)
    temperature = _number_in(meta, "calibration", "temperature", source, low=1e-3, high=1e3)
    threshold = _number_in(meta, "open_set", "threshold", source, low=-1e6, high=1e6)
    if (temperature is None) != (not logits) or (threshold is None) != (not unknown):
        raise ModelError(
            f"{source}: calibration and open_set metadata need the outputs "
            f"'{LOGITS_OUTPUT}' and '{UNKNOWN_OUTPUT}', and those outputs need the metadata"
        )
    return ModelInfo(
        class_names=tuple(names),
        input_name=input_name,
        input_size=(height, width),
        probabilities_output=probabilities,
        cam_output=str(cam) if cam else None,
        metadata=meta,
        resize=resize,
        logits_output=str(logits) if logits else None,
        temperature=temperature,
        unknown_output=str(unknown) if unknown else None,
        unknown_threshold=threshold,
    )


def _number_in(
    meta: dict[str, Any], key: str, name: str, source: str, low: float, high: float
) -> float | None:
    """meta[key][name] as a finite number within [low, high]; None when `key` is absent."""
    section = meta.get(key)
    if section is None:
        return None
    value = section.get(name) if isinstance(section, dict) else None
    if type(value) not in (int, float) or not low <= value <= high:
        raise ModelError(f"{source}: {key}.{name} must be a number from {low:g} to {high:g}")
    return float(value)


def _checked_class_names(names: Any, source: str) -> list[str]:
    """Distinct, printable names, as many as a table and a spreadsheet can hold."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ModelError(f"{source}: class_names must be a list of names")
    if not 2 <= len(names) <= MAX_CLASSES:
        raise ModelError(f"{source} has {len(names)} classes; this app handles 2 to {MAX_CLASSES}")
    if len(set(names)) != len(names):
        raise ModelError(f"{source}: class_names must be distinct, got {names[:20]!r}")
    for name in names:
        # Control characters, and halves of a character (lone surrogates, which no file
        # can hold: the class's folder of a sort could not even be named).
        if len(name) > MAX_CLASS_NAME_LENGTH or any(
            unicodedata.category(ch) in ("Cc", "Cs") for ch in name
        ):
            raise ModelError(
                f"{source}: class name {name[:40]!r} is too long or holds control characters "
                "(NUL, line breaks, ...) or broken text, which a CSV cell, a table row or a "
                "folder name cannot show"
            )
    return names


def _check_preprocessing(declared: Any, source: str) -> str:
    """Refuse preprocessing this app does not do; returns the model's resize mode."""
    if not isinstance(declared, dict):
        raise ModelError(f"{source}: preprocessing metadata must be an object, got {declared!r}")
    for key in CHECKED_PREPROCESSING:
        if declared.get(key) != PREPROCESSING_CONTRACT[key]:
            raise ModelError(
                f"{source} was trained with {key} = {declared.get(key)!r}, but this app "
                f"preprocesses with {key} = {PREPROCESSING_CONTRACT[key]!r}; its predictions "
                "would be wrong. Re-export it with this version's ewaste-convert."
            )
    resize = resize_mode_of(declared.get("resize"))
    if resize is None:
        raise ModelError(
            f"{source} was trained with resize = {declared.get('resize')!r}, which this app "
            f"does not implement (it knows {', '.join(map(repr, RESIZE_MODES.values()))}); "
            "its predictions would be wrong."
        )
    return resize

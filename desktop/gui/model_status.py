"""What the window says about the model: the status-bar label and the About text."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QLabel, QWidget

from desktop.core.preprocessing import RESIZE_IN_WORDS
from desktop.gui.model_loader import ModelLoader
from desktop.gui.style import ERROR_COLOR, css

if TYPE_CHECKING:
    from desktop.core.engine import Engine


class ModelLabel(QLabel):
    """Follows the loader: "Loading model…", the model in use, or "No model" in red."""

    def __init__(self, models: ModelLoader, parent: QWidget | None = None) -> None:
        super().__init__("Loading model…", parent)
        self._models = models
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        models.started.connect(self._on_started)
        models.loaded.connect(self._show_engine)
        models.failed.connect(self._on_failed)

    @Slot()
    def _on_started(self) -> None:
        self.setText("Loading model…")
        self.setStyleSheet("")

    @Slot(str)
    def _on_failed(self, _message: str) -> None:
        engine = self._models.engine
        if engine is not None:
            self._show_engine(engine)  # still in use
            return
        self.setText("No model")
        self.setStyleSheet(f"color: {css(ERROR_COLOR)};")

    @Slot(object)
    def _show_engine(self, engine: Engine) -> None:
        self.setStyleSheet("")
        backbone = f" · {engine.info.backbone}" if engine.info.backbone else ""
        # Said once, here, so nobody reads "ok" as "this is one of the classes" by mistake.
        unknown = "" if engine.detects_unknown else " · no unknown-item detection"
        # "CPU", not "CPUExecutionProvider": the status bar is shared with the run's
        # progress message, which must not be cut off. About gives the full name.
        device = engine.provider.removesuffix("ExecutionProvider")
        self.setText(
            f"Model: {engine.model_path.name} · {engine.info.num_classes} classes{backbone}"
            f"{unknown} · {device}"
        )
        summary = engine.info.metadata.get("summary")
        self.setToolTip(f"{engine.model_path}\n{summary}" if summary else str(engine.model_path))


def about_text(models: ModelLoader) -> str:
    """Help › About the model: the file, classes, input and how it was made, in sentences;
    `model_record` has every recorded detail."""
    engine = models.engine
    if engine is None:
        return f"No model loaded.\n\n{models.error or ''}"
    info = engine.info
    meta = info.metadata
    lines = [
        f"Model file: {engine.model_path}",
        *([str(meta["summary"])] if meta.get("summary") else []),
        f"Classes ({info.num_classes}): {', '.join(info.class_names)}",
        f"Input: {info.input_size[1]}x{info.input_size[0]} RGB, resized by {info.resize} "
        f"({RESIZE_IN_WORDS[info.resize]})",
        f"Runtime: ONNX Runtime, {engine.provider}",
    ]
    weights, metrics = _section(meta, "weights"), _section(meta, "metrics")
    if weights.get("kind") == "imagenet":
        lines.append(
            f"Weights: {weights.get('origin', 'ImageNet')}; licence "
            f"{weights.get('license', 'not recorded')}; SHA-256 {weights.get('sha256', '?')}"
        )
    elif weights:
        lines.append(f"Weights: {info.backbone}")
    if isinstance(metrics.get("val_accuracy"), (int, float)):
        lines.append(f"Validation accuracy: {metrics['val_accuracy']:.1%}")
    quantization = _section(_section(meta, "export"), "quantization")
    if quantization:
        lines.append("Quantised to INT8: a smaller, faster file")
    if "temperature" in _section(meta, "calibration"):
        lines.append("Confidences: calibrated on the validation split")
    open_set = _section(meta, "open_set")
    if isinstance(open_set.get("stated_rate"), (int, float)):  # the file is untrusted
        lines.append(
            f"Unknown items: flagged when unlike every class; at most "
            f"{open_set['stated_rate']:.0%} of known items promised"
        )
    return "\n".join(lines)


def model_record(models: ModelLoader) -> str:
    """Everything the model file records about itself, for About's details."""
    engine = models.engine
    if engine is None:
        return ""
    return json.dumps(engine.info.metadata, indent=2, ensure_ascii=False, default=str)


def _section(values: dict[str, Any], key: str) -> dict[str, Any]:
    section = values.get(key)
    return section if isinstance(section, dict) else {}

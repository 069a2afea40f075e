"""The metadata written into the ONNX file, per desktop.core.model_info.

Required keys make the file self-describing for the app; the optional ones (source hash,
metrics, training recipe, export facts) are shown to the user and make a model traceable
back to the exact .keras file and run that produced it.
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Any

import onnx
import onnxruntime

from converter.errors import ConvertError
from converter.run_info import RunInfo, recorded_metrics
from desktop.core.model_info import (
    CAM_OUTPUT,
    FORMAT_VERSION,
    INPUT_NAME,
    PROBABILITIES_OUTPUT,
    ModelError,
    encode_metadata,
    parse_model_info,
)
from desktop.core.preprocessing import LAYOUT, contract
from trainer.run_folder import RunRecord
from trainer.weights import file_sha256


def build_metadata(
    *,
    class_names: list[str],
    size: tuple[int, int],
    cam: bool,
    batch: int | None,
    source: Path,
    run_info: RunInfo,
    opset: int,
) -> dict[str, Any]:
    input_spec: dict[str, Any] = {
        "name": INPUT_NAME,
        "size": list(size),
        "layout": LAYOUT,
        "dtype": "float32",
    }
    if batch is not None:
        input_spec["batch"] = batch
    values: dict[str, Any] = {
        "ewaste_format": FORMAT_VERSION,
        "class_names": list(class_names),
        "input": input_spec,
        "outputs": {"probabilities": PROBABILITIES_OUTPUT, "cam": CAM_OUTPUT if cam else None},
        "preprocessing": contract(run_info.resize),
        "source_sha256": file_sha256(source),
        "export": export_facts(opset, batch),
    }
    metrics = recorded_metrics(run_info)
    if metrics:
        values["metrics"] = metrics
    if run_info.run is not None:
        values.update(provenance(run_info.run, len(class_names)))
    return values


def provenance(run: RunRecord, num_classes: int) -> dict[str, Any]:
    """The training record and the weights the model began from, from run.json."""
    values: dict[str, Any] = {}
    if run.config is not None or run.weights:
        values["training"] = {
            "config": _portable_config(run.config),
            "weights_source": _weights_source(run.weights),
            "init_from": run.init_from,
            "versions": run.versions,
        }
        if run.soup:
            values["training"]["soup"] = run.soup
    if run.weights:
        # The weights the model's history began from (a fine-tune run started from an
        # earlier run's model records weights "none" itself).
        first, _ = first_run_weights(run.weights, run.init_from)
        values["weights"] = first or run.weights
        # Said in words too: a model without pretrained weights is much weaker, and
        # whoever inspects the file should not have to decode that from the recipe.
        origin = _origin(run.weights, run.init_from)
        if run.soup:
            origin += f", the weight average of {len(run.soup.get('ingredients', ()))} runs"
        values["summary"] = f"E-waste classifier, {num_classes} classes, {origin}"
    return values


def _portable_config(config: Any) -> Any:
    """The recipe as recorded, with `init_from` cut to its run folder and file name: the
    file travels to other machines, which have no use for this one's paths."""
    if not isinstance(config, dict) or not config.get("init_from"):
        return config
    path = Path(str(config["init_from"]))
    return {**config, "init_from": f"{path.parent.name}/{path.name}"}


def _origin(weights: dict[str, Any], init_from: Any) -> str:
    """Where the weights came from, in words, following warm restarts back to the first run."""
    first, runs = first_run_weights(weights, init_from)
    if first is None:  # no run.json beside an earlier model: provenance unknown
        return f"continued from the model {init_from_path(init_from)} (origin not recorded)"
    backbone = first.get("backbone", "efficientnetv2-b0")
    if first.get("kind") == "none":
        origin = f"{backbone} trained from scratch (no pretrained weights)"
    else:
        described = first.get("origin") or f"{_weights_source(first)} weights"
        origin = f"{backbone} fine-tuned from {described}"
        if first.get("license"):
            origin += f" (weights licence: {first['license']})"
    return origin if runs == 1 else f"{origin}, in {runs} runs (warm restarts)"


def first_run_weights(weights: dict[str, Any], init_from: Any) -> tuple[dict | None, int]:
    """The weights the first run of a chain started from, and how many runs the chain has.

    A run started `--init-from` an earlier model records that model's own weights and
    `init_from` (from its run.json), so the chain leads to the run that began it. None when
    a link has no record.
    """
    runs = 1
    while isinstance(init_from, dict):
        earlier = init_from.get("weights")
        if not isinstance(earlier, dict):
            return None, runs + 1
        weights, init_from, runs = earlier, init_from.get("init_from"), runs + 1
    return weights, runs


def init_from_path(init_from: Any) -> Any:
    """The innermost recorded model path of an init_from chain without a weights record."""
    while isinstance(init_from, dict) and isinstance(init_from.get("weights"), dict):
        init_from = init_from.get("init_from")
    return init_from.get("path") if isinstance(init_from, dict) else None


def _weights_source(weights: dict[str, Any] | None) -> str | None:
    """ "none", "imagenet" or the file's name, from the trainer's {"kind", "file", ...}
    (runs before the Lite0 backbone wrote "path" instead of "file")."""
    if not weights:
        return None
    if weights.get("kind") == "file":
        return weights.get("file") or weights.get("path")
    return weights.get("kind")


def export_facts(opset: int, batch: int | None) -> dict[str, Any]:
    # Imported here: the rest of this module (set-resize's metadata edit) needs no TensorFlow.
    import keras
    import tensorflow as tf
    import tf2onnx

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,  # the runtime that passed the parity check
        "opset": opset,
        "batch": batch if batch is not None else "dynamic",
        "python": platform.python_version(),
    }


def attach_metadata(model_proto: onnx.ModelProto, values: dict[str, Any]) -> None:
    """Write `values` into metadata_props, after proving the app will accept them."""
    props = encode_metadata(values)
    try:
        parse_model_info(props, source="the exported model")
    except ModelError as exc:
        raise ConvertError(str(exc)) from exc
    kept = [p for p in model_proto.metadata_props if p.key not in props]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(kept)
    for key, value in props.items():
        model_proto.metadata_props.add(key=key, value=value)


def read_metadata(model_proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model_proto.metadata_props}

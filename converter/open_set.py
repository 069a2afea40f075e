"""Calibration and unknown-item detection, added to an exported ONNX classifier.

The classifier's graph already computes what both need: the logits (the Softmax's input)
and the pooled features (the input of the final Dense). `head_tensors` finds them by
walking back from the `probabilities` output through the graph's structure (quantize /
dequantize pairs of an INT8 file included), never by tensor names. `with_open_set` then
adds two outputs, so the model file stays the only contract:

  logits          (N, C)  the engine divides them by the fitted temperature
  unknown_score   (N,)    the cosine distance of the image's pooled features to the
                          nearest class centre of the training features, in units of that
                          class's spread (its mean training distance); the centres and
                          spreads travel inside the graph as initializers

The temperature and the threshold go into the metadata (`calibration`, `open_set`).
Only onnx and NumPy here: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converter.errors import ConvertError
from converter.metadata import attach_metadata
from desktop.core.model_info import (
    LOGITS_OUTPUT,
    PROBABILITIES_OUTPUT,
    UNKNOWN_OUTPUT,
    decode_metadata,
    parse_model_info,
)
from desktop.core.prediction_loop import decoded_batches, stack_decoded
from trainer import calibration
from trainer.audit import audit_dataset
from trainer.audit.scanning import relative_path
from trainer.dataset import Dataset

# Quantize/dequantize pairs sit between the real operations of an INT8 graph.
_PASS_THROUGH = {"QuantizeLinear", "DequantizeLinear", "Identity"}
# A zero feature vector would divide by zero when normalised.
_NORM_EPSILON = 1e-6
# The smallest class spread allowed, as a share of the median class's (see class_radii).
_MIN_RADIUS_SHARE = 0.1
# The share of known items the app may call unknown, as promised to the user, and how sure
# the threshold must make that promise (trainer.calibration.threshold_for_promise).
PROMISED_REJECT_RATE = 0.05
PROMISE_CONFIDENCE = 0.95


@dataclass(frozen=True)
class HeadTensors:
    logits: str  # (N, C), the Softmax's input
    features: str  # (N, F), the final Dense's input (pooled features)


def head_tensors(graph: onnx.GraphProto) -> HeadTensors:
    """The logits and pooled-feature tensors feeding the `probabilities` output."""
    producers = {output: node for node in graph.node for output in node.output}
    softmax = _producer_through(producers, PROBABILITIES_OUTPUT)
    if softmax is None or softmax.op_type != "Softmax":
        raise ConvertError("the graph's probabilities output does not come from a Softmax")
    logits = softmax.input[0]
    dense = _producer_through(producers, logits)
    if dense is not None and dense.op_type == "Add":  # MatMul + Add instead of one Gemm
        inputs = [_producer_through(producers, name) for name in dense.input]
        dense = next((node for node in inputs if node and node.op_type == "MatMul"), None)
    if dense is None or dense.op_type not in ("Gemm", "MatMul"):
        raise ConvertError("the logits do not come from a Dense layer (Gemm or MatMul + Add)")
    return HeadTensors(logits=logits, features=dense.input[0])


def _producer_through(producers: dict[str, onnx.NodeProto], name: str) -> onnx.NodeProto | None:
    node = producers.get(name)
    while node is not None and node.op_type in _PASS_THROUGH:
        node = producers.get(node.input[0])
    return node


def with_outputs(
    model: onnx.ModelProto, outputs: dict[str, str], shapes: dict[str, list] | None = None
) -> onnx.ModelProto:
    """A copy of `model` with extra outputs {new output name: existing tensor name}, of the
    given shapes (None dimensions are unknown; no shape at all when not given)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name, tensor in outputs.items():
        shape = (shapes or {}).get(name)
        if tensor != name:  # a tensor already so named only needs to be listed as an output
            probe.graph.node.append(helper.make_node("Identity", [tensor], [name]))
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    return probe


def normalised(rows: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (the cosine geometry of the feature bank)."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, _NORM_EPSILON)


def knn_unknown_score(features: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """A candidate score the open-set benchmark compares (not the one shipped): 1 - mean
    cosine similarity to the k nearest rows of `bank` (already normalised)."""
    similarity = normalised(features) @ bank.T
    nearest = -np.sort(-similarity, axis=1)[:, :k]
    return 1.0 - nearest.mean(axis=1)


def with_open_set(
    model: onnx.ModelProto, centres: np.ndarray, radii: np.ndarray
) -> onnx.ModelProto:
    """A copy of `model` with the `logits` and `unknown_score` outputs (see the module)."""
    if centres.ndim != 2 or radii.shape != (len(centres),) or not (radii > 0).all():
        raise ConvertError("need one centre and one positive radius per class")
    head = head_tensors(model.graph)
    [probabilities] = [o for o in model.graph.output if o.name == PROBABILITIES_OUTPUT]
    classes = probabilities.type.tensor_type.shape.dim[1].dim_value or None
    result = with_outputs(model, {LOGITS_OUTPUT: head.logits}, {LOGITS_OUTPUT: [None, classes]})
    graph = result.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(normalised(centres).T.copy(), "open_set_centres_t"),
            numpy_helper.from_array(radii.astype(np.float32), "open_set_radii"),
            numpy_helper.from_array(np.array(_NORM_EPSILON, dtype=np.float32), "open_set_eps"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "open_set_one"),
        ]
    )
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    reduce = _reduce_over_axis_1(graph, opset)
    graph.node.extend(
        [
            reduce("ReduceL2", head.features, "open_set_norm", keepdims=1),
            helper.make_node("Max", ["open_set_norm", "open_set_eps"], ["open_set_safe_norm"]),
            helper.make_node("Div", [head.features, "open_set_safe_norm"], ["open_set_unit"]),
            helper.make_node("MatMul", ["open_set_unit", "open_set_centres_t"], ["open_set_sim"]),
            helper.make_node("Sub", ["open_set_one", "open_set_sim"], ["open_set_distance"]),
            helper.make_node("Div", ["open_set_distance", "open_set_radii"], ["open_set_scaled"]),
            reduce("ReduceMin", "open_set_scaled", UNKNOWN_OUTPUT, keepdims=0),
        ]
    )
    graph.output.append(helper.make_tensor_value_info(UNKNOWN_OUTPUT, TensorProto.FLOAT, [None]))
    onnx.checker.check_model(result)
    return result


def without_open_set(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a model `with_open_set` built, as it was before: without the two outputs,
    the nodes and initializers only they used, and their metadata. A model is re-fitted
    from this (after `ewaste-convert set-resize`, whose crop changes the features)."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    kept_outputs = [o for o in graph.output if o.name not in (LOGITS_OUTPUT, UNKNOWN_OUTPUT)]
    del graph.output[:]
    graph.output.extend(kept_outputs)
    needed = {o.name for o in kept_outputs}
    kept_nodes = []
    for node in reversed(graph.node):  # the graph is in topological order: walk it back
        if needed.intersection(node.output):
            kept_nodes.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept_nodes))
    kept_initializers = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept_initializers)
    values = decode_metadata({p.key: p.value for p in model.metadata_props})
    for key in ("calibration", "open_set"):
        values.pop(key, None)
    values["outputs"] = {
        key: name
        for key, name in values["outputs"].items()
        if key not in (LOGITS_OUTPUT, UNKNOWN_OUTPUT)
    }
    del result.metadata_props[:]
    attach_metadata(result, values)
    onnx.checker.check_model(result)
    return result


def _reduce_over_axis_1(graph: onnx.GraphProto, opset: int):
    """A maker of Reduce* nodes over axis 1: an attribute before opset 18, an input since."""
    if opset < 18:
        return lambda op, x, y, keepdims: helper.make_node(
            op, [x], [y], axes=[1], keepdims=keepdims
        )
    graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "open_set_axis"))
    return lambda op, x, y, keepdims: helper.make_node(
        op, [x, "open_set_axis"], [y], keepdims=keepdims
    )


class Probe:
    """An ONNX classifier run with its logits and pooled features exposed, on image files
    decoded by the app's own prediction loop."""

    def __init__(self, model: onnx.ModelProto, source: str = "model"):
        import onnxruntime as ort  # only here: building a graph needs no runtime

        head = head_tensors(model.graph)
        probe = with_outputs(model, {"probe_logits": head.logits, "probe_features": head.features})
        self.info = parse_model_info({p.key: p.value for p in model.metadata_props}, source)
        self._session = ort.InferenceSession(
            probe.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        batch = self._session.get_inputs()[0].shape[0]
        self._static_batch = batch if isinstance(batch, int) and batch > 0 else None

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        try:
            return _probe_run_padded(self._session, self.info.input_name, batch, self._static_batch)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind error types
            raise ConvertError(f"ONNX Runtime failed on the model: {exc}") from exc

    def run(self, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(logits, features, indices of the readable `paths`), in order."""
        logits, features, kept = [], [], []
        batches = decoded_batches(
            paths, self.info.input_size, self.info.resize, batch_size=64, workers=2
        )
        offset = 0
        for batch_paths, decoded in batches:
            good, batch = stack_decoded(decoded)
            if batch is not None:
                out = self._run(batch)
                logits.append(out[0])
                features.append(out[1])
                kept += [offset + i for i in good]
            offset += len(batch_paths)
        if not kept:
            raise ConvertError("none of the images could be read")
        return np.concatenate(logits), np.concatenate(features), kept


def _probe_run_padded(session, input_name: str, batch: np.ndarray, size: int | None):
    """Run the probe; a model with a fixed batch gets chunks of that size, padded."""
    names = ["probe_logits", "probe_features"]
    if size is None:
        return session.run(names, {input_name: batch})
    parts = []
    for start in range(0, len(batch), size):
        chunk = batch[start : start + size]
        filled = len(chunk)
        if filled < size:
            padding = np.zeros((size - filled, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, padding])
        parts.append([out[:filled] for out in session.run(names, {input_name: chunk})])
    return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]


def class_centres(features: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """The normalised mean of each class's normalised training features (C, F)."""
    unit = normalised(features)
    return normalised(np.stack([unit[labels == c].mean(axis=0) for c in range(classes)]))


def class_radii(features: np.ndarray, labels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Each class's mean cosine distance from its training images to its centre (C,): how
    spread out the class is (batteries vary far more than keyboards)."""
    distance = 1.0 - normalised(features) @ centres.T
    radii = np.array([distance[labels == c, c].mean() for c in range(len(centres))])
    # A class whose training images (nearly) coincide, one photo or copies of it, shows no
    # real spread; dividing by that would call every new photo of it unknown. No class may
    # be tighter than a tenth of the typical one (the shipped model's tightest: two thirds).
    typical = float(np.median(radii))
    if typical <= _NORM_EPSILON:  # most classes without spread: plain cosine distances
        return np.ones_like(radii)
    return np.maximum(radii, _MIN_RADIUS_SHARE * typical)


def centre_unknown_score(
    features: np.ndarray, centres: np.ndarray, radii: np.ndarray
) -> np.ndarray:
    """NumPy reference of the graph's score: the cosine distance to the nearest class
    centre, in units of that class's radius (min over classes of distance / radius). About
    1 for a typical training image; the threshold is set on validation data."""
    distance = 1.0 - normalised(features) @ centres.T
    return (distance / radii).min(axis=1)


def unseen_mask(dataset: Dataset, val_paths: Sequence[Path]) -> np.ndarray:
    """Which of these validation images the threshold is judged on: those with no duplicate
    in the training split, and one of each group of copies inside validation (the bound
    counts each as a separate photo). Only train and val are read: the test split, left out
    of the audit, cannot change which validation images count."""
    test = dataset.splits["test"]
    without_test = replace(
        dataset,
        splits={**dataset.splits, "test": replace(test, samples=[], skipped_non_images=[])},
    )
    audit = audit_dataset(without_test).audit
    keep = audit.paths_without_duplicates("val")
    for group in (*audit.exact_duplicates, *audit.near_duplicates):
        keep -= set(sorted(m.path for m in group.members if m.split == "val")[1:])
    return np.array([relative_path(p, dataset.root) in keep for p in val_paths], dtype=bool)


@dataclass(frozen=True)
class OpenSetFit:
    model: onnx.ModelProto  # with the new outputs and metadata
    temperature: float
    threshold: float
    summary: dict[str, Any]


def fit_open_set(
    model: onnx.ModelProto,
    dataset: Dataset,
    promised_rate: float = PROMISED_REJECT_RATE,
    confidence: float = PROMISE_CONFIDENCE,
    source: str = "model",
) -> OpenSetFit:
    """Fit the temperature on the validation split, the class centres on the training
    split, and the threshold that keeps new known items' rejection under `promised_rate`
    with `confidence`; return the model with both (the test split is never read here).

    The threshold is judged on the validation images with no duplicate in the training
    split (the audit's pHash rule, `unseen_mask`): a photo the model trained on lies near
    its class centre and would make the rate look lower than new photos will see.

    A model fitted before is fitted again from scratch (`without_open_set`): its outputs,
    centres, temperature and threshold are replaced."""
    probe = Probe(model, source)
    if probe.info.unknown_output or probe.info.logits_output:
        model = without_open_set(model)
        probe = Probe(model, source)
    if list(probe.info.class_names) != list(dataset.class_names):
        raise ConvertError(
            f"the model's classes {list(probe.info.class_names)} are not the dataset's "
            f"{list(dataset.class_names)}"
        )
    _, train_features, kept = probe.run(dataset.paths("train"))
    train_labels = np.array(dataset.labels("train"))[kept]
    val_logits, val_features, kept = probe.run(dataset.paths("val"))
    val_labels = np.array(dataset.labels("val"))[kept]
    if len(set(train_labels.tolist())) != len(dataset.class_names):
        raise ConvertError("every class needs readable training images")

    temperature = calibration.fit_temperature(val_logits, val_labels)
    centres = class_centres(train_features, train_labels, len(dataset.class_names))
    radii = class_radii(train_features, train_labels, centres)
    scores = centre_unknown_score(val_features, centres, radii)
    unseen = unseen_mask(dataset, [dataset.paths("val")[i] for i in kept])
    if not unseen.any():
        raise ConvertError(
            "every readable validation image has a duplicate in train; the unknown-item "
            "threshold needs validation photos the model has not trained on"
        )
    promise = calibration.threshold_for_promise(scores[unseen], promised_rate, confidence)
    threshold = promise.threshold
    before = calibration.softmax(val_logits)
    after = calibration.softmax(val_logits, temperature)
    summary = {
        "calibration": {
            "temperature": temperature,
            "fitted_on": "val",
            "val_nll": [calibration.nll(val_logits, val_labels, t) for t in (1.0, temperature)],
            "val_ece": [
                calibration.expected_calibration_error(p, val_labels) for p in (before, after)
            ],
        },
        "open_set": {
            "score": "cosine distance to the nearest class centre of the training features, "
            "in units of that class's mean training distance",
            "threshold": threshold,
            "val_rejected": float((scores > threshold).mean()),
            "chosen_on": "val",  # its images without a duplicate in train, see unseen_mask
            "val_images_used": int(unseen.sum()),
            "val_images_used_rejected": promise.rejected,
            "stated_rate": promised_rate,
            "confidence": confidence,
            "rate_upper_bound": promise.upper_bound,
            "kept_promise": promise.kept_promise,
            "method": "benchmarks/bench_open_set.py",
        },
    }
    built = with_open_set(model, centres, radii)
    values = decode_metadata({p.key: p.value for p in model.metadata_props})
    values["outputs"] = {
        **values["outputs"],
        LOGITS_OUTPUT: LOGITS_OUTPUT,
        UNKNOWN_OUTPUT: UNKNOWN_OUTPUT,
    }
    values.update(summary)
    attach_metadata(built, values)
    return OpenSetFit(built, temperature, threshold, summary)

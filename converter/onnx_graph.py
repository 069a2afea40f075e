"""Keras inference model -> ONNX ModelProto with tf2onnx, checked and with contract names.

Why `tf2onnx.convert.from_keras` and not `from_function`: with Keras 3, EfficientNetV2's
Normalization layer keeps its mean and variance as eager tensors that a traced
tf.function captures. tf2onnx 1.17's `from_function` lists every captured tensor as a
graph input (the exported model then demands two extra inputs), while `from_keras`
excludes captures, lets TensorFlow freeze them to constants, and traces the model with
training=False. Its Keras-3 path is exercised by the tests with a real EfficientNetV2B0.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import keras
import onnx
import tensorflow as tf
import tf2onnx

from converter.errors import ConvertError
from converter.keras_model import keras_layer_names, output_names
from desktop.core.model_info import INPUT_NAME

DEFAULT_OPSET = 17
MIN_OPSET = 17
# The newest opset this tf2onnx knows; the app's onnxruntime>=1.17 reads up to opset 20.
MAX_OPSET = max(tf2onnx.constants.OPSET_TO_IR_VERSION)


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConvertError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}")


def convert(
    inference_model: keras.Model,
    size: tuple[int, int],
    opset: int = DEFAULT_OPSET,
    batch: int | None = None,
) -> onnx.ModelProto:
    """Convert with tf2onnx; `batch` None gives a dynamic batch dimension."""
    check_opset(opset)
    height, width = size
    signature = [tf.TensorSpec([batch, height, width, 3], tf.float32, name=INPUT_NAME)]
    # tf2onnx logs every optimiser pass at INFO and continues past unsupported ops with an
    # ERROR log; unsupported ops are found in the graph below instead, with the layer named.
    tf2onnx.logging.set_level(logging.CRITICAL)
    try:
        model_proto, _ = tf2onnx.convert.from_keras(
            inference_model, input_signature=signature, opset=opset
        )
    except Exception as exc:  # noqa: BLE001 - tf2onnx/TF raise many types
        first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise ConvertError(f"tf2onnx could not convert the model: {first}") from exc
    _reject_unsupported_ops(model_proto, keras_layer_names(inference_model))
    _rename_io(model_proto, output_names(inference_model))
    return model_proto


def _reject_unsupported_ops(model_proto: onnx.ModelProto, layer_names: list[str]) -> None:
    """tf2onnx leaves TensorFlow ops it cannot convert in the graph; name their layers."""
    bad = [
        node
        for node in _all_nodes(model_proto.graph)
        if not onnx.defs.has(node.op_type, node.domain or "")
    ]
    if not bad:
        return
    culprits: dict[str, set[str]] = {}
    for node in bad:
        layer = _layer_of(node.name, layer_names) or "?"
        culprits.setdefault(layer, set()).add(node.op_type)
    described = "; ".join(
        f"layer '{layer}' (TensorFlow op {', '.join(sorted(ops))})"
        for layer, ops in sorted(culprits.items())
    )
    raise ConvertError(f"unsupported layer: no ONNX equivalent for {described}")


def _all_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attribute.g)
            for subgraph in attribute.graphs:
                yield from _all_nodes(subgraph)


def _layer_of(node_name: str, layer_names: list[str]) -> str | None:
    """The innermost Keras layer named in a TF op name like 'model_1/backbone_1/conv_3/Conv'.

    TensorFlow name scopes append '_<n>' to layer names, so each scope part is also tried
    without its last numeric suffix.
    """
    known = set(layer_names)
    for part in reversed(node_name.split("/")[:-1]):
        if part in known:
            return part
        stripped = re.sub(r"_\d+$", "", part)
        if stripped in known:
            return stripped
    return None


def _rename_io(model_proto: onnx.ModelProto, wanted_outputs: list[str]) -> None:
    """Give the single input and the outputs their contract names (tf2onnx may not)."""
    graph = model_proto.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise ConvertError(
            f"the converted graph has inputs {[v.name for v in inputs]}, expected one image input"
        )
    if len(graph.output) != len(wanted_outputs):
        raise ConvertError(
            f"the converted graph has {len(graph.output)} outputs, expected {len(wanted_outputs)}"
        )
    renames = {inputs[0].name: INPUT_NAME}
    renames.update(
        {value.name: name for value, name in zip(graph.output, wanted_outputs, strict=True)}
    )
    # One readable symbol for the batch axis instead of tf2onnx's 'unk__37' and friends.
    for value in [inputs[0], *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_param"):
            dims[0].dim_param = "batch"
    renames = {old: new for old, new in renames.items() if old != new}
    if not renames:
        return
    used = {name for node in _all_nodes(graph) for name in (*node.input, *node.output)}
    clashes = sorted(set(renames.values()) & (used - set(renames)))
    if clashes:
        raise ConvertError(f"the converted graph already has tensors named {clashes}")
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = renames.get(value.name, value.name)
    for node in _all_nodes(graph):
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]

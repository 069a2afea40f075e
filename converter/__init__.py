"""Exports a trained Keras model to ONNX with tf2onnx and proves Keras/ONNX Runtime parity."""

# First, before any module here imports ONNX Runtime: it turns its telemetry off.
import desktop.core  # noqa: F401

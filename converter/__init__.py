"""Exports a trained Keras model to ONNX with tf2onnx and proves Keras/ONNX Runtime parity."""

"""Qt-free, TensorFlow-free inference engine: preprocessing, model loading, batching, CSV."""

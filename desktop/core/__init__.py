"""Qt-free, TensorFlow-free inference engine: preprocessing, model loading, batching, CSV."""

import os as _os

# ONNX Runtime's official builds (Linux and macOS too) queue usage events with a device ID
# under ~/.cache/Microsoft and send them to Microsoft, on by default (its Privacy.md). The
# station promises no internet. The switch must be set before ONNX Runtime is imported,
# and this package's __init__ runs before any module here imports it; with it, nothing is
# stored either, so a read-only home folder no longer draws a warning on every start.
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"

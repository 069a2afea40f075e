"""Every limit the station enforces, in one place (stdlib only: the GUI imports it at start).

A model file and the command line are untrusted input: beyond these a station PC would run
out of memory, hang on thread creation, or stall a table, instead of refusing with a clear
message. Each value leaves ample room above what the shipped model and a station need.
"""

from __future__ import annotations

# The command line and the app's options.
MAX_THREADS = 64  # ONNX Runtime intra-op threads; a station PC has 2-16 cores
MAX_BATCH = 256  # images per inference batch; 32 is the default

# What a model file may ask for.
MAX_INPUT_SIDE = 1024  # pixels; the shipped model takes 160
MAX_STATIC_BATCH = 256  # a graph exported with a fixed batch dimension
MAX_CAM_SIDE = 64  # activation-map cells per side; the shipped model's map is 5x5
MAX_CLASSES = 1000  # the CSV holds 5 + one column per class; spreadsheets stop at 16,384
MAX_CLASS_NAME_LENGTH = 200
# The load's test run on one blank batch: milliseconds for the shipped model (static batch
# 256 of a large network: seconds), for ever for a file holding a loop of 2^62 turns.
TEST_RUN_SECONDS = 60.0

# File names: most file systems allow 255 bytes per name (not characters).
MAX_FILE_NAME_BYTES = 255

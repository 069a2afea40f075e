"""Qt-free, TensorFlow-free inference engine: preprocessing, model loading, batching, CSV."""

import os as _os
import tempfile as _tempfile


def _writable_cache_for_onnxruntime() -> None:
    """ONNX Runtime stores a telemetry device ID in the user's cache folder when it is
    imported, and prints a coloured warning on every start where it cannot (a read-only
    home on a locked-down station PC). Runs before any module here imports it: such a
    process gets a cache folder in the temporary folder instead."""
    cache = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
    try:
        _os.makedirs(cache, exist_ok=True)  # what ONNX Runtime would do itself
        writable = _os.access(cache, _os.W_OK)
    except OSError:
        writable = False
    if not writable:
        fallback = _os.path.join(_tempfile.gettempdir(), f"ewaste-sorter-cache-{_os.getuid()}")
        _os.environ["XDG_CACHE_HOME"] = fallback


if _os.name == "posix":  # the cache folder rule is the XDG one; Windows has its own
    _writable_cache_for_onnxruntime()

"""argparse value types shared by `ewaste-classify` and `ewaste-app` (stdlib only)."""

from __future__ import annotations

import argparse

from .limits import MAX_BATCH, MAX_THREADS


def _whole_number(text: str, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"must be from 1 to {most}, got {value}")
    return value


def port_number(text: str) -> int:
    """--port (ewaste-web): one a server can listen on (Gradio's own check fails on others
    with a traceback)."""
    return _whole_number(text, 65535)


def thread_count(text: str) -> int:
    """--threads: 1 to MAX_THREADS (more hangs or crashes under a process limit)."""
    return _whole_number(text, MAX_THREADS)


def batch_size(text: str) -> int:
    """--batch: 1 to MAX_BATCH (more exhausts memory)."""
    return _whole_number(text, MAX_BATCH)


def probability(text: str) -> float:
    """A number between 0 and 1 (--review-threshold)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value

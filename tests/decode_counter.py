"""Count the files the engine decodes: tests of stop, cancel and prefetch check what the
worker did, not how long it took."""

from __future__ import annotations

import threading
import time

import pytest

import desktop.core.prediction_loop as prediction_loop


def count_decodes(monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0) -> list[str]:
    """Every file the engine begins to decode from now on, in order; each decode can be
    slowed by `delay_s` to keep a run going however fast the machine."""
    decoded: list[str] = []
    real_load_rgb = prediction_loop.load_rgb

    def counting_load_rgb(path, *args, **kwargs):
        decoded.append(str(path))
        time.sleep(delay_s)
        return real_load_rgb(path, *args, **kwargs)

    monkeypatch.setattr(prediction_loop, "load_rgb", counting_load_rgb)
    return decoded


def wait_for_decodes(decoded: list[str], count: int, limit_s: float = 60.0) -> None:
    """Wait (bounded, not asserted on) until `count` decodes have begun."""
    deadline = time.monotonic() + limit_s
    while len(decoded) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def wait_for_decode_threads_to_end(limit_s: float = 60.0) -> None:
    """Wait (bounded) until the engine's decode threads have all ended."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and any(
        thread.name.startswith("ewaste-decode") for thread in threading.enumerate()
    ):
        time.sleep(0.01)

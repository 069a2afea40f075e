"""Run one function on a thread of its own and get its result back in the GUI thread.

Used for work that is not a classification run but must not block painting: loading a
model (ONNX Runtime session creation and a warm-up run), writing a CSV (ends in fsync),
reading one back, each poll of a watched folder, a recovery copy, and a sort or an undo
(minutes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

# A thread for each call: each owner runs at most one at a time, so a handful at most.
# Qt's global pool has as many threads as cores (2 at a station), where a sort of minutes
# and a poll of a share that stopped answering held up a CSV export behind them.
MAX_CALLS_AT_ONCE = 16
_pool: QThreadPool | None = None


def _calls_pool() -> QThreadPool:
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(MAX_CALLS_AT_ONCE)
    return _pool


class BackgroundCall(QObject):
    """Calls `function()` on a pool thread; emits `succeeded(result)` or `failed(exc)`.

    Created in the GUI thread, so both signals arrive there (queued). Deliberately without
    a Qt parent: the running job holds a Python reference, so the object cannot be deleted
    under the pool thread while it emits, even if the window that asked is closed and
    deleted meanwhile (Qt then drops the connections to it; nothing is delivered).
    """

    succeeded = Signal(object)
    failed = Signal(object)  # the exception

    def __init__(self, function: Callable[[], Any]) -> None:
        super().__init__()
        self._function = function
        self.done = False
        self._ended = threading.Event()  # set on the pool thread, for `wait`
        self.outcome: object = None  # the result or the exception, once emitted
        self.succeeded.connect(self._mark_done)
        self.failed.connect(self._mark_done)

    def start(self) -> BackgroundCall:
        _calls_pool().start(self._run)
        return self

    def _run(self) -> None:
        try:
            result = self._function()
        except Exception as exc:  # noqa: BLE001 - handed to the GUI, which reports it
            self.outcome = exc
            self.failed.emit(exc)
        else:
            self.outcome = result
            self.succeeded.emit(result)
        finally:
            self._ended.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the function has returned (or `timeout_s` passed); True if it has.
        Its signal still arrives through the event loop."""
        return self._ended.wait(timeout_s)

    def _mark_done(self, _value: object) -> None:
        self.done = True


def wait_for_background_calls(timeout_ms: int) -> bool:
    """Wait up to `timeout_ms` for calls still running (at exit); True when none is left."""
    return _pool is None or _pool.waitForDone(timeout_ms)

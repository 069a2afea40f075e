"""Loads a model off the GUI thread and owns the engine in use.

Creating an ONNX Runtime session (and its warm-up run) takes a noticeable moment, so it runs
on a pool thread while the window paints. Only the latest request counts: a load that ends
after a newer one was asked for is ignored. A failed load keeps the engine already in use.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from desktop.core.model_info import ModelError
from desktop.gui.background import BackgroundCall

if TYPE_CHECKING:
    from desktop.core.engine import Engine


def _load_engine(model_path: str | None, threads: int | None) -> Engine:
    # Imported here, on the pool thread: ONNX Runtime loads while the window paints.
    from desktop.core.engine import Engine

    return Engine(model_path, threads=threads)


def load_error_message(error: BaseException) -> str:
    """What to tell the user about a failed load."""
    message = str(error) or type(error).__name__
    if isinstance(error, ModelError):  # its messages are written for users
        return message
    return f"{type(error).__name__}: {message}"


class ModelLoader(QObject):
    """`load()` a model; `engine` is the one in use, `error` why the last load failed."""

    started = Signal()  # a load began (`loading` is now True)
    loaded = Signal(object)  # the new Engine, now `engine`
    failed = Signal(str)  # the message, now `error`; `engine` is unchanged (maybe None)

    def __init__(self, threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threads = threads  # ONNX Runtime threads; None: its default
        self._engine: Engine | None = None
        self._error: str | None = None
        self._call: BackgroundCall | None = None  # the latest load, until it ends

    @property
    def engine(self) -> Engine | None:
        return self._engine

    @property
    def error(self) -> str | None:
        """Why the latest load failed; None after a successful one."""
        return self._error

    @property
    def loading(self) -> bool:
        return self._call is not None

    def load(self, model_path: str | os.PathLike[str] | None = None) -> None:
        """Start loading `model_path` (None: the model shipped with the app)."""
        path = None if model_path is None else str(model_path)
        call = BackgroundCall(partial(_load_engine, path, self.threads))
        call.succeeded.connect(self._on_succeeded)
        call.failed.connect(self._on_failed)
        self._call = call
        self.started.emit()
        call.start()

    def _is_latest(self, outcome: object) -> bool:
        # Matched by outcome, not by sender(): an older call may be gone by the time its
        # result arrives, and Qt then reports no sender at all.
        return self._call is not None and outcome is self._call.outcome

    @Slot(object)
    def _on_succeeded(self, engine: Engine) -> None:
        if not self._is_latest(engine):
            return  # an older request finished after a newer one
        self._call = None
        self._engine, self._error = engine, None
        self.loaded.emit(engine)

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        if not self._is_latest(error):
            return
        self._call = None
        self._error = load_error_message(error)
        self.failed.emit(self._error)

"""File > Watch folder…: classify the photos a station camera saves into a folder, as they
arrive (the same `FolderWatcher` as `ewaste-classify --watch`)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop.core.watch import DEFAULT_POLL_SECONDS, FolderWatcher
from desktop.gui.background import BackgroundCall


class FolderWatch(QObject):
    """Polls one folder while watching; emits each completely written photo once."""

    watching_changed = Signal(str)  # the folder watched, "" when not watching
    # list[tuple[str, FileState]]: new photos to classify, with their size and time then.
    photos_ready = Signal(list)
    # Why the folder cannot be seen (an unplugged camera), "" when it can again.
    unreachable_changed = Signal(str)
    # How many photos left the folder before they were ready, since the watch began.
    photos_left = Signal(int)

    def __init__(
        self, parent: QObject | None = None, poll_seconds: float = DEFAULT_POLL_SECONDS
    ) -> None:
        super().__init__(parent)
        self._watcher: FolderWatcher | None = None
        self._call: BackgroundCall | None = None  # the poll running, if any
        self._polled: FolderWatcher | None = None  # the watcher that poll asks
        self._unreachable = ""
        self._left = 0  # the watcher's left_before_ready, as last said
        self._poll_seconds = poll_seconds
        self._timer = QTimer(self)
        self._timer.setInterval(int(poll_seconds * 1000))
        self._timer.timeout.connect(self._poll)

    @property
    def left_count(self) -> int:
        """Photos that left the folder before they were ready, since the watch began."""
        return self._left

    @property
    def folder(self) -> str:
        return "" if self._watcher is None else str(self._watcher.folder)

    def start(self, folder: str, **watcher_options) -> None:
        """Watch `folder` from now on (photos already in it are classified too)."""
        self._watcher = FolderWatcher(folder, **watcher_options)
        self._unreachable = ""  # the folder before may have been out of sight: not this one
        self._left = 0
        self._timer.start()
        self.watching_changed.emit(self.folder)

    def start_again(self) -> None:
        """Hand over every photo of the folder watched again (another model's rows replaced
        the table's), even while it is out of sight: the polls wait for it as before."""
        if self._watcher is not None:
            self._watcher = self._watcher.anew()  # a poll in flight asks the old one: dropped

    def stop(self) -> None:
        self._timer.stop()
        self._watcher = None
        self._unreachable = ""
        self.watching_changed.emit("")

    @Slot()
    def _poll(self) -> None:
        # On a pool thread: a poll lists the folder and decodes each settled photo once
        # (a large PNG takes a while), which must not freeze the window. One at a time.
        if self._watcher is None or self._call is not None:
            return
        self._polled = self._watcher
        self._call = BackgroundCall(self._watcher.poll)
        self._call.succeeded.connect(self._on_polled)
        self._call.failed.connect(self._on_failed)
        self._call.start()

    @Slot(object)
    def _on_polled(self, ready: list) -> None:
        self._call = None
        if self._polled is not self._watcher:  # stopped (or another folder started) meanwhile
            return
        self._timer.setInterval(int(self._watcher.pause(self._poll_seconds) * 1000))
        if self._watcher.unreachable != self._unreachable:
            self._unreachable = self._watcher.unreachable
            self.unreachable_changed.emit(self._unreachable)
        if self._watcher.left_before_ready != self._left:
            self._left = self._watcher.left_before_ready
            self.photos_left.emit(self._left)
        if ready:
            # No poll runs now (one at a time), so the watcher's record can be read here.
            state = self._watcher.handed_over_state
            self.photos_ready.emit([(str(path), state(path.name)) for path in ready])

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        self._call = None  # the next tick tries again
        # Said as the folder being out of sight until a poll works again: a watch failing
        # in silence would look like a camera that sends nothing.
        reason = f"{type(error).__name__}: {error}"
        if self._polled is self._watcher and reason != self._unreachable:
            self._unreachable = reason
            self.unreachable_changed.emit(reason)

"""File > Watch folder…: classify the photos a station camera saves into a folder, as they
arrive (the same `FolderWatcher` as `ewaste-classify --watch`)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop.core.watch import DEFAULT_POLL_SECONDS, FolderWatcher


class FolderWatch(QObject):
    """Polls one folder while watching; emits each completely written photo once."""

    watching_changed = Signal(str)  # the folder watched, "" when not watching
    photos_ready = Signal(list)  # list[str]: new photos to classify

    def __init__(
        self, parent: QObject | None = None, poll_seconds: float = DEFAULT_POLL_SECONDS
    ) -> None:
        super().__init__(parent)
        self._watcher: FolderWatcher | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(int(poll_seconds * 1000))
        self._timer.timeout.connect(self._poll)

    @property
    def folder(self) -> str:
        return "" if self._watcher is None else str(self._watcher.folder)

    def start(self, folder: str, **watcher_options) -> None:
        """Watch `folder` from now on (photos already in it are classified too)."""
        self._watcher = FolderWatcher(folder, **watcher_options)
        self._timer.start()
        self.watching_changed.emit(self.folder)

    def stop(self) -> None:
        self._timer.stop()
        self._watcher = None
        self.watching_changed.emit("")

    @Slot()
    def _poll(self) -> None:
        # One os.scandir of one folder: quick enough for the GUI thread at this rate.
        ready = self._watcher.poll() if self._watcher is not None else []
        if ready:
            self.photos_ready.emit([str(path) for path in ready])

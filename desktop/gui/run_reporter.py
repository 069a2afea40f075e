"""Tells the user how a run goes: the progress panel and the status bar follow the controller."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QStatusBar

from desktop.core.wording import plural
from desktop.gui.progress_panel import ProgressPanel
from desktop.gui.run_controller import RunController
from desktop.gui.worker import RunSummary, combined


def discovered_text(images: int, skipped: int, problems: int, already: int = 0) -> str:
    text = f"Classifying {plural(images, 'image')}"
    if already:
        text += f"; {plural(already, 'image')} already in the table"
    if skipped:
        text += f"; {plural(skipped, 'non-image file')} skipped"
    if problems:
        text += f"; {plural(problems, 'path')} could not be read"
    return text + "…"


def finished_text(summary: RunSummary) -> str:
    if summary.cancelled and summary.images == 0 and not summary.done:  # before it looked
        return "Cancelled before any image was classified"
    if summary.images == 0 and summary.already and not summary.problems:
        return (
            f"{plural(summary.already, 'image')} already in the table, not classified again "
            "(Clear results first to classify them again)"
        )
    if summary.images == 0 and not summary.problems:
        skipped = f" ({plural(summary.skipped, 'other file')} skipped)" if summary.skipped else ""
        return "No supported images found" + skipped
    return summary.describe()


class RunReporter(QObject):
    """Connects itself to `controller`; shows progress in `panel`, news in `status_bar`."""

    def __init__(
        self,
        controller: RunController,
        panel: ProgressPanel,
        status_bar: QStatusBar,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._controller = controller
        self._panel = panel
        self._status_bar = status_bar
        # Runs that ended while more requests were queued: the last one reports them all.
        self._earlier: list[RunSummary] = []
        controller.started.connect(self._on_started)
        controller.discovered.connect(self._on_discovered)
        controller.progress.connect(panel.set_progress)
        controller.finished.connect(self._on_finished)
        controller.failed.connect(self._on_failed)

    @Slot(int)
    def _on_started(self, queued: int) -> None:
        self._panel.set_scanning()
        more = f" ({queued} more queued)" if queued else ""
        self._status_bar.showMessage(f"Looking for images…{more}")

    @Slot(int, int, int, int)
    def _on_discovered(self, images: int, skipped: int, problems: int, already: int) -> None:
        self._panel.set_progress(0, images, 0.0)
        self._status_bar.showMessage(discovered_text(images, skipped, problems, already))

    @Slot(object)
    def _on_finished(self, summary: RunSummary) -> None:
        if self._controller.queued and not summary.cancelled:
            self._earlier.append(summary)  # the next request starts at once
            return
        summary = combined([*self._earlier, summary])
        self._earlier.clear()
        self._panel.set_idle(
            f"Cancelled: {summary.done} / {summary.images}"
            if summary.cancelled
            else f"Done: {plural(summary.done, 'image')}"
        )
        self._status_bar.showMessage(finished_text(summary))

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        if self._earlier:  # the runs before it in the chain did finish
            message += f" ({combined(self._earlier).describe()} before it)"
        self._earlier.clear()
        self._panel.set_idle("Stopped by an error")
        self._status_bar.showMessage(message)

"""The empty window's offer of a review an earlier session left in no CSV (see
`review_recovery`): Reopen brings it back through File > Open results CSV's reopen, still
counted as unsaved; Discard deletes it, after asking. While the table hides the offer (the
app started with photos, or a folder was dropped at once), a note in the status bar says
it waits."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from desktop.gui.drop_area import DropArea
from desktop.gui.open_csv import CsvReopen
from desktop.gui.review_recovery import RETRY_MS, ReviewRecovery, saved_at
from desktop.gui.style import ERROR_COLOR


class RecoveryOffer(QObject):
    """Shows the newest leftover review in the drop area's empty state and acts on its two
    buttons; `waiting`, for the status bar, says it is there while the table is shown."""

    message = Signal(str)  # for the status bar

    def __init__(
        self,
        recovery: ReviewRecovery,
        reopen: CsvReopen,
        drop_area: DropArea,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)  # the window is our Qt parent(): no Python reference to it
        empty_state = drop_area.empty_state
        self._recovery, self._reopen, self._state = recovery, reopen, empty_state
        self._reopening: Path | None = None  # the leftover being reopened
        self._results_shown = drop_area.showing_results
        self.waiting = QLabel()
        drop_area.results_shown.connect(self._on_results_shown)
        empty_state.reopen_recovery.clicked.connect(self._reopen_newest)
        empty_state.discard_recovery.clicked.connect(self._discard_newest)
        reopen.opened.connect(self._on_reopened)
        recovery.trouble_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        leftovers = self._recovery.leftovers()
        when = saved_at(leftovers[0]) if leftovers else None
        self._state.offer_recovery(when, max(len(leftovers) - 1, 0))
        self._show_note(when)

    def _show_note(self, when: str | None) -> None:
        """The status bar's note: a window that keeps no copy of its review for after a
        crash says so while it is open (its worker must export as they go), as does one whose
        copy could not be written (a full disk) until it is; else a review
        left by a crash (saved `when`) is said to wait while the table hides its offer.
        Short, beside the messages at 1024 px; the rest is in its tooltip."""
        if not self._recovery.enabled:
            where = (
                "Another window of the app keeps"
                if not self._recovery.locked
                else f"{self._recovery.folder} cannot take"
            )
            text = "No crash copy in this window"
            tip = (
                f"{where} the copy of an unsaved review that outlives a crash: export this "
                "window's review as you go (Ctrl+E)"
            )
        elif self._recovery.trouble:
            text = "Crash copy not saved"
            tip = (
                f"The copy of this window's unsaved review that outlives a crash could not be "
                f"written to {self._recovery.folder} ({self._recovery.trouble}): export the "
                f"review now (Ctrl+E). It is tried again every {RETRY_MS // 1000} seconds"
            )
        elif when:
            text = f"Unsaved review of {when} waits"
            tip = (
                f"The session that ended {when} left what a person confirmed or corrected in "
                "no CSV. Clear results (export first what you did since) to see the offer "
                "to reopen it"
            )
        else:
            text = tip = ""
        self.waiting.setText(text)
        self.waiting.setToolTip(tip)
        # A copy failing is a warning (work may be lost), the others are notes.
        colour = ERROR_COLOR.name() if self._recovery.trouble else "palette(link)"
        self.waiting.setStyleSheet(f"color: {colour};")
        always = not self._recovery.enabled or self._recovery.trouble
        self.waiting.setVisible(bool(tip) and bool(self._results_shown or always))

    @Slot(bool)
    def _on_results_shown(self, shown: bool) -> None:
        self._results_shown = shown
        self.refresh()

    def set_ready(self, ready: bool) -> None:
        """Reopen only with a model loaded and no run on: a run listed its photos before
        the reopened rows existed, and would classify them again, dropping their classes."""
        self._state.reopen_recovery.setEnabled(ready and not self._reopen.busy)
        self._state.discard_recovery.setEnabled(not self._reopen.busy)

    def _reopen_newest(self) -> None:
        leftovers = self._recovery.leftovers()
        if leftovers and self._state.reopen_recovery.isEnabled():
            self._reopening = leftovers[0]
            self._reopen.open(str(leftovers[0]), recovered=True)

    @Slot(bool, bool)
    def _on_reopened(self, recovered: bool, complete: bool) -> None:
        leftover, self._reopening = self._reopening, None
        if not recovered or leftover is None:
            return
        # Every row in the table, so in this session's copy: the earlier one can go. With
        # photos left out (a share not back yet) it stays, offered again once cleared.
        if not complete:
            self.message.emit(
                "Some photos of the earlier session's review are missing: it stays offered "
                "(Clear results, then Reopen, once they are back)"
            )
        elif not self._recovery.forget_leftover(leftover):
            self.message.emit(
                "Cannot keep a copy of this review here: the earlier session's stays offered"
            )
        self.refresh()

    def _discard_newest(self) -> None:
        leftovers = self._recovery.leftovers()
        if not leftovers:
            return
        box = QMessageBox(self.parent())  # type: ignore[arg-type]
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Discard the earlier review")
        box.setText(
            "Delete what a person confirmed or corrected in the session that ended "
            f"{saved_at(leftovers[0])}? It is in no CSV: this cannot be undone."
        )
        delete = box.addButton("&Delete it", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is delete:
            self._recovery.forget_leftover(leftovers[0], discarded=True)
            self.refresh()
            self.message.emit("The earlier session's unsaved review was discarded")

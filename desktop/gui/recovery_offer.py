"""The empty window's offer of a review an earlier session left in no CSV (see
`review_recovery`): Reopen brings it back through File > Open results CSV's reopen, still
counted as unsaved; Discard deletes it, after asking."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from desktop.gui.drop_area import EmptyState
from desktop.gui.open_csv import CsvReopen
from desktop.gui.review_recovery import ReviewRecovery, saved_at


class RecoveryOffer(QObject):
    """Shows the newest leftover review in `empty_state` and acts on its two buttons."""

    message = Signal(str)  # for the status bar

    def __init__(
        self,
        recovery: ReviewRecovery,
        reopen: CsvReopen,
        empty_state: EmptyState,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)  # the window is our Qt parent(): no Python reference to it
        self._recovery, self._reopen, self._state = recovery, reopen, empty_state
        self._reopening: Path | None = None  # the leftover being reopened
        empty_state.reopen_recovery.clicked.connect(self._reopen_newest)
        empty_state.discard_recovery.clicked.connect(self._discard_newest)
        reopen.opened.connect(self._on_reopened)
        self.refresh()

    def refresh(self) -> None:
        leftovers = self._recovery.leftovers()
        self._state.offer_recovery(
            saved_at(leftovers[0]) if leftovers else None, max(len(leftovers) - 1, 0)
        )

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

"""What a sort or an undo did, and the errors that stop one: the records the sorting
modules share (see sorting)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from .wording import plural


class SortError(Exception):
    """The sort cannot start (or go on) at all; the message says why, for the user.
    `report`: what a sort stopped midway had done (photos moved by then are elsewhere)."""

    def __init__(self, message: str, report: SortReport | None = None):
        super().__init__(message)
        self.report = report


class SortStopped(SortError):
    """The sort or undo ended between two photos because its caller asked it to."""


@dataclass(frozen=True)
class Filed:
    source: str
    destination: str
    class_name: str
    status: str
    sha256: str
    action: str  # "copy" or "move"


@dataclass(frozen=True)
class DamagedRow:
    """A line of the manifest that is not a row a sort wrote (two rows a cut-short write
    ran together, a hand edit): never acted on, and kept as it is for a person to mend."""

    line: int
    cells: tuple[str, ...]
    why: str = "is damaged; kept in it as it is, for a person to mend"  # "line 7 ..."


@dataclass
class SortReport:
    # A sort's: the rows it wrote. An undo's: each photo put back, its source where it is now.
    filed: list[Filed] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already filed by an earlier run
    # Of those, the ones this sort would have filed in another folder (a new threshold or
    # model): left where they are, as only a person's class moves a photo filed before.
    filed_elsewhere: list[str] = field(default_factory=list)
    # Filed before and moved to the folder a person's class now says: (old place, new entry).
    refiled: list[tuple[str, Filed]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    # An undo's: copies deleted because their original never left (put back, in the count).
    copies_deleted: int = 0
    # An undo's: photos put back under a numbered name, their own being taken by a new photo
    # (a camera's counter reset): (the name they had, where they are now).
    renamed: list[tuple[str, str]] = field(default_factory=list)

    def filed_count(self) -> str:
        """The photos a sort filed, as its message opens: "3 photos", or "no new photo" when
        it found every one filed before (a re-sort after corrections), not a failing "0"."""
        if not self.filed and (self.skipped or self.refiled):
            return "no new photo"
        return plural(len(self.filed), "photo")

    def earlier_sort_note(self) -> str:
        """What a sort into a folder sorted before found: "; 3 already there from an
        earlier sort; 1 moved to its new folder" (empty for a new folder)."""
        note = f"; {len(self.skipped)} already there from an earlier sort" if self.skipped else ""
        if self.filed_elsewhere:
            note += (
                f" ({len(self.filed_elsewhere)} of them in another folder than this sort would "
                "choose: only a class set in the app moves a photo filed before)"
            )
        if self.refiled:
            moved = "moved to its new folder" if len(self.refiled) == 1 else "moved to new folders"
            note += f"; {len(self.refiled)} {moved}"
        return note

    def undo_note(self) -> str:
        """What an undo did with copies: "; 3 of them copies, deleted: their originals never
        moved", and with names taken since: "; 1 as IMG_1 (2).jpg, its name being taken"
        (empty when it moved every photo back to its name)."""
        note = ""
        if self.copies_deleted == len(self.filed) and self.filed:
            note = "; all copies, deleted: the originals never moved"
        elif self.copies_deleted:
            copies = "a copy" if self.copies_deleted == 1 else "copies"
            note = f"; {self.copies_deleted} of them {copies}, deleted: their originals never moved"
        if self.renamed:
            names = ", ".join(Path(now).name for _, now in self.renamed[:3])
            more = ", ..." if len(self.renamed) > 3 else ""
            taken = "its name being" if len(self.renamed) == 1 else "their names being"
            note += f"; {len(self.renamed)} as {names}{more}, {taken} taken"
        return note


def reason_for(exc: Exception, *, naming_the_file: bool = False) -> str:
    """An error in words for the user: the system's own for a system error, and with
    `naming_the_file`, the file it names (where it is not plain: the manifest, say)."""
    if not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    if naming_the_file and exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {os.fsdecode(exc.filename)}"
    return exc.strerror or str(exc)


def destination_full(report: SortReport) -> SortError:
    return SortError(
        f"the destination is full after {plural(len(report.filed), 'photo')} (nothing "
        f"half-written was left): free space there and sort again to finish, or undo it",
        report,
    )


def stop_if_full(exc: Exception, report: SortReport) -> None:
    """A full destination stops the whole sort: the next photo would not fit either."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise destination_full(report) from exc

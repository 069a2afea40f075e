"""Messages that cannot stop the work: `ewaste-classify` run by a script may have its
stderr closed (2>&-), its log on a full disk, or its output piped into `head`. None of
that is about the photos, so a failed write of a message is dropped, and the run goes on
to write its CSV and sort, and ends with the status its work earned."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from .csv_export import readable_text


def loggable(text: str) -> str:
    """`text` (a file name, a reason) for one line of a log: readable (`readable_text`),
    with every character that is not printable escaped, so that a photo's name can neither
    start a line of its own (a forged "classified" line) nor send a terminal its codes."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in readable_text(text)
    )


def not_classified(path: str, reason: str) -> str:
    """The one line that names a photo that could not be classified, in a watch's log, on a
    batch run's stderr and in the web page's log."""
    return f"not classified: {loggable(path)}: {loggable(reason)}"


class ForgivingStream(io.TextIOBase):
    """`stream` (None when Python was started without it), with writes that fail dropped."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            try:
                self._stream.write(text)  # type: ignore[union-attr]
            except UnicodeEncodeError:  # "Jürgen" to an ASCII or cp1252 log: escaped, not lost
                encoding = self.encoding
                self._stream.write(  # type: ignore[union-attr]
                    text.encode(encoding, "backslashreplace").decode(encoding)
                )
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._stream.flush()  # type: ignore[union-attr]

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            return bool(self._stream.isatty())  # type: ignore[union-attr]
        return False


@contextlib.contextmanager
def forgiving_output() -> Iterator[None]:
    """sys.stdout and sys.stderr, for the block, drop what they cannot write. At its end,
    output a failed write left buffered goes nowhere instead of failing Python's exit
    (which would print a traceback and exit 120 after the work was done). Each line is
    written as it is said: a log file or a service's journal gets them in order, and a
    watch's "watching" line when it starts, not when it stops."""
    saved = sys.stdout, sys.stderr
    for stream in saved:
        with contextlib.suppress(AttributeError, OSError, ValueError):  # None, closed, or other
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stdout, sys.stderr = ForgivingStream(saved[0]), ForgivingStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        for stream in saved:
            _flush_or_discard(stream)


def _flush_or_discard(stream: TextIO | None) -> None:
    if stream is None:
        return
    try:
        stream.flush()
    except (OSError, ValueError):
        # What Python's documentation advises for a reader that went away: point the
        # descriptor at the null device so the flush at exit has somewhere to go.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)

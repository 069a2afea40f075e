"""A cap on the pixels that decoding threads hold at full size at once.

A 100-megapixel PNG needs about 0.8 GB while it is decoded and converted (16-bit and
transparent images most). The engine decodes on up to four threads and the app's previews
on more, so a folder of such files could need several gigabytes together. Each large
decode first reserves its pixels here; one that would take the total over the budget waits
its turn, in the order they asked. An image larger than the whole budget runs alone. A
decode whose batch was cancelled while it waited gives up its turn (`Abandoned`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# How often a waiting reservation asks whether it is still wanted.
ABANDON_POLL_SECONDS = 0.05


class Abandoned(Exception):
    """A reservation given up while it waited, as its caller asked."""


class PixelBudget:
    def __init__(self, limit: int, exempt_up_to: int):
        """`limit`: pixels held at once; images of at most `exempt_up_to` pixels (a few
        megabytes each) are not counted and never wait."""
        self.limit = limit
        self.exempt_up_to = exempt_up_to
        self._held = 0
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        with self._changed:
            return self._held

    @contextmanager
    def reserved(self, pixels: int, abandon: Callable[[], bool] | None = None) -> Iterator[None]:
        """Hold `pixels` of the budget for the `with` block, waiting first if needed;
        Abandoned when `abandon()` turns true while it waits (a cancelled batch's decode
        must not keep the next batch's waiting, nor decode for nothing)."""
        if pixels <= self.exempt_up_to:
            yield
            return
        with self._changed:
            turn = object()
            self._queue.append(turn)
            try:
                # First come, first served: small reservations arriving all the time must
                # not keep a large image waiting for ever.
                while not (self._queue[0] is turn and self._fits(pixels)):
                    if abandon is not None and abandon():
                        raise Abandoned
                    self._changed.wait(None if abandon is None else ABANDON_POLL_SECONDS)
            except BaseException:  # given up, or Ctrl+C: the turn must not block the rest
                self._queue.remove(turn)
                self._changed.notify_all()
                raise
            self._queue.popleft()
            self._held += pixels
            self._changed.notify_all()  # the next in the queue may fit too
        try:
            yield
        finally:
            with self._changed:
                self._held -= pixels
                self._changed.notify_all()

    def _fits(self, pixels: int) -> bool:
        return self._held == 0 or self._held + pixels <= self.limit

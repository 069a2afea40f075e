"""Stop signals (Ctrl+C, SIGTERM, SIGHUP) as one exception, for the command-line tools.

Python's default turns only SIGINT into an exception; SIGTERM and SIGHUP end the process
on the spot, so no `finally` runs: finished rows are lost and temporary files stay behind.
Inside `stop_signals_raise()` all three raise `Stopped`, which unwinds like Ctrl+C;
inside `stop_signals_wait()` they are held until a write that must complete is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(BaseException):
    """A stop signal arrived (a BaseException, like KeyboardInterrupt, so no `except
    Exception` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into `Stopped` during the block."""

    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    with _signal_handlers(stop):
        yield


@contextlib.contextmanager
def stop_signals_raise_once() -> Iterator[list[Stopped]]:
    """For a program's last block, its clean-up inside: the first stop signal raises
    `Stopped`, later ones are only listed (a second Ctrl+C, or a service manager's SIGTERM
    after the user's, must not cut the clean-up short; with `stop_signals_wait` after
    `stop_signals_raise`, one landing between the two blocks did). They stay ignored after
    the block, as the program ends: in the second the interpreter takes to exit, a stop
    turned a clean exit into a kill."""
    arrived: list[Stopped] = []

    def stop_once(signum: int, _frame: object) -> None:
        arrived.append(Stopped(signum))
        if len(arrived) == 1:
            raise arrived[0]

    with _signal_handlers(stop_once, then=signal.SIG_IGN):
        yield arrived


@contextlib.contextmanager
def stop_signals_ask() -> Iterator[list[Stopped]]:
    """A stop signal asks the block to end (the list says it came, for a loop to end
    between two steps); a second Ctrl+C raises `Stopped` at once, as a user pressing it
    again means (a step slow on a share, say). SIGTERM and SIGHUP only ask, however many
    come: a closed terminal sends SIGHUP twice, and must not cut a step in half."""
    arrived: list[Stopped] = []

    def ask_then_stop(signum: int, _frame: object) -> None:
        again = signum == signal.SIGINT and any(s.signum == signal.SIGINT for s in arrived)
        arrived.append(Stopped(signum))
        if again:
            raise arrived[-1]

    with _signal_handlers(ask_then_stop):
        yield arrived


@contextlib.contextmanager
def stop_signals_wait() -> Iterator[list[Stopped]]:
    """Hold stop signals until the block ends; the list says which arrived meanwhile."""
    arrived: list[Stopped] = []
    with _signal_handlers(lambda signum, _frame: arrived.append(Stopped(signum))):
        yield arrived


@contextlib.contextmanager
def stop_signals_held() -> Iterator[list[int]]:
    """Hold stop signals during the block, then hand the first one to the handler that was
    there before (which may raise `Stopped` or KeyboardInterrupt, now, at a safe point).

    For code that takes locks (waiting on a Future): an exception raised from a signal
    handler between a lock's acquire and its release leaves the lock taken, and a thread
    that needs it then waits for ever. The list says which arrived, for a loop to end early.
    """
    arrived: list[int] = []
    previous: dict[int, object] = {}
    try:
        with _signal_handlers(lambda signum, _frame: arrived.append(signum)) as previous:
            yield arrived
    finally:  # even when the block raised: a stop asked for is never lost
        handler = previous.get(arrived[0]) if arrived else None
        if callable(handler):
            handler(arrived[0], None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(arrived[0])  # the default: end the process, as it would have


@contextlib.contextmanager
def _signal_handlers(
    handler: Callable[[int, object], None], then: signal.Handlers | None = None
) -> Iterator[dict[int, object]]:
    """`handler` for every stop signal during the block; after it, `then` if given (straight
    from `handler`: no default in between), else the previous ones (yielded). Only the main
    thread may set handlers: called from another thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield {}
        return
    # A signal the parent told us to ignore (nohup, a background job) stays ignored.
    wanted = [s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield previous
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if then is None else then)

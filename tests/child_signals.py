"""Let a stop signal reach the code under test when the test runner itself ignores it.

A shell's background job starts with SIGINT ignored and nohup ignores SIGHUP; a child
inherits an ignored signal, and ewaste-classify rightly keeps it ignored. The tests that stop
it with a signal therefore run it while that signal has Python's default disposition (a child
gets the system default at exec). Done in the parent, around Popen, rather than in a
preexec_fn, which is unsafe once the runner has threads.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deliverable(signum: int) -> Iterator[None]:
    previous = signal.getsignal(signum)
    if previous is signal.SIG_IGN:
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, default)
    try:
        yield
    finally:
        signal.signal(signum, previous)

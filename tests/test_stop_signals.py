"""desktop.core.stop_signals' blocks, with real signals sent to this process."""

from __future__ import annotations

import signal

import pytest

from child_signals import deliverable
from desktop.core.stop_signals import STOP_SIGNALS, Stopped, stop_signals_raise_once


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM")
def test_a_programs_last_block_raises_the_first_stop_lists_the_rest_then_ignores_them():
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    cleaned_up = False
    try:
        with deliverable(signal.SIGINT):
            with pytest.raises(Stopped, match="SIGTERM"), stop_signals_raise_once() as arrived:
                try:
                    signal.raise_signal(signal.SIGTERM)
                finally:
                    signal.raise_signal(signal.SIGINT)  # an impatient Ctrl+C: not raised
                    cleaned_up = True
            assert cleaned_up
            assert [stop.signum for stop in arrived] == [signal.SIGTERM, signal.SIGINT]
            # The program ends after the block: a stop in its last moments changes nothing.
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)

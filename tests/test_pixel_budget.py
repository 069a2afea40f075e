"""Large decodes on several threads share a pixel budget: together they never hold more
than it at full size, a small image never waits, and a large one is not overtaken."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from desktop.core import preprocessing
from desktop.core.pixel_budget import PixelBudget
from desktop.core.prediction_loop import decoded_batches
from desktop.core.preprocessing import load_rgb


class Overlap:
    """Counts the callers inside `during` at once, each staying `seconds`; with `meet`,
    each waits there until that many are inside (the proof that they can be, however the
    threads are scheduled)."""

    def __init__(self, seconds: float = 0.15, meet: int = 0):
        self.seconds = seconds
        self._meeting = threading.Barrier(meet, timeout=20) if meet else None
        self.inside = 0
        self.most = 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def during(self, name: str = "") -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.order.append(name)
        if self._meeting is not None:
            self._meeting.wait()
        else:
            time.sleep(self.seconds)
        with self._lock:
            self.inside -= 1


def test_large_decodes_of_real_files_take_turns_within_the_budget(tmp_path, monkeypatch):
    # Scaled down: a budget of 1.5 MP lets one 1 MP image decode at a time.
    monkeypatch.setattr(preprocessing, "DECODE_BUDGET", PixelBudget(1_500_000, 100_000))
    overlap = Overlap()
    reduced = preprocessing._reduced

    def watched_reduce(image, side):
        overlap.during()
        return reduced(image, side)

    monkeypatch.setattr(preprocessing, "_reduced", watched_reduce)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"big{i}.png")
        Image.new("RGBA", (1_000, 1_000), (i * 80, 0, 0, 128)).save(paths[-1])
    with ThreadPoolExecutor(3) as pool:
        decoded = list(pool.map(lambda p: load_rgb(p, (16, 16)), paths))
    assert overlap.most == 1
    # Half-transparent red on white: each file decoded whole and to itself.
    assert [tuple(d[0, 0]) for d in decoded] == [(127, 127, 127), (167, 127, 127), (207, 127, 127)]
    assert preprocessing.DECODE_BUDGET.held == 0

    # Images within the exempt size decode side by side, as before.
    overlap = Overlap(meet=3)
    small = [tmp_path / f"small{i}.png" for i in range(3)]
    for path in small:
        Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(path)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda p: load_rgb(p, (16, 16)), small))
    assert overlap.most == 3


def test_a_failed_decode_gives_its_pixels_back(tmp_path, monkeypatch):
    budget = PixelBudget(1_500_000, 100_000)
    monkeypatch.setattr(preprocessing, "DECODE_BUDGET", budget)
    path = tmp_path / "cut.png"
    noise = np.random.default_rng(0).integers(0, 256, (1_000, 1_000, 3), np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[:100_000])  # a copy stopped part way
    with pytest.raises(preprocessing.ImageLoadError, match="truncated"):
        load_rgb(path, (16, 16))
    assert budget.held == 0


def test_reservations_over_the_limit_wait_and_one_too_large_runs_alone():
    budget = PixelBudget(limit=100, exempt_up_to=10)
    overlap = Overlap(seconds=0.1)

    def decode(pixels: int) -> None:
        with budget.reserved(pixels):
            overlap.during()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(decode, [60, 60, 60, 500]))  # 60 + 60 > 100; 500 > the whole budget
    assert overlap.most == 1
    overlap = Overlap(meet=4)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(decode, [40, 40, 5, 5]))  # 80 fits, and 5 is not counted
    assert overlap.most == 4
    assert budget.held == 0


def test_a_waiting_large_image_is_not_overtaken_by_later_ones():
    budget = PixelBudget(limit=100, exempt_up_to=10)
    overlap = Overlap(seconds=0.2)
    started = []

    def decode(name: str, pixels: int) -> None:
        started.append(name)
        with budget.reserved(pixels):
            overlap.during(name)

    threads = [threading.Thread(target=decode, args=("first", 50))]
    threads[0].start()
    time.sleep(0.05)  # "first" holds 50
    for name, pixels in (("large", 90), ("later", 30)):
        threads.append(threading.Thread(target=decode, args=(name, pixels)))
        threads[-1].start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=10)
    # "later" would fit beside "first" (80), but "large" asked before it.
    assert started == ["first", "large", "later"]
    assert overlap.order == ["first", "large", "later"]


@contextmanager
def held_by_another_thread(budget: PixelBudget, pixels: int) -> Iterator[None]:
    """`pixels` of `budget` held by another decode (a preview's, say) during the block."""
    release = threading.Event()

    def hold() -> None:
        with budget.reserved(pixels):
            release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    while budget.held == 0:
        time.sleep(0.01)
    try:
        yield
    finally:
        release.set()
        holder.join(10)


def test_a_wait_interrupted_by_ctrl_c_leaves_no_turn_behind(monkeypatch):
    # A notebook decoding on its main thread, interrupted while it waits its turn: the
    # queue must not keep that turn, or every later large decode waits for ever.
    budget = PixelBudget(limit=100, exempt_up_to=10)

    def interrupted(timeout=None):
        raise KeyboardInterrupt

    with held_by_another_thread(budget, 80):
        monkeypatch.setattr(budget._changed, "wait", interrupted)
        with pytest.raises(KeyboardInterrupt), budget.reserved(50):
            pass
        monkeypatch.undo()
    got_its_turn = []

    def later_decode() -> None:
        with budget.reserved(50):
            got_its_turn.append(True)

    later = threading.Thread(target=later_decode)
    later.start()
    later.join(5)
    assert got_its_turn == [True] and budget.held == 0


def test_a_cancelled_batch_gives_up_its_waiting_decodes(tmp_path, monkeypatch):
    # Two large PNGs wait for a budget another decode holds; the run is cancelled meanwhile:
    # they never decode (each would take seconds for nothing) and leave no turn behind.
    budget = PixelBudget(1_500_000, 100_000)
    monkeypatch.setattr(preprocessing, "DECODE_BUDGET", budget)
    decoded = []
    reduced = preprocessing._reduced
    monkeypatch.setattr(
        preprocessing, "_reduced", lambda image, side: decoded.append(1) or reduced(image, side)
    )
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"big{i}.png")
        Image.new("RGB", (1_000, 1_000), (i, 0, 0)).save(paths[-1])
    with held_by_another_thread(budget, 1_000_000):
        batches = decoded_batches(  # stopped once both decodes wait their turn
            paths, (16, 16), "stretch", batch_size=2, workers=2,
            should_stop=lambda: len(budget._queue) == 2,
        )  # fmt: skip
        assert list(batches) == []  # stopped before its batch was ready
        deadline = time.monotonic() + 5
        while len(budget._queue) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(budget._queue) == 0  # both turns given up while the other still holds
    assert decoded == [] and budget.held == 0

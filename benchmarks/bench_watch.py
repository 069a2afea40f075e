"""Watching a camera's folder for a long shift: does memory stay flat?

    python benchmarks/bench_watch.py [--data DATASET/train] [--waves 30] [--per-wave 100]

Drops the dataset's photos into a watched folder wave after wave (as a camera would over
hours, compressed), runs `desktop.core.watch.watch_and_classify` with a CSV, and reads the
process's resident memory (VmRSS) after each wave. Memory that keeps climbing wave after
wave would fill a station PC over a long shift; flat memory after the first waves will not.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench_common import (
    add_photos_argument,
    command_line,
    environment,
    markdown_table,
    photos_to_time,
)

from desktop.core.engine import Engine
from desktop.core.results import DEFAULT_REVIEW_THRESHOLD
from desktop.core.watch import watch_and_classify


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The training split, again and again: never the test split, read once for the model.
    add_photos_argument(parser)
    parser.add_argument("--waves", type=int, default=30)
    parser.add_argument("--per-wave", type=int, default=100)
    args = parser.parse_args(argv)
    photos = photos_to_time(parser, args.data, "--data")
    engine = Engine()
    rows, done = [], threading.Event()
    with tempfile.TemporaryDirectory() as scratch:
        camera, csv_path = Path(scratch) / "camera", Path(scratch) / "shift.csv"
        camera.mkdir()
        classified = [0]

        def log(line: str) -> None:
            if total := re.search(r"\((\d+) since the watch began\)", line):
                classified[0] = int(total.group(1))

        watcher = threading.Thread(
            target=watch_and_classify,
            args=(engine, camera, csv_path, DEFAULT_REVIEW_THRESHOLD),
            kwargs={"poll_seconds": 0.2, "log": log, "should_stop": done.is_set},
        )
        watcher.start()
        started = time.perf_counter()
        try:
            for wave in range(1, args.waves + 1):
                for i in range(args.per_wave):
                    source = photos[((wave - 1) * args.per_wave + i) % len(photos)]
                    shutil.copy(source, camera / f"w{wave:03d}-{i:03d}{source.suffix}")
                while classified[0] < wave * args.per_wave:
                    time.sleep(0.05)
                if wave == 1 or wave % max(1, args.waves // 6) == 0 or wave == args.waves:
                    rows.append([wave, classified[0], f"{resident_mb():.0f} MB"])
        finally:
            done.set()
            watcher.join()
        seconds = time.perf_counter() - started
    print("# Watching a folder: memory over a long run\n")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}; {classified[0]} photos in {seconds:.0f} s\n")
    print(markdown_table(["wave", "photos classified", "resident memory"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

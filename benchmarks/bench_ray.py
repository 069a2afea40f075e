"""Classification on Ray Data against the plain engine: throughput and overhead.

    python benchmarks/bench_ray.py [--folder DATASET/val] [--runs 3]

Starts Ray on this machine (2 CPUs here), then times, interleaved run by run, the plain
engine (`Engine.classify`, the `ewaste-classify` loop) and `classify_on_ray` with 1 and 2
worker actors on the same files; Ray's start-up is reported apart. Every Ray run must give
the plain run's predictions, row for row (checked on the CSV rows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench_common import (
    DEFAULT_DATASET,
    command_line,
    environment,
    markdown_table,
    refuse_a_test_split,
)

from desktop.cluster.ray_classify import classify_on_ray
from desktop.core.csv_export import result_row
from desktop.core.discovery import collect_images
from desktop.core.engine import Engine


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder", type=Path, default=DEFAULT_DATASET.parent / "val", help="default: %(default)s"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    refuse_a_test_split(parser, args.folder, "--folder")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    paths = collect_images([args.folder]).images
    engine = Engine(threads=1)
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started

    def plain():
        return [p for batch in engine.classify(paths, with_cam=False) for p in batch]

    def on_ray(workers: int):
        def run():
            rows = dict(classify_on_ray(paths, address=None, workers=workers))
            return [rows[index] for index in range(len(paths))]

        return run

    pipelines = {"plain engine, 1 thread": plain, "Ray, 1 worker": on_ray(1)}
    pipelines["Ray, 2 workers"] = on_ray(2)
    reference = [result_row(p, engine.class_names) for p in plain()]
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(args.runs):
        for name, run in pipelines.items():
            started = time.perf_counter()
            rows = run()
            times[name].append(time.perf_counter() - started)
            assert [result_row(p, engine.class_names) for p in rows] == reference, name
    base = statistics.median(times["plain engine, 1 thread"])
    table = []
    for name, seconds in times.items():
        median = statistics.median(seconds)
        table.append(
            [name, f"{median:.2f} s", f"{len(paths) / median:.0f}", f"{median / base:.2f}x"]
        )
    print("# Ray Data against the plain engine\n")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}; {len(paths)} photos; Ray start-up {ray_start:.1f} s\n")
    print(markdown_table(["pipeline", "time", "images/s", "time vs plain"], table))
    print("\nEvery Ray run gave the plain run's CSV rows, in the same order.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

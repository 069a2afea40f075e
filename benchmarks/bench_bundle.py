"""The one-folder build against the pip install: size, start-up and throughput.

    python benchmarks/bench_bundle.py [--bundle dist/ewaste-sorter] [--folder DATASET/val]
        [--runs 5]

Start-up: `ewaste-classify` on the 10 sample photos (mostly start-up: imports, model load);
throughput: the same command on a folder of photos. Each pipeline runs as a separate
process, interleaved run by run (bundle, pip, bundle, pip, ...), medians reported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_common import (
    DEFAULT_DATASET,
    REPO_ROOT,
    command_line,
    environment,
    markdown_table,
    refuse_a_test_split,
)


def folder_size_mb(folder: Path) -> float:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files) / 1e6


def timed(command: list[str], out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([*command, "--csv", str(out)], check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO_ROOT / "dist" / "ewaste-sorter")
    parser.add_argument(
        "--folder", type=Path, default=DEFAULT_DATASET.parent / "val", help="default: %(default)s"
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    refuse_a_test_split(parser, args.folder, "--folder")
    pipelines = {
        "bundle": [str(args.bundle / "ewaste-classify")],
        "pip install": [str(Path(sys.executable).with_name("ewaste-classify"))],
    }
    samples = REPO_ROOT / "assets" / "samples"
    photos = sum(1 for p in args.folder.rglob("*") if p.suffix.lower() in {".jpg", ".png"})
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "r.csv"
        for _ in range(args.runs):
            for name, command in pipelines.items():
                for what, target in (("start-up", samples), ("folder", args.folder)):
                    times.setdefault((name, what), []).append(timed([*command, str(target)], out))
    rows = []
    for name in pipelines:
        start = statistics.median(times[(name, "start-up")])
        folder = statistics.median(times[(name, "folder")])
        size = f"{folder_size_mb(args.bundle):.0f} MB" if name == "bundle" else "(a Python venv)"
        rows.append([name, size, f"{start:.2f} s", f"{photos / folder:.0f} images/s"])
    print("# One-folder build against the pip install\n")
    print(f"Command: `{command_line()}`  ")
    print(f"Machine: {environment()}; {photos} photos in the folder, {args.runs} runs each\n")
    print(markdown_table(["pipeline", "size", "10 samples (start-up)", "folder"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of classifying a folder of huge PNGs, with and without the decode budget.

    python benchmarks/bench_decode_memory.py [--images 4] [--megapixels 96] [--workers 4]

Writes half 16-bit greyscale and half transparent RGBA PNGs (the modes that cost the most
memory to convert), then classifies the folder with the shipped model on `--workers`
decode threads, once as shipped (`desktop.core.preprocessing.DECODE_BUDGET`) and once with
the budget lifted, each in a fresh process, and reports each process's peak resident
memory and time. Linux and macOS only (it reads `resource.getrusage`).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from bench_common import command_line, environment, markdown_table
from PIL import Image

from desktop.core import preprocessing
from desktop.core.engine import Engine
from desktop.core.pixel_budget import PixelBudget


def write_images(folder: Path, count: int, megapixels: int) -> list[Path]:
    width = int((megapixels * 1_000_000 * 4 / 3) ** 0.5)
    height = megapixels * 1_000_000 // width
    # A gradient: compresses to a few MB on disk, decodes to every pixel.
    ramp = np.add.outer(np.linspace(0, 0.5, height), np.linspace(0, 0.5, width))
    paths = []
    for i in range(count):
        path = folder / f"huge{i}.png"
        if i % 2 == 0:
            Image.fromarray((ramp * 65535).astype(np.uint16)).save(path)
        else:
            rgba = np.full((height, width, 4), 200, np.uint8)
            rgba[..., 0] = (ramp * 255).astype(np.uint8)
            rgba[height // 4 : -height // 4, width // 4 : -width // 4, 3] = 0  # a cut-out
            Image.fromarray(rgba, "RGBA").save(path)
        paths.append(path)
    return paths


def peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)  # bytes there, KB here


def classify(folder: Path, workers: int, budget: bool) -> dict:
    """One variant's run, as the whole of its process."""
    if not budget:
        preprocessing.DECODE_BUDGET = PixelBudget(limit=10**12, exempt_up_to=10**12)
    engine = Engine(decode_workers=workers)
    before = peak_mb()
    started = time.perf_counter()
    rows = [p for batch in engine.classify(sorted(folder.glob("*.png"))) for p in batch]
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(),
        "loaded_mb": before,
        "errors": sum(p.error is not None for p in rows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--megapixels", type=int, default=96)
    parser.add_argument("--workers", type=int, default=4)
    # The parts run in processes of their own: a process's peak memory (ru_maxrss) is
    # inherited across fork and exec, so one that wrote the images would report theirs.
    parser.add_argument("--child", choices=("write", "budget", "no-budget"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "write":
        write_images(args.folder, args.images, args.megapixels)
        return 0
    if args.child:
        print(json.dumps(classify(args.folder, args.workers, args.child == "budget")))
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        child = [sys.executable, __file__, "--folder", str(folder), "--workers",
                 str(args.workers), "--images", str(args.images), "--megapixels",
                 str(args.megapixels), "--child"]  # fmt: skip
        subprocess.run([*child, "write"], check=True)
        results = {
            variant: json.loads(subprocess.check_output([*child, variant], text=True))
            for variant in ("budget", "no-budget")
        }
    rows = [
        (
            name,
            f"{r['peak_mb']:.0f} MB",
            f"{r['loaded_mb']:.0f} MB",
            f"{r['seconds']:.1f} s",
            r["errors"],
        )
        for name, r in (("as shipped", results["budget"]), ("budget lifted", results["no-budget"]))
    ]
    print(f"`{command_line()}`\n\n{environment()}; {args.images} PNGs of {args.megapixels} MP")
    print(markdown_table(("decode", "peak memory", "model loaded", "time", "errors"), rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

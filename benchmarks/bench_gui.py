"""Benchmark the desktop app: start-up time, GUI vs headless throughput, responsiveness.

    python benchmarks/bench_gui.py                      # shipped model, the training split
    python benchmarks/bench_gui.py --model m.onnx --folder imgs --limit 300 --startup-runs 5

1. Start-up: `ewaste-app` launched in a fresh subprocess (offscreen) `--startup-runs` times;
   the time from process start to the window's first paint, and to the model being ready.
   Median and spread are reported: single runs vary with the page cache and the CPU load.
2. Throughput: the same images classified headless (discovery + Engine.classify, as
   `ewaste-classify` does) and through the window (drop -> all rows shown), with the same
   engine and batch size, alternating `--repeats` times; median seconds and their ratio
   (target: GUI <= 1.2x headless).
3. Responsiveness: a 10 ms QTimer on the GUI thread during each GUI run; the largest gap
   between its ticks is how long the window could not react (target: well under 100 ms).

Results go to stdout as JSON (and to --json PATH). Measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The training split: a benchmark has no business reading the test split.
DEFAULT_FOLDER = REPO.parent / "shared" / "datasets" / "ewaste" / "train"

# Runs in the subprocess: the real entry point, plus an event filter that reports the first
# paint of the window and a poll that reports the loaded model, then closes the window.
STARTUP_CHILD = r"""
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
import desktop.gui.app as app_module

create = app_module.create_window

class FirstPaint(QObject):
    def __init__(self):
        super().__init__()
        self.seen = False
    def eventFilter(self, obj, event):
        if not self.seen and event.type() == QEvent.Type.Paint:
            self.seen = True
            print("SHOWN", flush=True)
        return False

def create_window(options, settings=None):
    window = create(options, settings)
    spy = FirstPaint()
    window.installEventFilter(spy)
    window._bench_spy = spy
    def poll():
        if window.engine is not None or window.model_error:
            print("READY" if window.engine is not None else "FAILED " + window.model_error,
                  flush=True)
            window.close()
    timer = QTimer(window)
    timer.timeout.connect(poll)
    timer.start(2)
    return window

app_module.create_window = create_window
sys.exit(app_module.main(sys.argv[1:]))
"""


def _env(config_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["XDG_CONFIG_HOME"] = config_dir  # never touch the user's settings
    env["XDG_DATA_HOME"] = config_dir  # nor the app's copy of an unsaved review
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def bench_startup(model: str | None, runs: int) -> dict[str, object]:
    shown, ready = [], []
    args = ["--model", model] if model else []
    with tempfile.TemporaryDirectory() as config:
        for _ in range(runs):
            start = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-c", STARTUP_CHILD, *args],
                env=_env(config),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            for line in child.stdout:
                now = time.perf_counter() - start
                if line.startswith("SHOWN"):
                    shown.append(now)
                elif line.startswith("READY"):
                    ready.append(now)
                elif line.startswith("FAILED"):
                    raise SystemExit(f"the model did not load: {line[7:].strip()}")
            _, stderr = child.communicate(timeout=120)
            if child.returncode != 0:
                raise SystemExit(f"ewaste-app exited with {child.returncode}:\n{stderr}")
    return {
        "runs": runs,
        "window_shown_s": _stats(shown),
        "model_ready_s": _stats(ready),
    }


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def bench_throughput(
    model: str | None,
    folder: Path,
    limit: int | None,
    batch_size: int,
    threads: int | None,
    repeats: int,
) -> dict[str, object]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop.core.discovery import collect_images
    from desktop.gui.main_window import MainWindow
    from desktop.gui.settings import AppSettings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    images = collect_images([folder]).images
    if limit:
        images = images[:limit]
    if not images:
        raise SystemExit(f"no images under {folder}")
    paths = [str(p) for p in images]

    with tempfile.TemporaryDirectory() as config:
        window = MainWindow(
            AppSettings.at(Path(config) / "bench.ini"), batch_size=batch_size, threads=threads
        )
        window.show()
        window.load_model(model)
        _spin_until(app, lambda: window.engine is not None or window.model_error is not None)
        if window.engine is None:
            raise SystemExit(f"the model did not load: {window.model_error}")
        engine = window.engine

        _time_headless(engine, paths, batch_size)  # warm the page cache and ORT, untimed
        headless_times, gui_times, max_gaps = [], [], []
        for _ in range(repeats):
            headless_times.append(_time_headless(engine, paths, batch_size))
            gui_s, gap = _time_gui_run(app, window, paths)
            gui_times.append(gui_s)
            max_gaps.append(gap)
        window.close()

    headless_median = statistics.median(headless_times)
    gui_median = statistics.median(gui_times)
    return {
        "images": len(paths),
        "batch_size": batch_size,
        "model": str(engine.model_path),
        "provider": engine.provider,
        "headless_s": _stats(headless_times),
        "gui_s": _stats(gui_times),
        "headless_images_per_s": round(len(paths) / headless_median, 1),
        "gui_images_per_s": round(len(paths) / gui_median, 1),
        "gui_over_headless": round(gui_median / headless_median, 3),
        "target_gui_over_headless": 1.2,
        "max_gui_thread_gap_ms": round(max(max_gaps) * 1000, 1),
        "median_max_gap_ms": round(statistics.median(max_gaps) * 1000, 1),
    }


def _time_headless(engine, paths: list[str], batch_size: int) -> float:
    """Seconds for discovery and classification without the window."""
    from desktop.core.discovery import collect_images

    start = time.perf_counter()
    found = collect_images(paths)
    count = sum(len(b) for b in engine.classify(found.images, batch_size=batch_size))
    assert count == len(paths)
    return time.perf_counter() - start


def _time_gui_run(app, window, paths: list[str]) -> tuple[float, float]:
    """Seconds for the window to classify `paths`, and the longest gap between 10 ms
    timer ticks on the GUI thread meanwhile (how long the window ever froze)."""
    from PySide6.QtCore import QTimer

    window.clear_results()
    window.last_summary = None
    ticks: list[float] = []
    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    probe.start()
    start = time.perf_counter()
    ticks.append(start)
    window.add_paths(paths)
    _spin_until(app, lambda: window.last_summary is not None)
    elapsed = time.perf_counter() - start
    probe.stop()
    assert window.results.rowCount() == len(paths)
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    return elapsed, max(gaps, default=0.0)


def _spin_until(app, condition, timeout: float = 3600.0) -> None:
    # A plain loop over processEvents: the event loop runs exactly as under exec().
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit("timed out")
        app.processEvents()
        time.sleep(0.001)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="ONNX model (default: the shipped one)")
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER, help="images to run")
    parser.add_argument("--limit", type=int, help="use only the first N images found")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads (default: auto)")
    parser.add_argument("--startup-runs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3, help="GUI/headless pairs to time")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    from bench_common import refuse_a_test_split  # here: the module is loaded as a script

    refuse_a_test_split(parser, args.folder, "--folder")

    results: dict[str, object] = {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}
    if not args.skip_startup:
        results["startup"] = bench_startup(args.model, args.startup_runs)
        print(json.dumps({"startup": results["startup"]}), flush=True)
    if not args.skip_throughput:
        results["throughput"] = bench_throughput(
            args.model, args.folder, args.limit, args.batch_size, args.threads, args.repeats
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`ewaste-app [--model PATH] [--threads N] [--batch N] [PATH...]`: the station window.

PATHs (files or folders) are classified as soon as the model is ready, like "Open with".

A model that cannot be loaded does not end the program: the window opens with the reason
in the status bar and in the drop area, and File > Open model… loads another one; PATHs
given on the command line wait and run then. At a sorting station the app is started from
a desktop shortcut, not a terminal: a dialog followed by an exit would leave the worker
with nothing to fix the problem with, and no window to report it from.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from desktop import package_version
from desktop.core.argtypes import batch_size, thread_count
from desktop.core.wording import plural
from desktop.gui.background import wait_for_background_calls
from desktop.gui.main_window import APP_TITLE, MainWindow
from desktop.gui.platform_check import platform_problem
from desktop.gui.preview import wait_for_previews
from desktop.gui.run_controller import abandoned_threads
from desktop.gui.settings import APPLICATION, ORGANIZATION, AppSettings
from desktop.gui.worker import DEFAULT_BATCH_SIZE

# How long exit waits for a background load, CSV write or preview decode to end.
EXIT_WAIT_MS = 3000
# Exit status when Qt could not open a window (missing system libraries, or no display at
# all; said on stderr).
EXIT_NO_DISPLAY = 3


@dataclass(frozen=True)
class AppOptions:
    model: str | None = None  # None: the model shipped with the app
    threads: int | None = None  # None: ONNX Runtime's default (physical cores)
    batch_size: int = DEFAULT_BATCH_SIZE
    paths: tuple[str, ...] = ()
    check: bool = False  # open the window, load the model, say so and quit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ewaste-app",
        description="E-Waste Sorter: classify photos of e-waste items. Drop images or "
        "folders on the window, or pass them here to start at once.",
    )
    parser.add_argument("--model", metavar="PATH", help="ONNX model (default: the shipped one)")
    parser.add_argument(
        "--threads", type=thread_count, metavar="N", help="inference threads (default: auto)"
    )
    parser.add_argument(
        "--batch",
        dest="batch_size",
        type=batch_size,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"images per inference batch (default: {DEFAULT_BATCH_SIZE})",
    )
    # The flag's earlier name, kept working for existing shortcuts but not advertised.
    parser.add_argument(
        "--batch-size",
        dest="batch_size",
        type=batch_size,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="open the window, load the model, report both and quit (to check an install)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> AppOptions:
    args = build_parser().parse_args(argv)
    return AppOptions(
        model=args.model,
        threads=args.threads,
        batch_size=args.batch_size,
        paths=tuple(args.paths),
        check=args.check,
    )


def create_window(options: AppOptions, settings: AppSettings | None = None) -> MainWindow:
    """Build the window, start loading the model and queue the command-line paths."""
    window = MainWindow(
        settings or AppSettings(), batch_size=options.batch_size, threads=options.threads
    )
    window.load_model(options.model)
    if options.paths:
        window.add_paths(list(options.paths))
    return window


def _application() -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication([sys.argv[0] if sys.argv else "ewaste-app"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_TITLE)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)  # before Qt: --help and usage errors need no display
    problem = platform_problem()  # before Qt too: it would abort without saying why
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_NO_DISPLAY
    app = _application()
    window = create_window(options)
    window.show()
    # Ctrl+C in the terminal closes the window properly (saving settings, stopping
    # workers); the timer gives Python a moment to run its signal handler.
    signal.signal(signal.SIGINT, lambda *_: _close_from_terminal(window))
    heartbeat = QTimer(window)
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(250)
    if options.check:
        QTimer.singleShot(0, lambda: _report_and_quit(window))
    code = app.exec()
    # A model load, CSV write or preview decode still in flight would emit into objects the
    # interpreter is deleting; each takes well under a second.
    wait_for_background_calls(EXIT_WAIT_MS)
    wait_for_previews(EXIT_WAIT_MS)
    if abandoned_threads():
        # A worker stuck in a system call (see RunController.shutdown) cannot be stopped,
        # and Qt aborts the process if a running QThread is destroyed at interpreter exit.
        # Everything is saved by now: leave without the interpreter's teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _report_and_quit(window: MainWindow) -> None:
    """--check: once the model has loaded (or failed), say what opened and quit."""
    if window.model_loading:
        QTimer.singleShot(100, lambda: _report_and_quit(window))
        return
    platform = QApplication.platformName()
    if window.engine is None:
        print(f"ewaste-app --check: window shown ({platform}); model failed: {window.model_error}")
        QApplication.exit(1)
    else:
        print(
            f"ewaste-app --check: window shown ({platform}), visible {window.isVisible()}; "
            f"model {window.engine.model_path.name} loaded, {window.engine.provider}",
            flush=True,
        )
        window.close()


def _close_from_terminal(window: MainWindow) -> None:
    """Ctrl+C: close at once (no box to answer), saying where a person's review went."""
    unsaved = window.results.unsaved_review()
    if unsaved:
        kept = "the next start offers it back" if window.recovery.enabled else "it is lost"
        print(
            f"ewaste-app: closed by Ctrl+C; what a person set for {plural(unsaved, 'photo')} "
            f"is in no CSV: {kept}",
            file=sys.stderr,
        )
    window.close()


if __name__ == "__main__":
    sys.exit(main())

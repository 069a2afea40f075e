"""`ewaste-classify`: classify files and folders without the GUI and write a CSV.

    ewaste-classify PHOTOS/ more.jpg --csv results.csv [--batch 32] [--threads N]
                    [--model MODEL.onnx] [--review-threshold 0.7] [--flip-average]
                    [--summary SHIFT.png] [--sort-into DEST [--move]] [--ray [ADDRESS]]
    ewaste-classify --watch CAMERA/ --csv shift.csv [--poll 1] [--sort-into DEST [--move]]
    ewaste-classify --undo-sort DEST

Exit status: 0 when the run completed (files that could not be read are error rows in the
CSV, they do not fail the run), and for --watch stopped by a signal (its CSV is complete);
1 when the CSV, the summary or the sort could not be written in full; 2 for a usage error
(a PATH that does not exist among them), an unusable model, or nothing to undo; 3 when
the model (or the Ray cluster) failed midway; 128 + the signal number when stopped by
Ctrl+C (130), SIGTERM (143) or SIGHUP (129), unless the parent ignores that signal (nohup).

A run that does not complete never replaces the CSV at --csv: its finished rows go to
NAME.partial.csv beside it, and the message says so. A signal that arrives while the
final CSV is being written waits until it is complete. What --csv may replace, and the
rows a rerun that finishes a stopped --move sort keeps: desktop.core.earlier_csv.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from desktop import package_version

from .argtypes import batch_size, probability, thread_count
from .cli_common import (
    BUSY_GIVE_UP_SECONDS,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    EXIT_WRITE_FAILED,
    PROG,
    UsageError,
    check_csv_is_not_the_manifest,
    checked_output_path,
    error,
    warning,
)
from .cli_workflow import sort_photos, undo, watch, write_summary
from .csv_export import is_being_written, write_results_csv
from .discovery import Collection, collect_images, file_state
from .earlier_csv import rows_moved_before, why_not_replace
from .engine import Engine
from .log_streams import forgiving_output, loggable, not_classified
from .model_info import ModelError
from .results import DEFAULT_REVIEW_THRESHOLD, Prediction, count_statuses
from .safe_files import fitting_name
from .sort_lock import check_not_busy
from .sort_records import SortError
from .sorting import check_destination
from .stop_signals import Stopped, stop_signals_raise, stop_signals_wait
from .watch import DEFAULT_POLL_SECONDS
from .wording import plural

# A folder of thousands of unreadable files (a wrong folder given) must not bury the
# summary: the CSV names them all.
ERRORS_NAMED = 20


def main(argv: Sequence[str] | None = None) -> int:
    with forgiving_output():  # a closed or full log must not cost the photos their run
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code or 0)
    try:
        with stop_signals_raise():
            return _classify(args, argv)
    except Stopped as stop:  # during start-up: nothing was classified yet
        error(f"stopped by {stop} before any image was classified; nothing written")
        return stop.exit_status


def _classify(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    if args.undo_sort is not None:
        return undo(args, others=_given_besides(argv, "undo_sort"))
    if args.watch is not None:
        return watch(args)
    try:
        output = _checked_batch_run(args)
        engine = Engine(args.model, threads=args.threads)
    except (UsageError, ModelError, SortError) as exc:
        error(str(exc))
        return EXIT_USAGE

    predictions: list[Prediction] = []
    collection: Collection | None = None
    try:
        collection = collect_images(args.paths)
        _warn_about_paths(collection)
        print(
            f"{plural(len(collection.images), 'image')} to classify with "
            f"{engine.model_path.name} ({engine.provider})",
            file=sys.stderr,
        )
        progress = Progress(len(collection.images), sys.stderr)
        _predict_all(args, engine, collection.images, predictions, progress.update)
        progress.finish()
    except Stopped as stop:
        with stop_signals_wait():  # a second Ctrl+C now must not lose the finished rows
            _end_progress_line()
            total = len(collection.images) if collection else 0
            error(f"stopped by {stop} after {len(predictions)} of {total} images")
            _save_partial(output, predictions, collection, engine, args.review_threshold)
        return stop.exit_status
    except (ModelError, MemoryError) as exc:  # the model failed on a batch, midway
        _end_progress_line()
        reason = str(exc) or type(exc).__name__
        if not predictions:  # (a Ray cluster not reached): no partial CSV to mistake for one
            error(f"the run failed before any image was classified: {reason}; nothing written")
            return EXIT_RUN_FAILED
        error(f"the run failed after {len(predictions)} images: {reason}")
        _save_partial(output, predictions, collection, engine, args.review_threshold)
        return EXIT_RUN_FAILED

    return _write_and_finish(args, output, engine, predictions, collection)


def _checked_batch_run(args: argparse.Namespace) -> Path:
    """The CSV to write, once every option of a one-time run is checked: a mistake is
    said before any photo is classified, not after the whole run (UsageError, SortError)."""
    if args.ray not in (None, LOCAL_RAY) and os.path.exists(args.ray):
        # --ray takes an optional ADDRESS: "--ray PHOTOS/" read the folder as one.
        raise UsageError(
            f"--ray took {args.ray} for the cluster's address: give the PATHs before "
            "--ray, or --ray=ADDRESS"
        )
    if not args.paths or args.csv is None:
        raise UsageError("give the PATHs to classify and --csv OUT (or --undo-sort DEST)")
    _check_paths_are_there(args.paths)
    if args.move and args.sort_into is None:
        raise UsageError("--move goes with --sort-into DEST")
    if args.poll is not None:
        raise UsageError("--poll goes with --watch DIR")
    if args.ray is not None and importlib.util.find_spec("ray") is None:
        if getattr(sys, "frozen", False):  # the one-folder build: no pip to add Ray with
            raise UsageError(
                "--ray needs Ray, which this build leaves out: run it from "
                "a Python install of ewaste-sorter with the cluster extra"
            )
        raise UsageError("--ray needs Ray: pip install 'ewaste-sorter[cluster]'")
    output = checked_output_path(args.csv)
    check_csv_is_not_the_manifest(output, args.sort_into)
    refusal = why_not_replace(output)
    if refusal is not None:
        raise UsageError(f"--csv {refusal}")
    if is_being_written(output):  # said now, not after classifying every photo
        raise UsageError(f"--csv {output} is being written by another program (a watch?)")
    if args.summary is not None:  # checked now: a bad path must not cost the whole run
        checked_output_path(str(args.summary), "--summary", "summary.png")
        if args.summary.suffix.lower() != ".png":  # a PNG under another name opens nowhere
            raise UsageError(
                f"--summary draws a PNG: give a name ending in .png, not {args.summary.name}"
            )
        if args.summary.is_file() and _among(args.summary, args.paths):
            raise UsageError(
                f"--summary {args.summary} is one of the photos to classify: give another name"
            )
    if args.sort_into is not None:
        check_destination(args.sort_into, [Path(p) for p in args.paths], move=args.move)
        # Said now, not after classifying every photo (a watch's moment is waited out).
        check_not_busy(args.sort_into, warning, BUSY_GIVE_UP_SECONDS)
    return output


def _write_and_finish(
    args: argparse.Namespace,
    output: Path,
    engine: Engine,
    predictions: list[Prediction],
    collection: Collection,
) -> int:
    """Write the CSV of a completed run, then its summary and sort: the exit status."""
    carried: list[Prediction] = []
    if args.sort_into is not None:  # finishing a --move sort: the photos it moved are gone
        carried = rows_moved_before(output, args.sort_into, collection.images, engine.class_names)
    rows = sorted(predictions + carried, key=lambda p: p.path) + collection.problems
    if is_being_written(output):  # a watch began appending to it as this run classified
        return _write_beside_the_watch(output, rows, engine, args.review_threshold)
    with stop_signals_wait() as waited:
        written = _write_csv(output, rows, engine.class_names, args.review_threshold)
    if not written:
        if args.sort_into is not None:  # a finishing run reads what was moved from the CSV
            error(f"nothing was sorted into {args.sort_into}: run again once the CSV is written")
        return EXIT_WRITE_FAILED
    step = "after the CSV was written"
    try:
        _name_the_unreadable(predictions, output)  # first: the counts end the output
        _say_written(output, rows, len(carried), collection.skipped, args.review_threshold)
        if waited:
            error(f"stopped by {waited[0]} while writing; the CSV above is complete")
            return waited[0].exit_status
        step = "while drawing the summary"
        # The summary is an extra: one that cannot be drawn must not hold back the sort.
        summary_drawn = args.summary is None or write_summary(args, rows, engine)
        step = "while sorting"
        sorted_status = EXIT_OK
        if args.sort_into is not None:
            sorted_status = sort_photos(args, predictions, engine.class_names)
        return sorted_status if summary_drawn else EXIT_WRITE_FAILED
    except Stopped as stop:  # not "nothing written", as a stop before the CSV is
        error(f"stopped by {stop} {step}; {output} is complete: run the same command to finish")
        return stop.exit_status


def _say_written(
    output: Path, rows: list[Prediction], carried: int, skipped: int, threshold: float
) -> None:
    counts = count_statuses(rows, threshold)
    print(f"wrote {plural(len(rows), 'row')} to {output}")
    if carried:
        print(f"(with the rows of {plural(carried, 'photo')} moved by the run it finishes)")
    if partial_path(output).is_file():  # which of the two files to use must not be a guess
        warning(f"{partial_path(output)} is left from an earlier stopped run; {output} is this one")
    print(
        f"{counts.ok} ok, {counts.review} to review (confidence under {threshold:g}), "
        f"{plural(counts.unknown, 'unknown item')}, {plural(counts.error, 'error')}; "
        f"{plural(skipped, 'non-image file')} skipped"
    )


def _name_the_unreadable(predictions: Sequence[Prediction], output: Path) -> None:
    """A line on stderr for each photo that could not be classified (the first
    ERRORS_NAMED): which ones, a camera switched to HEIC or a share cutting copies short,
    must not take opening the CSV to find."""
    unreadable = [p for p in predictions if p.error is not None]
    for prediction in unreadable[:ERRORS_NAMED]:
        warning(not_classified(prediction.path, prediction.error))
    if len(unreadable) > ERRORS_NAMED:
        more = len(unreadable) - ERRORS_NAMED
        warning(f"and {more} more not classified: the error rows of {loggable(str(output))}")


def _among(path: Path, inputs: Sequence[str]) -> bool:
    """Whether `path` is one of `inputs` or inside one of their folders."""
    target = path.resolve()
    for raw in inputs:
        given = Path(raw).resolve()
        if target == given or (given.is_dir() and given in target.parents):
            return True
    return False


def _check_paths_are_there(paths: Sequence[str]) -> None:
    """A PATH that is not there (a camera not plugged in, a typo) or cannot be reached (a
    share without permission) is a UsageError: a script must not read the run as done."""
    problems = []
    for path in paths:
        try:
            os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            problems.append(f"not found: {path}")
        except OSError as exc:
            problems.append(f"cannot access {path}: {exc.strerror or exc}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{problems[0]}{more}; nothing was classified")


def _warn_about_paths(collection: Collection) -> None:
    """Say at once what the CSV will only list: a broken link, a link loop, or a run that
    found no image at all, which would otherwise end in an empty CSV and exit 0."""
    for problem in collection.problems:
        warning(f"{loggable(problem.path)}: {loggable(problem.error)}")
    if not collection.images:
        skipped = f" ({plural(collection.skipped, 'other file')})" if collection.skipped else ""
        warning(f"no images found in the given paths{skipped}")


def _predict_all(
    args: argparse.Namespace,
    engine: Engine,
    images: list,
    predictions: list[Prediction],
    progress: Callable[[int], None],
) -> None:
    """Classify `images` into `predictions` (appended as they come, so a stop keeps them):
    on this machine, or with --ray on a Ray cluster. Each row keeps its file's size and
    time as they were before it was read: a sort then leaves a photo replaced since."""
    states = {str(path): file_state(path) for path in images}
    if args.ray is None:
        batches = engine.classify(
            images,
            batch_size=args.batch,
            flip_average=args.flip_average,
            with_cam=False,  # nothing here shows activation maps: keep none
        )
        for batch in batches:
            predictions.extend(replace(p, file_state=states.get(p.path)) for p in batch)
            progress(len(predictions))
        return
    # Imported only here: the station install has no Ray (extra `cluster`).
    from desktop.cluster.ray_classify import classify_on_ray

    done: dict[int, Prediction] = {}  # rows come as the workers finish them
    try:
        for index, prediction in classify_on_ray(
            images,
            address=None if args.ray == LOCAL_RAY else args.ray,
            # As loaded here: the workers run elsewhere, from another working folder.
            model=None if args.model is None else os.path.abspath(args.model),
            batch_size=args.batch,
            flip_average=args.flip_average,
        ):
            done[index] = replace(prediction, file_state=states.get(prediction.path))
            progress(len(done))
    except Exception as exc:  # noqa: BLE001 - Ray wraps every failure in its own types
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        if "Failed to connect to Ray cluster" in first:  # Ray says no more: neither do its logs
            first += f" ({RAY_CONNECT_ADVICE})"
        raise ModelError(f"the Ray run failed: {first}") from exc
    finally:  # a stop or a failure keeps the finished rows, in input order
        predictions.extend(done[index] for index in sorted(done))


def partial_path(output: Path) -> Path:
    """Where an incomplete run's rows go: beside --csv, never over a complete CSV (the stem
    shortened when the name would pass the file system's limit in bytes)."""
    return output.with_name(fitting_name(output.stem, f".partial{output.suffix or '.csv'}"))


def _save_partial(
    output: Path,
    predictions: list[Prediction],
    collection: Collection | None,
    engine: Engine,
    threshold: float,
) -> None:
    """Write the finished rows (and the discovery problems) to the partial CSV."""
    rows = predictions + (collection.problems if collection else [])
    target = partial_path(output)
    with stop_signals_wait():
        if _write_csv(target, rows, engine.class_names, threshold):
            print(f"wrote {plural(len(rows), 'row')} of the incomplete run to {target}")


def _write_beside_the_watch(
    output: Path, rows: list[Prediction], engine: Engine, threshold: float
) -> int:
    """The run's CSV, taken by a watch since the run began: left to the watch, the rows
    written beside it instead, and nothing sorted (a sort reads its rows from --csv)."""
    target = partial_path(output)
    with stop_signals_wait():
        if _write_csv(target, rows, engine.class_names, threshold):
            error(
                f"a watch began appending to {output} during this run, so it was left alone: "
                f"this run's {plural(len(rows), 'row')} are in {target}; nothing was sorted: "
                "run again with another --csv to sort"
            )
    return EXIT_WRITE_FAILED


def _write_csv(output: Path, rows: list[Prediction], class_names, threshold: float) -> bool:
    """Write the CSV; on failure say why and return False."""
    try:
        write_results_csv(output, rows, class_names, threshold)
    except OSError as exc:
        error(f"cannot write {output}: {exc.strerror or exc}")
        return False
    except ValueError as exc:  # rows the CSV cannot hold; the message says which
        error(f"cannot write {output}: {exc}")
        return False
    return True


LOCAL_RAY = "local"  # --ray without an address: a Ray running here, else a new one
RAY_CONNECT_ADVICE = (
    "is the address right, and the head running? A cluster started with "
    "RAY_AUTH_MODE=token needs it set here too, with its token: see docs/cluster.md"
)


def _given_besides(argv: Sequence[str] | None, own: str) -> list[str]:
    """The options and PATHs on the command line `argv` (None: the process's) other than
    `own` ("--watch", "PATHs"), one typed with its default value included: parsed again
    with no defaults, so that only what was typed is set."""
    return [
        "PATHs" if name == "paths" else "--" + name.replace("_", "-")
        for name in vars(build_parser(typed_only=True).parse_args(argv))
        if name != own
    ]


def build_parser(*, typed_only: bool = False) -> argparse.ArgumentParser:
    """The command's parser; `typed_only`: with no defaults, so that a parse sets only what
    the command line holds (see `_given_besides`)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Classify e-waste photos (files and folders, recursively) into a CSV.",
        argument_default=argparse.SUPPRESS if typed_only else None,
    )

    def default(value: object) -> dict[str, object]:
        return {} if typed_only else {"default": value}

    parser.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--csv", metavar="OUT", help="CSV file to write (required)")
    parser.add_argument(
        "--sort-into",
        metavar="DEST",
        type=Path,
        help="then copy each photo to DEST/<class>/ (review and unknown: DEST/_review/, "
        "errors: DEST/_error/), with DEST/manifest.csv; never overwrites",
    )
    parser.add_argument(
        "--move", action="store_true", help="with --sort-into: move the photos instead of copying"
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL_RAY,
        metavar="ADDRESS",
        help="classify on a Ray cluster (extra `cluster`): ADDRESS such as auto or "
        "host:6379; without ADDRESS, it joins a Ray running on this machine, else starts one "
        "here. Paths must be readable on "
        "every node",
    )
    parser.add_argument(
        "--summary",
        metavar="PNG",
        type=Path,
        help="also draw the batch summary (counts per class and status, model, threshold, "
        "date) into this PNG",
    )
    parser.add_argument(
        "--watch",
        metavar="DIR",
        type=Path,
        help="classify the photos that arrive in DIR (a camera's folder, not its "
        "sub-folders) until Ctrl+C, appending each batch to --csv; run again on the same "
        "CSV, it skips the photos classified before",
    )
    parser.add_argument(
        "--poll",
        type=float,
        **default(None),
        metavar="SECONDS",
        help=f"with --watch: how often to look for new photos ({DEFAULT_POLL_SECONDS:g})",
    )
    parser.add_argument(
        "--undo-sort",
        metavar="DEST",
        type=Path,
        help="put the photos of an earlier --sort-into DEST back, from its manifest (alone)",
    )
    parser.add_argument(
        "--batch", type=batch_size, **default(32), help="images per inference batch (32)"
    )
    parser.add_argument(
        "--threads",
        type=thread_count,
        **default(None),
        help="ONNX Runtime threads (default: one per physical core)",
    )
    parser.add_argument(
        "--model", **default(None), metavar="MODEL.onnx", help="model file (default: shipped)"
    )
    parser.add_argument(
        "--review-threshold",
        type=probability,
        **default(DEFAULT_REVIEW_THRESHOLD),
        metavar="P",
        help=f"flag predictions under this confidence for review ({DEFAULT_REVIEW_THRESHOLD})",
    )
    parser.add_argument(
        "--flip-average",
        action="store_true",
        help="also classify each image mirrored and average the two, at half the speed; "
        "it helps some models, not the shipped one (0.3 points less on validation)",
    )
    return parser


class Progress:
    """done/total and images per second: redrawn in place on a terminal, else a line
    every few seconds (so a log file does not get one line per batch)."""

    LOG_INTERVAL_SECONDS = 5.0

    def __init__(self, total: int, stream: TextIO) -> None:
        self._total = total
        self._stream = stream
        self._interactive = stream.isatty()
        self._start = time.perf_counter()
        self._last_line = float("-inf")
        self._done = 0

    def update(self, done: int) -> None:
        self._done = done
        now = time.perf_counter()
        if self._interactive:
            self._stream.write("\r" + self._text(now))
            self._stream.flush()
        elif done < self._total and now - self._last_line >= self.LOG_INTERVAL_SECONDS:
            self._last_line = now  # the line for the last batch is finish()'s
            self._stream.write(self._text(now) + "\n")

    def finish(self) -> None:
        prefix = "\r" if self._interactive else ""
        self._stream.write(prefix + self._text(time.perf_counter()) + "\n")
        self._stream.flush()

    def _text(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = self._done / elapsed
        return f"classified {self._done}/{self._total} ({rate:.1f} images/s)"


def _end_progress_line() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line redrawn in place


if __name__ == "__main__":
    sys.exit(main())

"""The sorting-workflow parts of `ewaste-classify`: --summary, --sort-into, --undo-sort and
--watch (the photo-by-photo work is in desktop.core.summary, sorting and watch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_common import (
    BUSY_GIVE_UP_SECONDS,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    EXIT_WRITE_FAILED,
    UsageError,
    check_csv_is_not_the_manifest,
    checked_output_path,
    error,
    warning,
)
from .engine import Engine
from .log_streams import loggable
from .model_info import ModelError
from .results import Prediction
from .sort_manifest import MANIFEST_FILE
from .sort_records import SortError, SortStopped, reason_for
from .sort_undo import undo_sort
from .sorting import check_destination, sort_into
from .stop_signals import Stopped, stop_signals_ask
from .summary import save_png, summarise
from .watch import DEFAULT_POLL_SECONDS, watch_and_classify, watch_record_path
from .wording import plural


def write_summary(args: argparse.Namespace, rows: list[Prediction], engine: Engine) -> bool:
    summary = summarise(
        rows,
        engine.class_names,
        args.review_threshold,
        model_name=engine.model_path.name,
        model_sha256=engine.model_sha256,
    )
    try:
        save_png(summary, args.summary)
    except OSError as exc:
        error(f"cannot write {args.summary}: {exc.strerror or exc}")
        return False
    print(f"batch summary: {args.summary}")
    return True


def sort_photos(args: argparse.Namespace, predictions: list[Prediction], class_names) -> int:
    """File the classified photos (a stop signal ends it between two photos, each photo
    whole and in the manifest, so running the same command again finishes the job)."""
    action = "moved" if args.move else "copied"
    try:
        report = sort_into(
            predictions,
            args.sort_into,
            list(class_names),
            args.review_threshold,
            move=args.move,
            sources=[Path(p) for p in args.paths],
            wait_if_busy=warning,
            give_up_s=BUSY_GIVE_UP_SECONDS,
        )
    except SortError as exc:
        error(str(exc))
        return EXIT_WRITE_FAILED
    except Stopped as stop:
        error(f"stopped by {stop} while sorting; run the same command again to finish")
        return stop.exit_status
    print(
        f"{action} {report.filed_count()} into {args.sort_into} "
        f"(manifest: {args.sort_into / MANIFEST_FILE})" + report.earlier_sort_note()
    )
    for source, reason in report.failed:
        error(f"not sorted: {loggable(source)}: {loggable(reason)}")
    return EXIT_WRITE_FAILED if report.failed else EXIT_OK


def watch(args: argparse.Namespace) -> int:
    """--watch DIR: classify arriving photos until stopped; the CSV is complete at every
    batch, so a stop signal is the normal end (exit 0)."""
    poll = DEFAULT_POLL_SECONDS if args.poll is None else args.poll
    try:
        if args.paths or args.csv is None:
            raise UsageError("--watch DIR takes no PATHs, and needs --csv OUT")
        if args.move and args.sort_into is None:
            raise UsageError("--move goes with --sort-into DEST")
        batch_only = [
            option
            for option, given in (
                ("--summary", args.summary is not None),
                ("--flip-average", args.flip_average),
                ("--ray", args.ray is not None),
            )
            if given
        ]
        if batch_only:
            raise UsageError(f"{', '.join(batch_only)}: for a run over PATHs, not with --watch")
        if not args.watch.is_dir():
            raise UsageError(f"--watch {args.watch} is not a folder")
        if not 0.05 <= poll <= 3600:
            raise UsageError("--poll must be from 0.05 to 3600 seconds")
        output = checked_output_path(args.csv)
        check_csv_is_not_the_manifest(output, args.sort_into)
        record = watch_record_path(output)
        if record.is_symlink() or (record.exists() and not record.is_file()):
            # Appended to and cut back: through a link, another file would be.
            raise UsageError(f"{record} is a link or a special file, not the watch's record")
        if args.sort_into is not None:
            check_destination(args.sort_into, [args.watch], move=args.move)
        engine = Engine(args.model, threads=args.threads)
    except (UsageError, ModelError, SortError) as exc:
        error(str(exc))
        return EXIT_USAGE
    try:
        watch_and_classify(
            engine,
            args.watch,
            output,
            args.review_threshold,
            batch_size=args.batch,
            poll_seconds=poll,
            sort_into_dest=args.sort_into,
            move=args.move,
            log=lambda line: print(line, file=sys.stderr),
            started=lambda: print(
                f"watching {args.watch}; Ctrl+C stops, {output} is complete at every batch"
            ),
        )
    except Stopped as stop:
        print(f"stopped watching ({stop}); {output} holds every photo classified")
    except ValueError as exc:  # an existing CSV of other columns
        error(str(exc))
        return EXIT_USAGE
    except ModelError as exc:  # the model failed on a batch; the CSV holds the rest
        error(f"the watch stopped: {exc}")
        return EXIT_RUN_FAILED
    except SortError as exc:  # "sort again" means: start the watch again
        error(f"the watch stopped: {exc} (started again, the watch sorts what is left)")
        return EXIT_WRITE_FAILED
    except OSError as exc:  # a CSV that cannot be appended to (the file named: a full disk)
        error(f"the watch stopped: {reason_for(exc, naming_the_file=True)}")
        return EXIT_WRITE_FAILED
    return EXIT_OK


def undo(args: argparse.Namespace, others: list[str]) -> int:
    """--undo-sort DEST; `others`: the other options given, each refused (an undo moves
    photos: one asked for beside a --watch or a run over PATHs must not go ahead alone)."""
    if others:
        error(f"--undo-sort DEST takes no other arguments: {', '.join(others)} given")
        return EXIT_USAGE
    # A stop signal ends the undo between two photos, which then records what it put back
    # and says how many, as the app's Cancel does; a second Ctrl+C stops it at once.
    report = None
    try:
        with stop_signals_ask() as stops:
            report = undo_sort(
                args.undo_sort,
                should_stop=lambda: bool(stops),
                wait_if_busy=warning,
                give_up_s=BUSY_GIVE_UP_SECONDS,
            )
    except SortStopped as exc:
        error(f"stopped by {stops[0]}: {exc}")
        return stops[0].exit_status
    except SortError as exc:  # with a report: photos were put back, not all recorded
        error(str(exc))
        return EXIT_USAGE if exc.report is None else EXIT_WRITE_FAILED
    except Stopped as stop:  # manifest.csv is rewritten only at the end: nothing is lost
        if report is None:  # (else the undo had finished: it says what it did, below)
            error(f"stopped by {stop} while putting photos back; run --undo-sort again to finish")
            return stop.exit_status
    print(
        f"put back {plural(len(report.filed), 'photo')} from {args.undo_sort}{report.undo_note()}"
    )
    for destination, reason in report.failed:
        error(f"not put back: {destination}: {reason}")
    return EXIT_WRITE_FAILED if report.failed else EXIT_OK

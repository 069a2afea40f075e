"""`ewaste-convert`: export a trained Keras model to ONNX for the station app, add unknown-item
detection to it, change how photos reach its input (set-resize), or verify one.

Exit codes: 0 done, 1 parity failed (Keras and ONNX Runtime disagree), 2 a problem with
the input (one line on stderr, no traceback); 128 + the signal when stopped by Ctrl+C (130),
SIGTERM (143) or SIGHUP (129), with its temporary files removed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from desktop.core.extras import missing_extra
from desktop.core.preprocessing import RESIZE_MODES
from desktop.core.stop_signals import Stopped, stop_signals_raise

EXIT_OK, EXIT_PARITY, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ewaste-convert",
        description="Export a trained Keras classifier to a self-describing ONNX model and "
        "prove Keras / ONNX Runtime parity.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="convert MODEL.keras to ONNX (parity checked)")
    export.add_argument("model", type=Path, help="the trained .keras file (run.json next to it)")
    export.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    export.add_argument("--classes", help="comma-separated class names (default: run.json)")
    export.add_argument(
        "--opset", type=int, default=17, help="ONNX opset: 17 (default) up to tf2onnx's newest"
    )
    export.add_argument("--cam", action="store_true", help="add a 'cam' class activation output")
    export.add_argument(
        "--int8", action="store_true", help="also write MODEL.int8.onnx if accurate enough"
    )
    export.add_argument(
        "--check-images",
        type=Path,
        help="images for the parity check (default: the validation split of run.json's data_dir)",
    )
    export.add_argument(
        "--batch",
        choices=("dynamic", "static"),
        help="batch dimension of the model (default: dynamic, measured in "
        "benchmarks/bench_convert.py; see converter/export.py DEFAULT_BATCH)",
    )
    export.add_argument(
        "--static-batch-size", type=int, default=None, help="batch size with --batch static"
    )
    export.add_argument(
        "--calibration-images", type=int, default=200, help="training images for --int8"
    )
    export.add_argument(
        "--no-parity", action="store_true", help="skip the parity check (not recommended)"
    )
    export.add_argument(
        "--resize",
        choices=tuple(RESIZE_MODES),
        help="how the model's training images were resized; needed only when there is no "
        "run.json next to the model (run.json says it otherwise)",
    )

    open_set = commands.add_parser(
        "open-set", help="add calibration and unknown-item detection to an exported model"
    )
    open_set.add_argument("onnx", type=Path, help="an .onnx file written by export")
    open_set.add_argument("--data", type=Path, required=True, help="the dataset (train, val)")
    open_set.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    open_set.add_argument(
        "--promised-rate",
        type=float,
        default=0.05,
        help="largest share of new photos of known items that may be called unknown "
        "(default 0.05); the threshold keeps it with 95 %% confidence on validation",
    )

    set_resize = commands.add_parser(
        "set-resize",
        help="change how the app fits photos to an exported model's input (its metadata)",
    )
    set_resize.add_argument("onnx", type=Path, help="an .onnx file written by export")
    set_resize.add_argument(
        "--resize",
        choices=tuple(RESIZE_MODES),
        required=True,
        help="item: crop to the item on a plain background first (measure it on validation "
        "photos: benchmarks/bench_item_size.py)",
    )
    set_resize.add_argument("--out", type=Path, required=True, help="the .onnx file to write")

    verify = commands.add_parser("verify", help="compare an ONNX model with its Keras model")
    verify.add_argument("model", type=Path, help="the .keras file")
    verify.add_argument("onnx", type=Path, help="the .onnx file exported from it")
    verify.add_argument("--check-images", type=Path, help="images to compare on")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A station install: one line, not a traceback. set-resize edits metadata: onnx only.
    problem = missing_extra("train", ("onnx",) if args.command == "set-resize" else None)
    if problem:
        print(f"ewaste-convert: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # Before TensorFlow is imported: its C++ start-up chatter is not for this audience.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from converter.errors import ConvertError, ParityError

    try:
        with stop_signals_raise():  # SIGTERM unwinds like Ctrl+C: temporary files go
            if args.command == "export":
                return _export(args)
            if args.command == "open-set":
                return _open_set(args)
            if args.command == "set-resize":
                return _set_resize(args)
            return _verify(args)
    except Stopped as stop:
        written = getattr(stop, "written", None) or "nothing written"  # StoppedAfterWriting
        print(f"ewaste-convert: stopped by {stop}; {written}", file=sys.stderr)
        return stop.exit_status
    except ParityError as exc:
        print(f"ewaste-convert: {exc}", file=sys.stderr)
        return EXIT_PARITY
    except ConvertError as exc:
        print(f"ewaste-convert: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _export(args: argparse.Namespace) -> int:
    from converter.errors import ConvertError
    from converter.export import DEFAULT_BATCH, ExportOptions, export

    batch = args.batch or DEFAULT_BATCH
    if args.static_batch_size is not None and batch != "static":
        raise ConvertError("--static-batch-size goes with --batch static")
    summary = export(
        ExportOptions(
            model=args.model,
            out=args.out,
            classes=args.classes,
            opset=args.opset,
            cam=args.cam,
            int8=args.int8,
            check_images=args.check_images,
            batch=batch,
            static_batch_size=1 if args.static_batch_size is None else args.static_batch_size,
            parity=not args.no_parity,
            calibration_images=args.calibration_images,
            resize=args.resize,
        )
    )
    print(
        f"wrote {summary['onnx']} ({summary['size_bytes'] / 1e6:.2f} MB, opset "
        f"{summary['opset']}, batch {summary['batch']}{', cam' if summary['cam'] else ''}; "
        f"converted in {summary['convert_seconds']:.1f} s, the app loads it in "
        f"{summary['app_load_seconds']:.2f} s)"
    )
    if args.no_parity:
        _warn("parity check skipped (--no-parity): this model is unchecked")
    else:
        _warn_notes(summary["parity_notes"])
        print(f"parity passed: {summary['parity']}")
    print(f"parity report: {summary['parity_report']}")
    int8 = summary.get("int8")
    if int8:
        verdict = f"kept {int8['int8_model']}" if int8["kept"] else "not kept"
        print(
            f"int8: {verdict}: accuracy {int8['fp32_accuracy']:.2%} fp32 -> "
            f"{int8['int8_accuracy']:.2%} int8 ({int8['reason']}), "
            f"{int8['speed']['speedup']:.2f}x the fp32 speed (report: {int8['report']})"
        )
    return EXIT_OK


def _open_set(args: argparse.Namespace) -> int:
    import onnx

    from converter.errors import ConvertError
    from converter.model_files import write_model
    from converter.open_set import fit_open_set
    from trainer.calibration import MAX_TEMPERATURE
    from trainer.dataset import DatasetError, load_dataset

    if not 0.0 < args.promised_rate < 0.5:
        raise ConvertError(f"--promised-rate must be between 0 and 0.5, got {args.promised_rate}")
    if not Path(args.onnx).is_file():
        raise ConvertError(f"model not found: {args.onnx}")
    if Path(args.out).resolve() == Path(args.onnx).resolve():
        raise ConvertError(
            f"--out is {args.onnx} itself: give the calibrated model another name (the export "
            "stays, for verify and for another open-set)"
        )
    try:
        dataset = load_dataset(args.data)
        model = onnx.load(str(args.onnx))
    except (OSError, DatasetError) as exc:
        raise ConvertError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError for a non-model
        raise ConvertError(f"{args.onnx} is not an ONNX model: {exc}") from exc
    fit = fit_open_set(model, dataset, args.promised_rate, source=str(args.onnx))
    write_model(fit.model, args.out)
    calibration, open_set = fit.summary["calibration"], fit.summary["open_set"]
    print(
        f"wrote {args.out}: temperature {fit.temperature:.3f} (validation ECE "
        f"{100 * calibration['val_ece'][0]:.1f} % -> {100 * calibration['val_ece'][1]:.1f} %), "
        f"unknown above {fit.threshold:.4f} ({100 * open_set['val_rejected']:.1f} % of "
        f"validation images; new photos of known items like them: at most "
        f"{100 * open_set['rate_upper_bound']:.1f} % with "
        f"{100 * open_set['confidence']:.0f} % confidence)"
    )
    if fit.temperature >= MAX_TEMPERATURE:
        print(
            f"ewaste-convert: warning: the temperature ended at the top of its range "
            f"({fit.temperature:.1f}): on the validation split the model's confident answers "
            "are as often wrong as right, so its probabilities were flattened; train it "
            "further before shipping",
            file=sys.stderr,
        )
    if not open_set["kept_promise"]:
        print(
            f"ewaste-convert: warning: {open_set['val_images_used']} validation images are "
            f"too few to promise {100 * args.promised_rate:.1f} %; add validation images",
            file=sys.stderr,
        )
    return EXIT_OK


def _set_resize(args: argparse.Namespace) -> int:
    import onnx

    from converter.errors import ConvertError
    from converter.model_files import write_model
    from converter.set_resize import with_resize_mode

    if Path(args.out).resolve() == Path(args.onnx).resolve():
        raise ConvertError(f"--out is {args.onnx} itself: give the changed model another name")
    try:
        model = onnx.load(str(args.onnx))
    except OSError as exc:
        raise ConvertError(f"cannot read {args.onnx}: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError for a non-model
        raise ConvertError(f"{args.onnx} is not an ONNX model: {exc}") from exc
    write_model(with_resize_mode(model, args.resize, str(args.onnx)), args.out)
    print(f"wrote {args.out}: photos reach its input by resize {args.resize}")
    if any(prop.key == "open_set" for prop in model.metadata_props):
        _warn(
            "its calibration and unknown-item threshold were fitted on the old resize: run "
            f"`ewaste-convert open-set {args.out} --data DATA --out FINAL.onnx` to fit them again"
        )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from converter.export import parity_report_path, verify

    report = verify(args.model, args.onnx, args.check_images)
    where = parity_report_path(args.onnx)
    _warn_notes(report.notes)
    if not report.passed:
        print(
            f"ewaste-convert: parity FAILED: {'; '.join(report.failures)} (report: {where})",
            file=sys.stderr,
        )
        return EXIT_PARITY
    print(f"parity passed: {report.summary()}")
    print(f"parity report: {where}")
    return EXIT_OK


def _warn(message: str) -> None:
    print(f"ewaste-convert: warning: {message}", file=sys.stderr)


def _warn_notes(notes: Sequence[str]) -> None:
    """The parity report's notes: each one says what was not checked."""
    for note in notes:
        _warn(note)

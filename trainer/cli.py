"""`ewaste-train`: audit a dataset, fit (train + evaluate), average fine-tunes into a
soup, or evaluate a saved model."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from desktop.core.extras import missing_extra
from desktop.core.preprocessing import RESIZE_MODES
from desktop.core.safe_files import probe_writing
from desktop.core.stop_signals import Stopped, stop_signals_raise
from trainer.config import PRESETS, TrainConfig
from trainer.errors import TrainerError

# Flags whose meaning the name alone does not give.
FIELD_HELP = {
    "backbone": "efficientnetv2-b0 (the reference recipe's) or efficientnet-lite0 (whose "
    "ImageNet weights install offline)",
    "weights": "imagenet, none, or a weights file: EfficientNetV2B0 no-top .h5, or "
    "EfficientNet-Lite0's efficientnet-lite0-57934424.pth",
    "batchnorm": "train (BatchNorm statistics update) or frozen (inference mode throughout)",
    "resize": "stretch (the whole image to the input size), letterbox (aspect ratio kept, "
    "white padding) or item (cropped to the item on a plain background, then stretched); "
    "the exported model's metadata carries it to the app",
    "frozen_layers": "backbone layers kept frozen, counted from the input",
    "mix_probability": "share of training batches mixed by MixUp or CutMix",
    "augment": "basic (flip, rotation, zoom), strong (+ translation, contrast, brightness), "
    "heavy (+ saturation, random erasing) or station (strong + camera blur, scratches)",
    "monitor": "val_loss or val_accuracy: picks the best epoch and stops early",
    "init_from": "start from every weight of an earlier run's model.keras (a warm restart "
    "with a new schedule; needs --weights none)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ewaste-train", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    audit = commands.add_parser("audit", help="counts, sizes, unreadable files, duplicates, plots")
    audit.add_argument("--data", type=Path, required=True, help="folder with train/val/test")
    audit.add_argument("--out", type=Path, required=True, help="where audit.json and plots go")

    fit = commands.add_parser("fit", help="audit, train, evaluate and write the report")
    fit.add_argument("--data", type=Path, required=True, help="folder with train/val/test")
    fit.add_argument("--out", type=Path, required=True, help="run directory")
    fit.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="reference",
        help="starting recipe (default: reference, EfficientNetV2B0, whose ImageNet weights "
        "Keras downloads; offline, the product's lite0-head then lite0)",
    )
    fit.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last finished epoch",
    )
    fit.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where decoded images are cached (default ~/.cache/ewaste-sorter)",
    )
    fit.add_argument(
        "--eager",
        action="store_true",
        help="run each training step eagerly instead of tracing a graph first: the first "
        "step starts about 20 s sooner, every later one is slower; for debugging and tiny "
        "runs (not part of the recipe: a resume may add or drop it)",
    )
    fit.add_argument(
        "--report-split",
        choices=("val", "test"),
        default="val",
        help="the split the final report evaluates (default: val, for choosing a recipe; "
        "the test split is read once, for the model that ships)",
    )
    overrides = fit.add_argument_group("recipe overrides (default: the preset's value)")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = type(field.default)
        overrides.add_argument(
            flag,
            dest=field.name,
            type=kind,
            default=None,
            metavar=kind.__name__.upper(),
            help=FIELD_HELP.get(field.name),
        )

    soup = commands.add_parser(
        "soup",
        help="average the weights of fine-tunes that differ only in their seed into one model",
    )
    soup.add_argument("runs", type=Path, nargs="+", help="finished run folders (at least two)")
    soup.add_argument("--out", type=Path, required=True, help="folder for model.keras, run.json")
    soup.add_argument(
        "--epoch",
        choices=("final", "best"),
        default="final",
        help="each run's last epoch (default: no epoch picked on validation) or its best",
    )

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a saved .keras model or an exported .onnx file on a split"
    )
    evaluate.add_argument(
        "model", type=Path, help="the .keras model, or an .onnx file (run by the app's engine)"
    )
    evaluate.add_argument("--data", type=Path, required=True, help="folder with train/val/test")
    evaluate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report folder (default: MODEL-SPLIT-evaluation beside the model; never a run's "
        "folder, whose own reports it would replace)",
    )
    evaluate.add_argument(
        "--split",
        default="val",
        choices=("train", "val", "test"),
        help="default: val; the test split is read once, for the model that ships, so it "
        "is never read by forgetting this flag",
    )
    evaluate.add_argument(
        "--tta-flip", action="store_true", help="also average with the horizontally flipped image"
    )
    evaluate.add_argument(
        "--resize",
        choices=tuple(RESIZE_MODES),
        default=None,
        help="how a .keras model with no run.json beside it was trained (else read from "
        "run.json or the .onnx file)",
    )
    return parser


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(TrainConfig)
        if getattr(args, field.name) is not None
    }
    return PRESETS[args.preset].replace(**overrides).check()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = missing_extra("train")  # a station install: one line, not a traceback
    if problem:
        print(f"ewaste-train: error: {problem}", file=sys.stderr)
        return 2
    # Before TensorFlow is imported: its C++ start-up chatter (info and warnings) buries the
    # epoch lines. Errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with stop_signals_raise():  # SIGTERM (a closed session, `kill`) stops like Ctrl+C
            _run(args)
    except TrainerError as exc:  # fixable from the message; anything else is a bug
        print(f"ewaste-train: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped) as stop:
        print(f"ewaste-train: stopped; {STOPPED_ADVICE[args.command]}", file=sys.stderr)
        return stop.exit_status if isinstance(stop, Stopped) else 130
    return 0


def _run(args: argparse.Namespace) -> None:
    """Run the parsed command; its errors and stops are main's to report."""
    if args.command == "audit":
        from trainer.audit import run_audit
        from trainer.run_folder import AUDIT_FILE

        audit = run_audit(args.data, _out_folder(args.out))
        for warning in audit.warnings():
            print(f"ewaste-train: warning: {warning}", file=sys.stderr)
        print(audit.findings())
        print(f"audit written to {args.out / AUDIT_FILE}")
    elif args.command == "fit":
        from trainer import data
        from trainer.fit import fit

        config = resolve_config(args)
        fit(
            args.data,
            _out_folder(args.out),
            config,
            resume=args.resume,
            cache_dir=_out_folder(args.cache_dir, "--cache-dir", filled_may_be_read_only=True)
            if args.cache_dir
            else data.DEFAULT_CACHE_DIR,
            report_split=args.report_split,
            eager=args.eager,
        )
    elif args.command == "soup":
        from trainer.soup import make_soup

        record = make_soup(args.runs, _out_folder(args.out), epoch=args.epoch)
        count = len(record.soup["ingredients"])
        print(f"averaged {count} runs into {args.out / 'model.keras'}")
    else:
        from trainer.evaluate import evaluate_saved_model
        from trainer.report import artefact_name
        from trainer.run_folder import RUN_FILE

        out = args.out or args.model.parent / f"{args.model.stem}-{args.split}-evaluation"
        if (out / RUN_FILE).is_file():  # its metrics.json and report are the run's own
            raise TrainerError(
                f"--out {out} is a training run's folder, whose reports this would replace: "
                "give another folder"
            )
        metrics = evaluate_saved_model(
            args.model,
            args.data,
            _out_folder(out),
            split=args.split,
            tta_flip=args.tta_flip,
            resize=args.resize,
        )
        result = metrics[args.split]
        print(
            f"{args.split} accuracy {result['accuracy']:.4f} ({result['correct']}/"
            f"{result['n']})  report: {out / artefact_name('report.md', args.split)}"
        )


# What a Ctrl+C leaves behind, per command. Every file is written atomically, so none is torn.
STOPPED_ADVICE = {
    "audit": "the audit is incomplete: run it again",
    "fit": "every finished epoch is saved: add --resume to the same command to continue",
    "soup": "no model was written",
    "evaluate": "the report is incomplete: run it again",
}


def _out_folder(path: Path, option: str = "--out", filled_may_be_read_only: bool = False) -> Path:
    """`option` names a folder to write into, made when there is something to write: a
    file there, or a folder that cannot be made, is a user error now, before the long work."""
    if path.exists() and not path.is_dir():
        raise TrainerError(f"{option} {path} is a file; give a folder to write into")
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise TrainerError(f"{option} {path} cannot be made: {existing} is a file, not a folder")
    if existing == path and filled_may_be_read_only:
        return path  # a cache filled before, read from a read-only share, say
    try:
        probe_writing(existing)
    except OSError as exc:
        raise TrainerError(
            f"{option} {path} cannot be written: {existing} refuses new files "
            f"({exc.strerror or exc})"
        ) from exc
    return path


if __name__ == "__main__":
    sys.exit(main())

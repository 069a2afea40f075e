"""`ewaste-convert export` and `verify`: the steps, in order, with nothing half-written.

The ONNX file is written to a temporary file in the output folder and moved into place with
os.replace only after the checker, ONNX Runtime and the parity check have all accepted it,
so a failed export never leaves (or overwrites) a model at --out.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from converter import keras_model, metadata, onnx_graph, parity, run_info
from converter.errors import ConvertError, ParityError
from converter.model_files import temporary_model
from converter.quantize import DEFAULT_CALIBRATION_IMAGES, quantize_int8
from desktop.core.engine import Engine
from desktop.core.model_info import ModelError, parse_model_info
from desktop.core.stop_signals import Stopped
from trainer.files import write_json_atomic
from trainer.run_folder import relative_data_dir

# Dynamic batch by default. benchmarks/bench_convert.py (random EfficientNetV2B0, 128 px,
# 2 busy CPU cores, interleaved timing, 3 runs): a static model is 0-11% faster at its own
# batch size (static/dynamic median time 0.66-1.01 at batch 1, 0.89-0.99 at batch 32: within
# the noise of a loaded machine), but the app runs both single photos and batches of 32 and
# one static model loses badly on the other: static-32 padded for one photo took 20x the
# dynamic time (342 vs 17 ms), static-1 looped over 32 photos 1.5x (626 vs 421 ms).
# Saving an ORT-optimised copy was also measured and is not done: it saved 25-70 ms of load
# time, the app re-optimises at load anyway, and extended-level files hold onnxruntime-only
# fused ops tied to the runtime version.
DEFAULT_BATCH = "dynamic"


@dataclass(frozen=True)
class ExportOptions:
    model: Path
    out: Path
    classes: str | None = None
    opset: int = onnx_graph.DEFAULT_OPSET
    cam: bool = False
    int8: bool = False
    check_images: Path | None = None
    batch: str = DEFAULT_BATCH  # "dynamic" or "static"
    static_batch_size: int = 1
    parity: bool = True
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    resize: str | None = None  # only for a model without run.json


def parity_report_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(f"{onnx_path.stem}.parity.json")


def failed_parity_report_path(onnx_path: Path) -> Path:
    # A failed export leaves the previous model (if any) in place, so its report must not be
    # overwritten by one describing a file that was never written.
    return onnx_path.with_name(f"{onnx_path.stem}.parity-failed.json")


def int8_paths(onnx_path: Path) -> tuple[Path, Path]:
    return (
        onnx_path.with_name(f"{onnx_path.stem}.int8.onnx"),
        onnx_path.with_name(f"{onnx_path.stem}.int8.json"),
    )


class StoppedAfterWriting(Stopped):
    """A stop that came after some files were finished: `written` says which, for the
    message that would otherwise say nothing was written."""

    def __init__(self, signum: int, written: str):
        super().__init__(signum)
        self.written = written


@dataclass(frozen=True)
class _Plan:
    """What one export converts and checks, from the options, the model and its run.json."""

    info: run_info.RunInfo
    inference: Any  # the Keras inference model (probabilities, and the CAM when asked)
    size: tuple[int, int]
    class_names: list[str]
    batch: int | None  # None: dynamic
    images: list[Path]  # for the parity check
    images_source: str | None
    train_split: run_info.LabelledImages | None  # with --int8: to calibrate
    val_split: run_info.LabelledImages | None


def export(options: ExportOptions, log=print) -> dict[str, Any]:
    """Run the whole export; return a summary. Raises ConvertError or ParityError."""
    plan = _plan(options)
    size = plan.size
    log(f"converting {options.model} (input {size[0]}x{size[1]}, {len(plan.class_names)} classes)")
    started = time.perf_counter()
    proto = onnx_graph.convert(plan.inference, size, options.opset, plan.batch)
    convert_seconds = time.perf_counter() - started
    values = metadata.build_metadata(
        class_names=plan.class_names,
        size=size,
        cam=options.cam,
        batch=plan.batch,
        source=options.model,
        run_info=plan.info,
        opset=options.opset,
    )
    metadata.attach_metadata(proto, values)
    _check_onnx(proto)

    summary: dict[str, Any] = {
        "model": str(options.model),
        "onnx": str(options.out),
        "classes": plan.class_names,
        "input_size": list(size),
        "batch": plan.batch if plan.batch is not None else "dynamic",
        "cam": options.cam,
        "opset": options.opset,
        "convert_seconds": convert_seconds,
        **_write_checked_model(proto, plan, options, log),
    }
    if options.int8:
        try:
            summary["int8"] = _write_int8_model(plan, options, log)
        except Stopped as stop:  # the checked model is in place: only its INT8 copy is not
            raise StoppedAfterWriting(
                stop.signum,
                f"{options.out} and {summary['parity_report']} were written (checked); "
                "no INT8 copy: export again with --int8 to make one",
            ) from stop
    return summary


def _plan(options: ExportOptions) -> _Plan:
    """Check the options, load the model, read run.json: everything before converting."""
    _check_output_path(options.out)
    onnx_graph.check_opset(options.opset)
    batch = _batch_size(options)
    if options.calibration_images < 1:  # INT8 ranges measured on no image: a failure later
        raise ConvertError("--calibration-images must be at least 1")
    explicit_images = (
        run_info.images_in_folder(options.check_images) if options.check_images else None
    )
    info = run_info.read_run_info(options.model)
    model = keras_model.load_keras_model(options.model)
    info = run_info.with_resize(info, options.resize)
    size = keras_model.input_size(model)
    if info.image_size is not None and info.image_size != size:
        raise ConvertError(
            f"run.json says image_size {list(info.image_size)} but the model takes "
            f"{list(size)}: is run.json from another run?"
        )
    head = keras_model.find_head(model)
    class_names = run_info.resolve_class_names(
        info, options.classes, keras_model.num_classes(model)
    )
    inference = keras_model.build_inference_model(model, head, options.cam)
    keras_model.check_probability_output(inference, size)

    # Parity and the INT8 decision use the validation split: the test split is read once,
    # for the model that ships, by its evaluation, never to make a choice.
    val_split = run_info.dataset_split(info, "val", class_names)
    train_split = run_info.dataset_split(info, "train", class_names) if options.int8 else None
    if options.int8 and (val_split is None or train_split is None):
        raise ConvertError(
            "--int8 needs the dataset named by run.json data_dir (train split to calibrate, "
            "validation split to measure accuracy), and it is not on this machine"
        )
    if explicit_images is not None:
        images, source = explicit_images, _images_source(options.check_images, options.out)
    elif val_split is not None:
        images, source = val_split.paths, val_split.source
    else:
        images, source = [], None
    return _Plan(info, inference, size, class_names, batch, images, source, train_split, val_split)


def _batch_size(options: ExportOptions) -> int | None:
    """The static batch size, or None for a dynamic batch."""
    if options.batch not in ("dynamic", "static"):
        raise ConvertError(f"--batch must be 'static' or 'dynamic', got {options.batch!r}")
    if options.static_batch_size < 1:
        raise ConvertError("--static-batch-size must be at least 1")
    return options.static_batch_size if options.batch == "static" else None


def _write_checked_model(
    proto: onnx.ModelProto, plan: _Plan, options: ExportOptions, log
) -> dict[str, Any]:
    """Save the model through a temporary file, which the app must load and (unless
    --no-parity) parity must pass before it moves to --out; returns those facts."""
    out = options.out
    facts: dict[str, Any] = {}
    with temporary_model(out) as temp:
        onnx.save(proto, str(temp))
        facts["size_bytes"] = temp.stat().st_size
        facts["app_load_seconds"] = _app_load_seconds(temp)
        if options.parity:
            report = parity.check_parity(
                plan.inference, options.model, out, plan.size, plan.images, plan.images_source,
                log=log, onnx_file=temp,
            )  # fmt: skip
            facts["parity"] = report.summary()
            if not report.passed:
                failed = failed_parity_report_path(out)
                write_json_atomic(failed, report.to_dict())
                raise ParityError(
                    f"parity failed, nothing written to {out}: {'; '.join(report.failures)} "
                    f"(report: {failed})"
                )
            write_json_atomic(parity_report_path(out), report.to_dict())
            facts["parity_notes"] = report.notes
        else:
            # Replaces the report of an earlier, checked export: it does not describe this file.
            write_json_atomic(parity_report_path(out), parity.skipped_report(options.model, out))
            facts["parity"] = "skipped (--no-parity)"
        facts["parity_report"] = str(parity_report_path(out))
        os.replace(temp, out)
    with contextlib.suppress(FileNotFoundError):
        failed_parity_report_path(out).unlink()
    # An INT8 copy beside --out was made from the file just replaced: left there, it would
    # be calibrated and shipped as this model (--int8 makes a new one after this).
    for stale in int8_paths(out):
        if stale.is_file():
            stale.unlink()
            log(f"removed {stale}: it was made from the model {out} replaced")
    return facts


def _write_int8_model(plan: _Plan, options: ExportOptions, log) -> dict[str, Any]:
    """Quantise the written model; write the INT8 report (and the model, if kept)."""
    out = options.out
    int8_path, report_path = int8_paths(out)
    try:
        result = quantize_int8(
            out, int8_path, plan.size, plan.train_split, plan.val_split,
            options.calibration_images, log=log,
        )  # fmt: skip
    except ConvertError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime.quantization raises many types
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), repr(exc))
        raise ConvertError(
            f"{out} was written, but INT8 quantisation failed: {type(exc).__name__}: {first}"
        ) from exc
    write_json_atomic(report_path, result)
    return {**result, "report": str(report_path)}


def verify(
    keras_path: Path, onnx_path: Path, check_images: Path | None = None, log=print
) -> parity.ParityReport:
    """Compare an existing ONNX file with its Keras model; write MODEL.parity.json."""
    if not onnx_path.is_file():
        raise ConvertError(f"ONNX model not found: {onnx_path}")
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have varied types
        raise ConvertError(f"{onnx_path} is not an ONNX model: {exc}") from exc
    try:
        model_info = parse_model_info(metadata.read_metadata(proto), source=str(onnx_path))
    except ModelError as exc:
        raise ConvertError(str(exc)) from exc
    if model_info.logits_output or model_info.unknown_output:
        raise ConvertError(
            f"{onnx_path} went through ewaste-convert open-set: its probabilities are "
            "calibrated (temperature-scaled), so they no longer match the Keras model's by "
            "design. Verify the file open-set was given instead"
        )
    explicit_images = run_info.images_in_folder(check_images) if check_images else None

    info = run_info.read_run_info(keras_path)
    model = keras_model.load_keras_model(keras_path)
    size = keras_model.input_size(model)
    if model_info.input_size != size:
        raise ConvertError(
            f"{onnx_path} takes {list(model_info.input_size)} images, the Keras model "
            f"{list(size)}: they are not the same model"
        )
    if model_info.num_classes != keras_model.num_classes(model):
        raise ConvertError(
            f"{onnx_path} has {model_info.num_classes} classes, the Keras model "
            f"{keras_model.num_classes(model)}"
        )
    head = keras_model.find_head(model)
    inference = keras_model.build_inference_model(
        model, head, cam=model_info.cam_output is not None
    )

    if explicit_images is not None:
        images, source = explicit_images, _images_source(check_images, onnx_path)
    else:
        split = run_info.dataset_split(info, "val", list(model_info.class_names))
        images, source = (split.paths, split.source) if split else ([], None)
    report = parity.check_parity(inference, keras_path, onnx_path, size, images, source, log=log)
    write_json_atomic(parity_report_path(onnx_path), report.to_dict())
    return report


def _images_source(folder: Path, onnx_path: Path) -> str:
    """--check-images as the parity report names it: from the report's own folder, so the
    report keeps no path of this machine even when an absolute path was typed."""
    return relative_data_dir(folder, Path(onnx_path).parent)


def _check_output_path(out: Path) -> None:
    if out.suffix.lower() != ".onnx":
        raise ConvertError(f"--out must name an .onnx file, got {out}")
    if out.is_dir():
        raise ConvertError(f"--out is a folder, not a file: {out}")
    if not out.parent.is_dir():
        raise ConvertError(f"output folder does not exist: {out.parent}")
    if not os.access(out.parent, os.W_OK):
        raise ConvertError(f"output folder is not writable: {out.parent}")


def _check_onnx(proto: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConvertError(f"the converted model fails onnx.checker: {first}") from exc


def _app_load_seconds(path: Path) -> float:
    """Open the file with the app's Engine (session, metadata checks, test run) and time it."""
    started = time.perf_counter()
    try:
        Engine(path)
    except ModelError as exc:
        raise ConvertError(f"the app cannot load the converted model: {exc}") from exc
    return time.perf_counter() - started

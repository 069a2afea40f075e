"""The inference engine: a self-describing ONNX model run with ONNX Runtime on the CPU.

`Engine.classify` is a generator of per-batch results, so the headless command and the GUI
worker drive the same code: `desktop.core.prediction_loop`, which decodes files on a small
thread pool while the previous batch is inferred, turns a bad file into an error
`Prediction`, and honours a stop request between batches and between decodes.

`flip_average=True` predicts each image and its left-right mirror and averages the two
(test-time augmentation), at twice the inference work. It helps some models; the shipped
one scores 0.3 points less with it on validation (docs/results/lite0/flip-average/).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .assets import SHIPPED_MODEL_SHA256, default_model_path
from .hashing import file_sha256
from .limits import MAX_CAM_SIDE, MAX_STATIC_BATCH, MAX_THREADS, TEST_RUN_SECONDS
from .model_info import ModelError, ModelInfo, parse_model_info
from .prediction_loop import (
    Outputs,
    StopCheck,
    calibrated,
    classify_paths,
    decode,
    flip_averaged,
    output_problem,
    predictions_for,
)
from .results import Prediction

__all__ = ["Engine", "ModelError", "Prediction"]

PROVIDER = "CPUExecutionProvider"


class Engine:
    """Loads a model file once and classifies images with it.

    model_path: an .onnx file written by `ewaste-convert export`; None uses the shipped model.
    threads: ONNX Runtime intra-op threads; None lets ONNX Runtime pick (physical cores).
    decode_workers: threads decoding files in parallel with inference; None picks up to 4.

    Raises ModelError with one readable sentence when the file cannot be used.
    Thread safety: `predict_batch`, `classify_file` and `classify` may be called from any
    thread (ONNX Runtime sessions are safe to run concurrently).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        *,
        decode_workers: int | None = None,
    ) -> None:
        if threads is not None and not 1 <= threads <= MAX_THREADS:
            raise ValueError(f"threads must be from 1 to {MAX_THREADS}, got {threads}")
        if decode_workers is not None and decode_workers < 1:
            raise ValueError(f"decode_workers must be at least 1, got {decode_workers}")
        self.model_path: Path = _existing_model_file(model_path)
        # The hash of the file as loaded, for reports: the file may be replaced or gone since.
        self.model_sha256: str = _sha256_of_model(self.model_path)
        if model_path is None:
            _check_is_the_shipped_model(self.model_path, self.model_sha256)
        self.threads = threads
        self.decode_workers = decode_workers or max(1, min(4, os.cpu_count() or 1))
        self._session = _open_session(self.model_path, threads)
        self.provider: str = self._session.get_providers()[0]
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info: ModelInfo = parse_model_info(props, source=str(self.model_path))
        # An int when the model was exported with a fixed batch size: inputs are then split
        # and padded to it.
        self.static_batch: int | None = _check_graph_matches_metadata(
            self._session, self.info, self.model_path
        )
        # (h, w) of the class activation maps, from the test run; None without a CAM output.
        self.cam_grid: tuple[int, int] | None = None
        self._check_test_run()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model takes."""
        return self.info.input_size

    @property
    def has_cam(self) -> bool:
        """True when the model has a class activation map output (`ewaste-convert --cam`)."""
        return self.info.cam_output is not None

    @property
    def detects_unknown(self) -> bool:
        """True when the model marks items that are none of its classes (`open_set`)."""
        return self.info.unknown_threshold is not None

    def predict(
        self, images: np.ndarray, flip_average: bool = False, with_cam: bool = True
    ) -> Outputs:
        """The prediction loop's predictor, for preprocessed images (N, H, W, 3) in 0-255:
        the probabilities (calibrated when the model has a temperature), the activation maps
        (None without a CAM output, or with `with_cam=False`, which spares ONNX Runtime
        computing them) and the unknown-item scores (None without `open_set`)."""
        batch = self._checked_batch(images)  # before doubling: errors name the caller's shape
        if flip_average:
            return flip_averaged(partial(self.predict, with_cam=with_cam))(batch)
        names = self._output_names(with_cam)
        arrays = dict(zip(names, self._predict(batch, names), strict=True))
        probabilities = arrays[self.info.probabilities_output]
        if self.info.temperature is not None and self.info.logits_output is not None:
            probabilities = calibrated(arrays[self.info.logits_output], self.info.temperature)
        maps = arrays.get(self.info.cam_output) if self.info.cam_output else None
        scores = arrays.get(self.info.unknown_output) if self.info.unknown_output else None
        return Outputs(probabilities, maps, None if scores is None else scores.reshape(-1))

    def predict_batch(self, images: np.ndarray, flip_average: bool = False) -> np.ndarray:
        """Probabilities (N, C) float32 for preprocessed images (N, H, W, 3) in 0-255."""
        return self.predict(images, flip_average, with_cam=False).probabilities

    def _checked_batch(self, images: np.ndarray) -> np.ndarray:
        height, width = self.info.input_size
        batch = np.ascontiguousarray(images, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (height, width, 3):
            raise ValueError(
                f"expected images shaped (N, {height}, {width}, 3), got {tuple(batch.shape)}"
            )
        return batch

    def _predict(self, batch: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """The outputs `names` for a checked batch, split and padded to a static batch."""
        height, width = self.info.input_size
        count = batch.shape[0]
        if count == 0:
            shapes = {
                self.info.probabilities_output: (self.info.num_classes,),
                self.info.logits_output: (self.info.num_classes,),
                self.info.unknown_output: (),
            }
            if self.cam_grid is not None and self.info.cam_output is not None:
                shapes[self.info.cam_output] = (*self.cam_grid, self.info.num_classes)
            return [np.zeros((0, *shapes[name]), dtype=np.float32) for name in names]
        if self.static_batch is None or count == self.static_batch:
            return self._run(batch, names)
        size = self.static_batch
        parts: list[list[np.ndarray]] = []
        for start in range(0, count, size):
            chunk = batch[start : start + size]
            filled = len(chunk)
            if filled < size:
                padding = np.zeros((size - filled, height, width, 3), dtype=np.float32)
                chunk = np.concatenate([chunk, padding])
            parts.append([output[:filled] for output in self._run(chunk, names)])
        return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]

    def classify_file(self, path: str | os.PathLike[str], flip_average: bool = False) -> Prediction:
        """Classify one file; a file that cannot be read gives an error Prediction."""
        decoded = decode(path, self.info.input_size, self.info.resize)
        predict = partial(self.predict, flip_average=flip_average)
        return predictions_for([str(path)], [decoded], predict, self.info.unknown_threshold)[0]

    def classify(
        self,
        paths: Sequence[str | os.PathLike[str]],
        batch_size: int = 32,
        should_stop: StopCheck | None = None,
        flip_average: bool = False,
        with_cam: bool = True,
    ) -> Iterator[list[Prediction]]:
        """Yield one list of Predictions per batch of `paths`, in input order.

        Decoding of the next batch runs on `decode_workers` threads while the current batch
        is inferred; see `prediction_loop.classify_paths`. Bad files never raise.
        `with_cam=False` keeps no activation maps, for callers that never show them.
        """
        return classify_paths(
            paths,
            partial(self.predict, with_cam=with_cam),
            self.info.input_size,
            self.info.resize,
            batch_size=batch_size,
            workers=self.decode_workers,
            should_stop=should_stop,
            flip_average=flip_average,
            unknown_threshold=self.info.unknown_threshold,
        )

    # -- internals -----------------------------------------------------------------------

    def _output_names(self, with_cam: bool = True) -> list[str]:
        """The outputs to compute: probabilities first, then whichever of the activation
        maps, the logits and the unknown scores the model has (and the caller wants)."""
        info = self.info
        optional = [info.cam_output if with_cam else None, info.logits_output, info.unknown_output]
        return [info.probabilities_output, *(name for name in optional if name is not None)]

    def _run(
        self, batch: np.ndarray, names: list[str], options: ort.RunOptions | None = None
    ) -> list[np.ndarray]:
        try:
            outputs = self._session.run(names, {self.info.input_name: batch}, options)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind error types
            # An allocation failure or a kernel error on this batch: one ModelError the
            # caller can report, keeping the rows finished so far.
            raise _RunFailed(
                f"ONNX Runtime failed on a batch of {len(batch)}: {_first_line(exc)}"
            ) from exc
        arrays = [np.asarray(output, dtype=np.float32) for output in outputs]
        # Every run, the load's test run too: an export bug can reshape a real batch alone
        # (a "view(1, -1)" of a batch of 2), or change the width with the photo.
        self._check_shapes(dict(zip(names, arrays, strict=True)), len(batch))
        if self.info.metadata.get("quantized") == "int8":
            # An INT8 softmax comes out in steps of 1/255, so its rows sum to 1 only within
            # about 0.01: scaled back to 1, the CSV and the confidence read as probabilities.
            index = names.index(self.info.probabilities_output)
            sums = arrays[index].sum(axis=1, keepdims=True)
            arrays[index] = arrays[index] / np.where(sums > 0, sums, 1.0)
        return arrays

    def _check_shapes(self, arrays: dict[str, np.ndarray], count: int) -> None:
        """Refuse outputs not shaped as the metadata says for `count` images: (N, C)
        probabilities and logits, one unknown score per image, (N, h, w, C) maps on the
        grid the test run found."""
        info, classes = self.info, self.info.num_classes
        expected = {info.probabilities_output: (count, classes)}
        if info.logits_output is not None:
            expected[info.logits_output] = (count, classes)
        if info.cam_output is not None and self.cam_grid is not None:
            expected[info.cam_output] = (count, *self.cam_grid, classes)
        for name, array in arrays.items():
            if name in expected and array.shape != expected[name]:
                raise ModelError(
                    f"{self.model_path}: output '{name}' has shape {array.shape} for "
                    f"{count} image(s), expected {expected[name]} (the metadata lists "
                    f"{classes} classes)"
                )
        scores = arrays.get(info.unknown_output) if info.unknown_output else None
        if scores is not None and scores.size != count:
            raise ModelError(
                f"{self.model_path}: output '{info.unknown_output}' has shape "
                f"{scores.shape} for {count} image(s), expected one score per image"
            )

    def _check_test_run(self) -> None:
        """Run the model once on a blank batch and check the output is (N, C) probabilities.

        Catches what the declared shapes cannot (a symbolic class dimension, logits instead
        of softmax) at load time, and warms up ONNX Runtime so the first photo is not slow.
        Two images when the batch is dynamic: a graph that reshapes its batch to one row
        works on one.
        """
        height, width = self.info.input_size
        count = self.static_batch or 2
        # A model file can hold a loop of 2^62 turns: the load must end, with a reason.
        options = ort.RunOptions()
        timer = threading.Timer(TEST_RUN_SECONDS, setattr, (options, "terminate", True))
        timer.start()
        try:
            blank = np.zeros((count, height, width, 3), dtype=np.float32)
            names = self._output_names()
            arrays = dict(zip(names, self._run(blank, names, options), strict=True))
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind error types
            if isinstance(exc, ModelError) and not isinstance(exc, _RunFailed):
                raise  # its outputs misshapen: said as such
            late = f" (stopped: it ran over {TEST_RUN_SECONDS:g} s)" if options.terminate else ""
            raise ModelError(
                f"{self.model_path} failed a test run on a blank image{late}: "
                f"{_first_line(exc.__cause__ or exc)}"
            ) from exc
        finally:
            timer.cancel()
        info = self.info
        output = arrays[info.probabilities_output]
        problems = [problem for problem in map(output_problem, output) if problem]
        if problems:
            raise ModelError(
                f"{self.model_path}: output '{info.probabilities_output}' is not a "
                f"probability distribution on a blank image ({problems[0]}); export the "
                "model with its softmax"
            )
        if info.unknown_output is not None and not np.isfinite(arrays[info.unknown_output]).all():
            # NaN > threshold is False: every item would pass for a known one, in silence.
            raise ModelError(
                f"{self.model_path}: output '{info.unknown_output}' is not a number on a "
                "blank image: it cannot tell unknown items"
            )
        if info.cam_output is not None:
            cam = arrays[info.cam_output]
            if cam.ndim != 4 or cam.shape[0] != count or cam.shape[3] != info.num_classes:
                raise ModelError(
                    f"{self.model_path}: output '{info.cam_output}' has shape {cam.shape} "
                    f"for {count} image(s), expected [batch, h, w, {info.num_classes}]"
                )
            _check_cam_grid([int(cam.shape[1]), int(cam.shape[2])], self.model_path)
            self.cam_grid = (int(cam.shape[1]), int(cam.shape[2]))


class _RunFailed(ModelError):
    """ONNX Runtime itself failed on a batch (not its outputs found misshapen after)."""


def _existing_model_file(model_path: str | os.PathLike[str] | None) -> Path:
    if model_path is None:
        path = default_model_path()
        if not path.is_file():
            raise ModelError(f"no model shipped at {path}, pass --model PATH to an .onnx model")
        return path
    path = Path(model_path)
    try:
        path.stat()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except OSError as exc:  # a loop of links, a folder it may not enter: not "not found"
        raise ModelError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    return path


def _sha256_of_model(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path}: {exc.strerror or exc}") from exc


def _check_is_the_shipped_model(path: Path, sha256: str) -> None:
    if sha256 != SHIPPED_MODEL_SHA256:
        raise ModelError(
            f"the shipped model {path} is damaged or not the one this version ships (SHA-256 "
            f"{sha256[:12]}..., expected {SHIPPED_MODEL_SHA256[:12]}...): reinstall "
            "ewaste-sorter, or pass --model PATH"
        )


def _open_session(path: Path, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One image classifier graph has no parallel branches worth running concurrently.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default
    # Decoder threads need the CPU between inference calls; spinning ORT workers would
    # burn those cycles on a small station PC.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: no optimiser chatter on the console
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=[PROVIDER])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind error types
        raise ModelError(f"{path} is not a usable ONNX model: {_first_line(exc)}") from exc


def _check_graph_matches_metadata(
    session: ort.InferenceSession, info: ModelInfo, path: Path
) -> int | None:
    """Check the graph's real input/output against the metadata; return a static batch size."""
    inputs = session.get_inputs()
    names = [node.name for node in inputs]
    if len(inputs) != 1 or names[0] != info.input_name:
        raise ModelError(
            f"{path}: the metadata names one input '{info.input_name}', the graph has {names}"
        )
    node = inputs[0]
    if node.type != "tensor(float)":
        raise ModelError(f"{path}: input '{node.name}' is {node.type}, the app feeds float32")
    height, width = info.input_size
    shape = list(node.shape)
    if len(shape) != 4 or not _dims_match(shape[1:], [height, width, 3]):
        raise ModelError(
            f"{path}: input '{node.name}' has shape {shape}, expected "
            f"[batch, {height}, {width}, 3] (NHWC, as the metadata says)"
        )
    output = _named_output(session, info.probabilities_output, path)
    out_shape = list(output.shape)
    if len(out_shape) != 2 or not _dims_match(out_shape[1:], [info.num_classes]):
        raise ModelError(
            f"{path}: output '{output.name}' has shape {out_shape}, expected "
            f"[batch, {info.num_classes}] for the {info.num_classes} classes in the metadata"
        )
    if info.cam_output is not None:
        cam = _named_output(session, info.cam_output, path)
        cam_shape = list(cam.shape)
        if len(cam_shape) != 4 or not _dims_match(cam_shape[3:], [info.num_classes]):
            raise ModelError(
                f"{path}: output '{cam.name}' has shape {cam_shape}, expected "
                f"[batch, h, w, {info.num_classes}] (a class activation map)"
            )
        _check_cam_grid(cam_shape[1:3], path)
    batch = shape[0]
    if isinstance(batch, int) and batch > MAX_STATIC_BATCH:
        raise ModelError(
            f"{path}: the graph has a fixed batch of {batch} images; this app runs at most "
            f"{MAX_STATIC_BATCH} at a time (export with a dynamic batch)"
        )
    return batch if isinstance(batch, int) and batch > 0 else None


def _check_cam_grid(grid: list[object], path: Path) -> None:
    """Refuse activation maps finer than MAX_CAM_SIDE (the app keeps one per row), or
    with no cell at all."""
    if any(isinstance(side, int) and side < 1 for side in grid):
        raise ModelError(f"{path}: its activation map grid {grid[0]}x{grid[1]} has no cells")
    if any(isinstance(side, int) and side > MAX_CAM_SIDE for side in grid):
        raise ModelError(
            f"{path}: its activation map grid {grid[0]}x{grid[1]} is beyond this app's "
            f"{MAX_CAM_SIDE}x{MAX_CAM_SIDE} (a map is meant to be a coarse grid)"
        )


def _named_output(session: ort.InferenceSession, name: str, path: Path) -> ort.NodeArg:
    outputs = {output.name: output for output in session.get_outputs()}
    if name not in outputs:
        raise ModelError(
            f"{path}: the metadata names output '{name}', the graph has {sorted(outputs)}"
        )
    return outputs[name]


def _dims_match(actual: list[object], expected: list[int]) -> bool:
    # Symbolic (str) or unknown (None) dimensions are checked by the test run instead.
    return all(not isinstance(a, int) or a == e for a, e in zip(actual, expected, strict=True))


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without what ONNX Runtime puts before its own words (its
    error code, "Load model from PATH failed:", the C++ source line and function): in the
    app's status bar those hid the reason ("... is till opset 28")."""
    text = str(exc).strip() or type(exc).__name__
    return _ORT_PREAMBLE.sub("", text.splitlines()[0]) or text.splitlines()[0]


_ORT_PREAMBLE = re.compile(
    r"\[ONNXRuntimeError\] : \d+ : \w+ : "  # [ONNXRuntimeError] : 1 : FAIL :
    r"|Load model from .*? failed:"
    r"|\S+\.(?:h|cc|cpp):\d+ .*?\) (?=[A-Z])"  # model.cc:256 onnxruntime::Model::Model(...)
)

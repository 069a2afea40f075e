"""A model file is untrusted input: generated hostile models are refused with one clear
ModelError at load, or turned into error rows (and a stopped run) when they misbehave only
on real photos. Nothing here may end in a traceback, a MemoryError or an "ok" garbage row."""

from __future__ import annotations

import csv
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from desktop.core.csv_export import results_header
from desktop.core.engine import Engine
from desktop.core.model_info import ModelError, encode_metadata
from desktop.core.prediction_loop import (
    MIN_ROWS_JUDGED,
    NOT_PROBABILITIES_REASON,
    ModelOutputError,
)
from fixtures_images import write_solid
from tiny_model import CLASS_NAMES, PROTOTYPE_COLOURS, build_tiny_model, tiny_metadata

CONSOLE_SCRIPT = Path(sys.executable).with_name("ewaste-classify")


def with_raw_metadata(path: Path, **raw: str) -> Path:
    """Replace metadata values of an ONNX file by raw (possibly hostile) JSON text."""
    model = onnx.load(str(path))
    props = {entry.key: entry.value for entry in model.metadata_props}
    props.update(raw)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    colours = list(PROTOTYPE_COLOURS.values())
    return [write_solid(folder / f"photo-{i}.png", colours[i % len(colours)]) for i in range(count)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, timeout=120)


# -- refused at load, with one sentence ----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"metrics": "[" * 100_000 + "]" * 100_000}, "not valid JSON"),
        ({"metrics": "7" * 5_000}, "not valid JSON"),
        ({"input": '{"name": "image", "size": [Infinity, 32], "layout": "NHWC"}'}, "malformed"),
        ({"input": '{"name": "image", "size": [8000, 8000], "layout": "NHWC"}'}, "1024x1024"),
        ({"class_names": '["Battery", "Mouse\\u0000"]'}, "control characters"),
        # Half a character: no folder of a sort could be named after it.
        ({"class_names": '["Battery", "Mouse\\ud800"]'}, "broken text"),
    ],
)
def test_hostile_metadata_is_refused_with_exit_2_and_one_line(
    tmp_path: Path, raw: dict[str, str], match: str
) -> None:
    model = with_raw_metadata(build_tiny_model(tmp_path / "hostile.onnx"), **raw)
    with pytest.raises(ModelError, match=match):
        Engine(model, threads=1)
    [photo] = photos(tmp_path / "in", 1)
    result = run_cli(str(photo), "--csv", str(tmp_path / "r.csv"), "--model", str(model))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


def test_a_model_of_sigmoid_scores_is_refused_though_each_lies_in_0_to_1(
    tmp_path: Path,
) -> None:
    # One sigmoid per class (a multi-label export): every value is in [0, 1], yet they do
    # not sum to 1, so a "confidence" would not be the chance the item is of that class.
    model = build_tiny_model(tmp_path / "sigmoid.onnx", softmax=False)
    graph = onnx.load(str(model))
    [head] = [node for node in graph.graph.node if node.op_type == "Identity"]
    head.op_type = "Sigmoid"
    onnx.save(graph, str(model))
    with pytest.raises(ModelError, match=r"not a probability distribution .*sum 0\.5"):
        Engine(model, threads=1)
    [photo] = photos(tmp_path / "in", 1)
    result = run_cli(str(photo), "--csv", str(tmp_path / "r.csv"), "--model", str(model))
    assert result.returncode == 2 and "export the model with its softmax" in result.stderr
    assert not (tmp_path / "r.csv").exists()


def test_a_model_with_100000_classes_is_refused_before_it_runs(tmp_path: Path) -> None:
    names = [f"class {i}" for i in range(100_000)]
    model = build_tiny_model(tmp_path / "wide.onnx", metadata=tiny_metadata(class_names=names))
    with pytest.raises(ModelError, match="100000 classes; this app handles 2 to 1000"):
        Engine(model, threads=1)


def test_a_fixed_batch_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "batch.onnx", batch=100_000)
    with pytest.raises(ModelError, match="fixed batch of 100000 images"):
        Engine(model, threads=1)


def test_an_activation_map_grid_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    model = build_tiny_model(
        tmp_path / "fine.onnx", input_size=(256, 256), cam=True, cam_grid=(128, 128)
    )
    with pytest.raises(ModelError, match="grid 128x128 is beyond this app's 64x64"):
        Engine(model, threads=1)


# -- misbehaving only on real photos ---------------------------------------------------------


def test_outputs_that_are_not_probabilities_become_error_rows(tmp_path: Path) -> None:
    engine = Engine(build_tiny_model(tmp_path / "g.onnx", scaled_by_brightness=True), threads=1)
    files = photos(tmp_path / "in", 3)  # fewer than MIN_ROWS_JUDGED: rows, no stop
    black = write_solid(tmp_path / "in" / "black.png", (0, 0, 0))  # the one sane output

    rows = [row for batch in engine.classify([*files, black]) for row in batch]

    bright = [row for row in rows if row.path != str(black)]
    assert all(not row.ok and row.error.startswith(NOT_PROBABILITIES_REASON) for row in bright)
    assert "sum" in bright[0].error and bright[0].cam is None
    assert rows[-1].ok and float(rows[-1].probabilities.max()) <= 1.0


def test_a_model_failing_on_most_photos_stops_the_run_after_keeping_its_rows(
    tmp_path: Path,
) -> None:
    engine = Engine(build_tiny_model(tmp_path / "g.onnx", scaled_by_brightness=True), threads=1)
    files = photos(tmp_path / "in", 3 * MIN_ROWS_JUDGED)
    seen = []
    expected = rf"not probabilities for \d+ of {MIN_ROWS_JUDGED} photos"
    with pytest.raises(ModelOutputError, match=expected):
        for batch in engine.classify(files, batch_size=MIN_ROWS_JUDGED):
            seen.extend(batch)
    assert len(seen) == MIN_ROWS_JUDGED  # the batch that decided it was handed out first


def test_the_command_writes_the_finished_rows_and_exits_3_on_a_broken_model(
    tmp_path: Path,
) -> None:
    model = build_tiny_model(tmp_path / "g.onnx", scaled_by_brightness=True)
    folder = tmp_path / "in"
    photos(folder, 2 * MIN_ROWS_JUDGED)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "r.csv"
    earlier = ",".join(results_header(CLASS_NAMES)) + "\n"  # an earlier, complete run
    out.write_text(earlier)

    result = run_cli(str(folder), "--csv", str(out), "--model", str(model), "--batch", "4")

    assert result.returncode == 3, result.stderr
    assert "the run failed after" in result.stderr and "not a usable classifier" in result.stderr
    assert "Traceback" not in result.stderr
    assert out.read_text() == earlier  # never replaced by a partial run
    with open(tmp_path / "r.partial.csv", newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= MIN_ROWS_JUDGED and {row["status"] for row in rows} == {"error"}
    reasons = [row["error"] for row in rows]
    assert any(reason.startswith(NOT_PROBABILITIES_REASON) for reason in reasons)
    assert any(row["path"].endswith("broken.jpg") for row in rows)  # decode errors kept too
    assert np.isfinite([float(row["confidence"] or 0) for row in rows]).all()


def test_an_onnx_runtime_failure_midway_keeps_the_finished_rows(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "crash.onnx", crashes_when_bright=True)
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(4):  # two dark batches of 2 classify; the bright batch crashes
        write_solid(folder / f"a-dark-{index}.png", (0, 0, 0))
    write_solid(folder / "b-bright.png", (255, 255, 255))
    out = tmp_path / "r.csv"

    result = run_cli(str(folder), "--csv", str(out), "--model", str(model), "--batch", "2")

    assert result.returncode == 3, result.stderr
    assert "the run failed after 4 images: ONNX Runtime failed on a batch of 1" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    with open(tmp_path / "r.partial.csv", newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(row["path"]).name for row in rows] == [f"a-dark-{i}.png" for i in range(4)]
    assert {row["status"] for row in rows} == {"ok"}


def test_the_headless_path_keeps_no_activation_maps(tmp_path: Path) -> None:
    engine = Engine(build_tiny_model(tmp_path / "cam.onnx", cam=True), threads=1)
    files = photos(tmp_path / "in", 3)
    shown = [row for batch in engine.classify(files) for row in batch]
    headless = [row for batch in engine.classify(files, with_cam=False) for row in batch]
    assert all(row.cam is not None for row in shown)
    assert all(row.ok and row.cam is None for row in headless)
    for with_map, without in zip(shown, headless, strict=True):
        np.testing.assert_allclose(with_map.probabilities, without.probabilities, atol=1e-6)


def with_an_endless_loop(path: Path) -> Path:
    """The tiny model plus 0 * (a Loop of 2^62 turns) added to its probabilities: a few
    hundred bytes more, the same answers, and a run that never ends. The trip count comes
    from the input, so ONNX Runtime cannot fold the loop away."""
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    softmax = next(node for node in graph.node if node.op_type == "Softmax")
    softmax.output[0] = "softmax_out"
    scalar = helper.make_tensor_value_info
    body = helper.make_graph(
        [helper.make_node("Identity", ["go_in"], ["go_out"]),
         helper.make_node("Add", ["sum_in", "one"], ["sum_out"])],
        "spin",
        [scalar("turn", TensorProto.INT64, []), scalar("go_in", TensorProto.BOOL, []),
         scalar("sum_in", TensorProto.FLOAT, [])],
        [scalar("go_out", TensorProto.BOOL, []), scalar("sum_out", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")],
    )  # fmt: skip
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(2**62, np.int64), "turns"),
            numpy_helper.from_array(np.array(True), "go"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("ReduceMin", ["image"], ["darkest"], keepdims=0),
            helper.make_node("Mul", ["darkest", "zero"], ["nothing"]),
            helper.make_node("Cast", ["nothing"], ["nothing_int"], to=TensorProto.INT64),
            helper.make_node("Add", ["turns", "nothing_int"], ["trip_count"]),
            helper.make_node("Loop", ["trip_count", "go", "zero"], ["spun"], body=body),
            helper.make_node("Mul", ["spun", "zero"], ["still_nothing"]),
            helper.make_node("Add", ["softmax_out", "still_nothing"], ["probabilities"]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_a_model_that_never_finishes_its_test_run_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("desktop.core.engine.TEST_RUN_SECONDS", 1.0)
    path = with_an_endless_loop(build_tiny_model(tmp_path / "spins.onnx"))
    assert onnx.load(str(path)).graph.node[-3].op_type == "Loop"
    with pytest.raises(ModelError, match=r"on a blank image \(stopped: it ran over 1 s\)"):
        Engine(path, threads=1)  # before: loading for ever, the window or command stuck


# -- outputs misshapen on real batches -------------------------------------------------------


def with_probabilities_after(path: Path, nodes_for) -> Path:
    """The tiny model with its softmax renamed "softmax_out" and `nodes_for(helper)`'s
    nodes (and initializers) turning it into the "probabilities" output."""
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    next(node for node in graph.node if node.op_type == "Softmax").output[0] = "softmax_out"
    nodes, initializers = nodes_for(helper)
    graph.initializer.extend(initializers)
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def one_row_for_the_batch(helper):
    """The classic export bug, "view(1, -1)": right for one image, one long row for more."""
    from onnx import numpy_helper

    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "one_row")
    return [helper.make_node("Reshape", ["softmax_out", "one_row"], ["probabilities"])], [shape]


def a_column_more_when_bright(helper):
    """A probability distribution still, but 11 wide when the photo is bright: a zero
    column padded on by a width computed from the pixels (right for the blank test run)."""
    from onnx import TensorProto, numpy_helper

    constants = [
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array([0, 0, 0, 1], np.int64), "pad_right"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["unit_rgb"], ["brightness"], keepdims=0),
        helper.make_node("Greater", ["brightness", "half"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["bright_int"], to=TensorProto.INT64),
        helper.make_node("Mul", ["pad_right", "bright_int"], ["pads"]),
        helper.make_node("Pad", ["softmax_out", "pads"], ["probabilities"]),
    ]
    return nodes, constants


def test_a_model_reshaping_its_batch_to_one_row_is_refused_at_load(tmp_path: Path) -> None:
    path = with_probabilities_after(build_tiny_model(tmp_path / "view.onnx"), one_row_for_the_batch)
    with pytest.raises(ModelError, match=r"'probabilities' has shape \(1, 20\) for 2 image"):
        Engine(path, threads=1)  # before: loaded, then an IndexError on every batch of two


def test_outputs_misshapen_on_a_real_batch_stop_the_run_with_a_model_error(tmp_path) -> None:
    path = with_probabilities_after(
        build_tiny_model(tmp_path / "w.onnx"), a_column_more_when_bright
    )
    engine = Engine(path, threads=1)
    dark = photos(tmp_path / "dark", 1)
    assert [row.ok for batch in engine.classify(dark) for row in batch] == [True]
    bright = write_solid(tmp_path / "white.png", (255, 255, 255))
    with pytest.raises(ModelError, match=r"shape \(1, 11\) for 1 image\(s\), expected \(1, 10\)"):
        list(engine.classify([bright]))  # before: a row of 11 for 10 names (the app crashed)
    result = run_cli(str(bright), "--csv", str(tmp_path / "r.csv"), "--model", str(path))
    assert result.returncode == 3 and "expected (1, 10)" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_activation_map_grid_with_no_cells_is_refused(tmp_path: Path) -> None:
    from onnx import helper, numpy_helper

    path = build_tiny_model(tmp_path / "cam.onnx", cam=True)
    model = onnx.load(str(path))
    cam = next(node for node in model.graph.node if "cam" in node.output)
    cam.output[0] = "full_cam"
    model.graph.initializer.extend(
        numpy_helper.from_array(np.array([value], np.int64), name)
        for name, value in (("start", 0), ("end", 0), ("axis", 1))
    )
    model.graph.node.append(
        helper.make_node("Slice", ["full_cam", "start", "end", "axis"], ["cam"])
    )  # no rows left
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="grid 0x2 has no cells"):
        Engine(path, threads=1)  # before: loaded, then every run in the app failed


def test_a_non_finite_unknown_score_is_an_error_row_not_a_known_item() -> None:
    from desktop.core.prediction_loop import NON_FINITE_SCORE_REASON, Outputs, predictions_for

    confident = np.eye(len(CLASS_NAMES), dtype=np.float32)[[0, 1]]
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    scores = np.array([np.nan, 0.1], np.float32)

    def predict(batch: np.ndarray) -> Outputs:
        return Outputs(confident[: len(batch)], None, scores[: len(batch)])

    rows = predictions_for(["nan.jpg", "known.jpg"], list(images), predict, unknown_threshold=0.5)
    assert (rows[0].ok, rows[0].error) == (False, NON_FINITE_SCORE_REASON)  # before: "ok"
    assert rows[1].ok and rows[1].unknown is False


def test_a_model_whose_unknown_score_is_not_a_number_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    path = build_tiny_model(tmp_path / "open.onnx")
    model = onnx.load(str(path))
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "nan"))
    graph.node.extend(
        [
            helper.make_node("ReduceMean", ["unit_rgb"], ["mean"], axes=[1], keepdims=0),
            helper.make_node("Mul", ["mean", "nan"], ["unknown_score"]),
        ]
    )
    graph.output.extend(
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10]),
            helper.make_tensor_value_info("unknown_score", TensorProto.FLOAT, ["batch"]),
        ]
    )
    metadata = tiny_metadata()
    metadata["outputs"] |= {"logits": "logits", "unknown_score": "unknown_score"}
    metadata |= {"calibration": {"temperature": 1.0}, "open_set": {"threshold": 0.5}}
    del model.metadata_props[:]
    helper.set_model_props(model, encode_metadata(metadata))
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="'unknown_score' is not a number on a blank image"):
        Engine(path, threads=1)  # before: loaded, and no item was ever called unknown


def test_a_model_too_new_for_onnx_runtime_is_refused_in_its_own_words(tmp_path: Path) -> None:
    model = onnx.load(str(build_tiny_model(tmp_path / "future.onnx")))
    model.ir_version = 99
    onnx.save(model, str(tmp_path / "future.onnx"))
    with pytest.raises(ModelError) as refused:
        Engine(tmp_path / "future.onnx", threads=1)
    # Before: ONNX Runtime's error code, its C++ source line and a function signature came
    # first, and the app's status bar showed nothing else.
    assert (
        str(refused.value)
        == (
            f"{tmp_path / 'future.onnx'} is not a usable ONNX model: Unsupported model IR "
            "version: 99, max supported IR version: "
        )
        + str(refused.value).rsplit(" ", 1)[-1]
    )


def test_a_loop_of_links_named_as_the_model_is_said_as_such(tmp_path: Path) -> None:
    loop = tmp_path / "model.onnx"
    loop.symlink_to(tmp_path / "other.onnx")
    (tmp_path / "other.onnx").symlink_to(loop)
    with pytest.raises(ModelError) as refused:
        Engine(loop, threads=1)
    said = f"cannot read the model file {loop}: {os.strerror(errno.ELOOP)}"
    assert str(refused.value) == said  # before: "model file not found"

"""Calibration and the "unknown" status: the graph's score against a NumPy reference, the
fitted model through the app's engine and the CSV, and a model without them still loading."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from converter.errors import ConvertError
from converter.model_files import write_model
from converter.open_set import (
    centre_unknown_score,
    class_centres,
    class_radii,
    fit_open_set,
    head_tensors,
    knn_unknown_score,
    normalised,
    with_open_set,
    without_open_set,
)
from desktop.core.cli import main as classify_main
from desktop.core.engine import Engine
from desktop.core.model_info import ModelError, decode_metadata, encode_metadata, parse_model_info
from desktop.core.results import STATUS_ERROR, STATUS_UNKNOWN, Prediction, status_of
from fixtures_images import write_solid
from synthetic_dataset import make_dataset
from tiny_model import CLASS_NAMES, PROTOTYPE_COLOURS, build_tiny_model, expected_probabilities
from trainer import calibration
from trainer.dataset import load_dataset


def mean_colours(paths: list[Path]) -> np.ndarray:
    """What the tiny model pools: each solid image's colour in 0..1 (its "features")."""
    from PIL import Image

    return np.stack(
        [np.asarray(Image.open(p).convert("RGB"), np.float64).mean((0, 1)) / 255 for p in paths]
    )


def test_the_head_is_found_through_the_graph_structure(tmp_path: Path) -> None:
    model = onnx.load(str(build_tiny_model(tmp_path / "tiny.onnx")))
    head = head_tensors(model.graph)
    assert (head.logits, head.features) == ("logits", "unit_rgb")


def test_the_graph_score_matches_the_numpy_reference(tmp_path: Path) -> None:
    model = onnx.load(str(build_tiny_model(tmp_path / "tiny.onnx")))
    rng = np.random.default_rng(0)
    centres = normalised(rng.uniform(0.0, 1.0, (7, 3)))
    for case, radii in enumerate([np.ones(7), rng.uniform(0.05, 0.5, 7)]):
        built = with_open_set(model, centres, radii)
        values = parse_model_info({p.key: p.value for p in built.metadata_props}).metadata
        values["outputs"] |= {"logits": "logits", "unknown_score": "unknown_score"}
        values |= {"calibration": {"temperature": 0.5}, "open_set": {"threshold": 0.1}}
        del built.metadata_props[:]
        onnx.helper.set_model_props(built, encode_metadata(values))
        path = tmp_path / f"case{case}.onnx"
        onnx.save(built, str(path))
        engine = Engine(path, threads=1)
        # Textured, not flat (a flat frame is blank, unknown whatever its score), and at the
        # input size: the model pools exactly the pixels the reference averages.
        files = []
        for name, colour in PROTOTYPE_COLOURS.items():
            noisy = np.clip(np.add(colour, rng.normal(0, 25, (32, 32, 3))), 0, 255)
            Image.fromarray(noisy.astype(np.uint8)).save(tmp_path / f"{name}.png")
            files.append(tmp_path / f"{name}.png")

        rows = [row for batch in engine.classify(files) for row in batch]

        colours = mean_colours(files)
        expected = centre_unknown_score(colours, centres, radii)
        np.testing.assert_allclose([row.unknown_score for row in rows], expected, atol=1e-5)
        assert [row.unknown for row in rows] == list(expected > 0.1)
        # Calibrated: softmax(logits / T); log p differs from the logits by a constant per row.
        logits = np.log(expected_probabilities(colours * 255))
        reference = calibration.softmax(logits, 0.5)
        np.testing.assert_allclose(np.stack([r.probabilities for r in rows]), reference, atol=1e-4)


def test_a_fitted_model_round_trips_and_marks_far_items_unknown(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", CLASS_NAMES, {"train": 4, "val": 3, "test": 1}, 32)
    # A validation photo that is also a training photo says nothing about new photos.
    first_class = sorted((data / "train" / CLASS_NAMES[0]).iterdir())
    shutil.copy(first_class[0], data / "val" / CLASS_NAMES[0] / "copy-of-train.png")
    model = onnx.load(str(build_tiny_model(tmp_path / "tiny.onnx")))

    fit = fit_open_set(model, load_dataset(data), promised_rate=0.05)
    assert fit.summary["open_set"]["val_images_used"] < 3 * len(CLASS_NAMES) + 1
    # 30 or so validation images cannot promise 5 %: the fit says so and rejects none.
    assert not fit.summary["open_set"]["kept_promise"]
    out = tmp_path / "open-set.onnx"
    write_model(fit.model, out)

    engine = Engine(out, threads=1)
    assert engine.detects_unknown
    assert engine.info.temperature == pytest.approx(fit.temperature)
    assert engine.info.unknown_threshold == pytest.approx(fit.threshold)
    assert engine.info.metadata["open_set"]["chosen_on"] == "val"
    val = load_dataset(data).paths("val")
    rows = [row for batch in engine.classify(val) for row in batch]
    assert not any(row.unknown for row in rows)
    # An item unlike every class's training images: black pools to a zero feature vector,
    # as far (in cosine) from every class centre as anything can be.
    far = write_solid(tmp_path / "far.png", (0, 0, 0))
    out_csv = tmp_path / "r.csv"
    code = classify_main([str(far), *map(str, val), "--csv", str(out_csv), "--model", str(out)])
    assert code == 0
    with open(out_csv, newline="", encoding="utf-8-sig") as handle:
        statuses = {Path(row["path"]).name: row["status"] for row in csv.DictReader(handle)}
    assert statuses["far.png"] == STATUS_UNKNOWN


def test_a_fitted_model_is_fitted_again_from_scratch(tmp_path: Path) -> None:
    # After set-resize the features change: open-set on the fitted file replaces its
    # outputs, centres, temperature and threshold rather than stacking a second set.
    data = make_dataset(tmp_path / "data", CLASS_NAMES, {"train": 4, "val": 3, "test": 1}, 32)
    bare = onnx.load(str(build_tiny_model(tmp_path / "tiny.onnx")))
    first = fit_open_set(bare, load_dataset(data))
    assert without_open_set(first.model).graph == bare.graph
    again = fit_open_set(first.model, load_dataset(data))
    assert (again.temperature, again.threshold) == (first.temperature, first.threshold)
    assert again.model.graph == first.model.graph
    names = [output.name for output in again.model.graph.output]
    assert names.count("logits") == 1 and names.count("unknown_score") == 1
    meta = decode_metadata({p.key: p.value for p in again.model.metadata_props})
    assert meta["open_set"]["threshold"] == again.threshold


def test_two_open_set_runs_writing_one_file_at_once_both_finish(
    tiny_model_path: Path, tmp_path: Path, monkeypatch
) -> None:
    # Each run's temporary file is its own: a second run writing the same --out while the
    # first checks its file must neither take nor delete the first one's.
    import desktop.core.engine as engine_module

    model = onnx.load(str(tiny_model_path))
    out = tmp_path / "final.onnx"
    nested: list[Path] = []

    def engine_check(path):
        if not nested:  # the first run, checking its file: the second run writes meanwhile
            nested.append(path)
            write_model(model, out)
        return Engine(path)

    monkeypatch.setattr(engine_module, "Engine", engine_check)  # write_model imports it late
    write_model(model, out)
    assert len(nested) == 1
    assert Engine(out).class_names == tuple(CLASS_NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.onnx"]


def test_class_centres_and_radii_describe_each_class() -> None:
    features = np.array([[1.0, 0.0], [3.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    labels = np.array([0, 0, 1, 1])
    centres = class_centres(features, labels, 2)
    np.testing.assert_allclose(centres[0], [1.0, 0.0])
    radii = class_radii(features, labels, centres)
    assert radii[1] > 0.05  # spread out
    # Both images of class 0 lie on its centre: no spread to measure, so it gets the floor,
    # a tenth of the median class spread, rather than a division by zero.
    assert radii[0] == pytest.approx(0.1 * np.median([0.0, radii[1]]))
    # Distances in units of each class's radius; the nearest centre in those units wins.
    radii = np.array([1.0, radii[1]])
    distances = 1 - normalised(features[2:3]) @ centres.T
    score = centre_unknown_score(features[2:3], centres, radii)
    assert score[0] == pytest.approx(min(distances[0, 0] / 1.0, distances[0, 1] / radii[1]))


def test_knn_reference_is_one_minus_mean_top_k_similarity() -> None:
    bank = normalised(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    score = knn_unknown_score(np.array([[2.0, 0.0]]), bank, 2)
    assert score[0] == pytest.approx(1 - (1.0 + np.sqrt(0.5)) / 2)


def test_status_unknown_comes_before_review_and_after_error() -> None:
    confident = np.array([0.9, 0.1], dtype=np.float32)
    unsure = np.array([0.5, 0.5], dtype=np.float32)
    assert status_of(Prediction("a", confident, unknown_score=0.9, unknown=True)) == "unknown"
    assert status_of(Prediction("b", unsure, unknown_score=0.9, unknown=True)) == "unknown"
    assert status_of(Prediction("c", unsure, unknown_score=0.1, unknown=False)) == "review"
    assert status_of(Prediction("d", confident)) == "ok"  # a model without open set
    assert status_of(Prediction.failed("e", "empty file")) == STATUS_ERROR


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"calibration": {"temperature": 0}}, "temperature must be a number"),
        ({"calibration": {"temperature": "1"}}, "temperature must be a number"),
        ({"open_set": {"threshold": float("nan")}}, "threshold must be a number"),
        ({"calibration": {"temperature": 1.0}}, "need the outputs"),  # without a logits output
    ],
)
def test_malformed_calibration_metadata_is_refused(tmp_path: Path, changes, match) -> None:
    model = onnx.load(str(build_tiny_model(tmp_path / "tiny.onnx")))
    values = parse_model_info({p.key: p.value for p in model.metadata_props}).metadata
    with pytest.raises(ModelError, match=match):
        parse_model_info(encode_metadata({**values, **changes}))


def test_a_model_without_open_set_metadata_loads_with_no_unknown(tiny_model_path: Path) -> None:
    engine = Engine(tiny_model_path, threads=1)
    assert not engine.detects_unknown and engine.info.temperature is None
    [row] = next(engine.classify([tiny_model_path.parent / "missing.png"]))
    assert row.unknown is None


def test_the_reductions_follow_the_models_opset(tmp_path: Path) -> None:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from converter.open_set import _reduce_over_axis_1

    for opset in (17, 18):
        graph = helper.make_graph(
            [],
            "reduce",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        )
        graph.node.append(_reduce_over_axis_1(graph, opset)("ReduceL2", "x", "y", keepdims=0))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        x = np.array([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
        np.testing.assert_allclose(session.run(["y"], {"x": x})[0], [5.0, 1.0])


def test_a_model_with_a_fixed_batch_is_fitted_too(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", CLASS_NAMES, {"train": 3, "val": 3, "test": 1}, 32)
    model = onnx.load(str(build_tiny_model(tmp_path / "static.onnx", batch=4)))
    fit = fit_open_set(model, load_dataset(data), promised_rate=0.1)
    out = tmp_path / "static-open-set.onnx"
    write_model(fit.model, out)
    assert Engine(out, threads=1).static_batch == 4


def test_the_binomial_upper_bound_matches_its_closed_forms() -> None:
    # No failures in n trials: (1 - p)^n = 1 - confidence.
    assert calibration.binomial_upper_bound(0, 30, 0.95) == pytest.approx(1 - 0.05 ** (1 / 30))
    # n - 1 failures: 1 - p^n = 1 - confidence.
    assert calibration.binomial_upper_bound(9, 10, 0.95) == pytest.approx(0.95 ** (1 / 10))
    assert calibration.binomial_upper_bound(10, 10, 0.95) == 1.0
    # At a low confidence the bound lies under the observed rate: P(X <= 3 | 10, p) = 0.9.
    assert calibration.binomial_upper_bound(3, 10, 0.1) == pytest.approx(0.1876, abs=1e-4)
    # It grows with the failures and shrinks with the trials.
    assert calibration.binomial_upper_bound(5, 300, 0.95) < calibration.binomial_upper_bound(
        6, 300, 0.95
    )
    assert calibration.binomial_upper_bound(5, 600, 0.95) < calibration.binomial_upper_bound(
        5, 300, 0.95
    )


def test_the_threshold_keeps_the_promise_with_a_margin() -> None:
    scores = np.random.default_rng(3).permutation(np.arange(285.0))
    promise = calibration.threshold_for_promise(scores, 0.05, 0.95)
    # The most rejections whose upper bound still keeps the 5 %: 7 of 285 (2.5 %).
    assert promise.rejected == 7
    assert int((scores > promise.threshold).sum()) == 7
    assert promise.threshold == 277.5  # halfway between the last kept and the first rejected
    assert promise.upper_bound <= 0.05 < calibration.binomial_upper_bound(8, 285, 0.95)
    assert promise.kept_promise
    # Tied scores at the threshold are all kept, never rejected beyond the bound.
    tied = calibration.threshold_for_promise(np.repeat(np.arange(57.0), 5), 0.05, 0.95)
    assert tied.rejected == 5 and tied.upper_bound <= 0.05 and tied.threshold == 55.5
    # Too few images to promise anything: none rejected, and it says so.
    few = calibration.threshold_for_promise(np.arange(20.0), 0.05, 0.95)
    assert (few.rejected, few.kept_promise) == (0, False)
    assert 19.0 < few.threshold < 19.001  # just over the highest score
    with pytest.raises(ValueError, match="no known-item scores"):
        calibration.threshold_for_promise(np.array([]), 0.05)
    assert math.isclose(few.upper_bound, 1 - 0.05 ** (1 / 20))


def test_the_open_set_command_writes_the_model_and_warns_when_it_cannot_promise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from converter.cli import main as convert_main

    data = make_dataset(tmp_path / "data", CLASS_NAMES, {"train": 3, "val": 2, "test": 1}, 32)
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "with-open-set.onnx"

    code = convert_main(["open-set", str(tiny), "--data", str(data), "--out", str(out)])

    printed = capsys.readouterr()
    assert code == 0
    assert Engine(out, threads=1).detects_unknown
    assert "with 95 % confidence" in printed.out
    assert "too few to promise 5.0 %" in printed.err
    assert (
        convert_main(
            [
                "open-set",
                str(tiny),
                "--data",
                str(data),
                "--out",
                str(out),
                "--promised-rate",
                "0.7",
            ]
        )
        != 0
    )
    assert "--promised-rate must be between 0 and 0.5" in capsys.readouterr().err


def test_a_validation_split_of_training_copies_is_refused(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", CLASS_NAMES, {"train": 2, "val": 1, "test": 1}, 32)
    for name in CLASS_NAMES:  # every validation photo replaced by a training photo
        val_photo = next((data / "val" / name).iterdir())
        shutil.copy(next((data / "train" / name).iterdir()), val_photo)
    model = onnx.load(str(build_tiny_model(tmp_path / "tiny.onnx")))
    with pytest.raises(ConvertError, match="duplicate in train"):
        fit_open_set(model, load_dataset(data))


def test_open_set_warns_when_the_temperature_ends_at_the_top_of_its_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model whose confident answers are all wrong (the folders name the next class):
    # the flattest probabilities fit best, and a shipped file would say little.
    from converter.cli import main as convert_main

    data = make_dataset(tmp_path / "data", CLASS_NAMES, {"train": 3, "val": 3, "test": 1}, 32)
    for split in ("train", "val"):
        folders = [data / split / name for name in CLASS_NAMES]
        for index, folder in enumerate(folders):
            folder.rename(folder.with_name(f"next-{index}"))
        for index in range(len(folders)):
            (data / split / f"next-{index}").rename(folders[(index + 1) % len(folders)])
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "with-open-set.onnx"
    assert convert_main(["open-set", str(tiny), "--data", str(data), "--out", str(out)]) == 0
    assert "the temperature ended at the top of its range" in capsys.readouterr().err

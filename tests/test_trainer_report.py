"""Metrics, report and evaluation: self-consistent numbers, and every artefact written."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from synthetic_dataset import make_dataset
from trainer import plots
from trainer.audit import run_audit
from trainer.dataset import load_dataset
from trainer.metrics import (
    classification_metrics,
    confusion_matrix,
    cross_entropy,
    history_summary,
    wilson_interval,
)
from trainer.report import fmt, interval, render_report

CLASSES = ("alpha", "beta", "gamma")
HISTORY = {
    "loss": [1.2, 0.8, 0.6],
    "accuracy": [0.4, 0.7, 0.8],
    "val_loss": [1.1, 0.9, 0.95],
    "val_accuracy": [0.5, 0.6, 0.55],
    "learning_rate": [1e-3, 1e-3, 5e-4],
}


def _random_case(n: int = 240, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), y_true] += 1.2  # better than chance, far from perfect
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, probabilities


# ---------------------------------------------------------------------------------------------
# Metrics


def test_metrics_on_a_hand_checked_case() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.8, 0.1, 0.1],
            [0.15, 0.8, 0.05],  # wrong, the true class runner-up
            [0.1, 0.8, 0.1],
            [0.05, 0.15, 0.8],  # wrong, the true class runner-up
            [0.1, 0.1, 0.8],
        ]
    )
    assert (probabilities.argmax(axis=1) == predicted).all()
    m = classification_metrics(y_true, probabilities, CLASSES)

    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["n"] == 6 and m["correct"] == 4 and m["accuracy"] == pytest.approx(4 / 6)
    alpha, beta, gamma = (m["per_class"][c] for c in CLASSES)
    assert (alpha["precision"], alpha["recall"]) == (1.0, pytest.approx(2 / 3))
    assert (beta["precision"], beta["recall"]) == (0.5, 0.5)
    assert (gamma["precision"], gamma["recall"]) == (0.5, 1.0)
    assert alpha["f1"] == pytest.approx(0.8)
    assert [alpha["support"], beta["support"], gamma["support"]] == [3, 2, 1]
    assert m["macro_avg"]["recall"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert m["loss"] == pytest.approx(-(4 * np.log(0.8) + 2 * np.log(0.15)) / 6)
    assert m["top2_accuracy"] == 1.0


def test_metrics_are_self_consistent() -> None:
    y_true, probabilities = _random_case()
    m = classification_metrics(y_true, probabilities, [f"c{k}" for k in range(5)])
    matrix = np.array(m["confusion_matrix"])

    assert matrix.sum() == m["n"] == len(y_true)
    assert m["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert m["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == y_true))
    assert [s["support"] for s in m["per_class"].values()] == matrix.sum(axis=1).tolist()
    for s in m["per_class"].values():
        p, r = s["precision"], s["recall"]
        assert s["f1"] == pytest.approx(2 * p * r / (p + r))  # harmonic mean
    # Weighted recall is accuracy by definition; both averages cover every image.
    assert m["weighted_avg"]["recall"] == pytest.approx(m["accuracy"])
    assert m["macro_avg"]["support"] == m["weighted_avg"]["support"] == m["n"]
    low, high = m["accuracy_ci95"]
    assert 0.0 <= low < m["accuracy"] < high <= 1.0
    assert 0.0 <= m["expected_calibration_error"] <= 1.0


def test_wilson_interval_known_values_and_edges() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # textbook example
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] > 0.0
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] < 1.0
    with pytest.raises(ValueError):
        wilson_interval(1, 0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_cross_entropy_clips_zero_probabilities() -> None:
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss = cross_entropy(probabilities, np.array([1, 1]))
    assert np.isfinite(loss) and loss == pytest.approx(-np.log(1e-7) / 2, rel=1e-6)


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        classification_metrics([0, 1], np.full((2, 2), 0.5), CLASSES)
    with pytest.raises(ValueError):
        classification_metrics([], np.zeros((0, 3)), CLASSES)
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def test_history_summary() -> None:
    summary = history_summary(HISTORY)
    assert summary["epochs"] == 3
    assert summary["best_val_accuracy"] == 0.6 and summary["best_val_accuracy_epoch"] == 2
    assert summary["best_val_loss"] == 0.9 and summary["best_val_loss_epoch"] == 2
    assert summary["final_accuracy"] == 0.8


# ---------------------------------------------------------------------------------------------
# Report


def _table_rows(report: str, heading: str) -> list[list[str]]:
    """The body rows of the first markdown table after `heading`."""
    rows: list[str] = []
    for line in report.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break  # the table ended
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in rows[2:]]


def _check_report_matches(report: str, m: dict) -> None:
    assert f"| accuracy | {fmt(m['accuracy'])} " in report
    assert f"| 95% CI (Wilson) | {interval(m['accuracy_ci95'])} |" in report
    assert f"| loss (cross-entropy) | {fmt(m['loss'])} |" in report
    per_class = {row[0]: row[1:] for row in _table_rows(report, "## Per-class")}
    for name, s in m["per_class"].items():
        assert per_class[name] == [
            fmt(s["precision"]),
            fmt(s["recall"]),
            fmt(s["f1"]),
            str(s["support"]),
        ]
    macro = m["macro_avg"]
    assert per_class["**macro avg**"] == [
        fmt(macro["precision"]),
        fmt(macro["recall"]),
        fmt(macro["f1"]),
        str(macro["support"]),
    ]
    matrix = [[int(c) for c in row[1:]] for row in _table_rows(report, "## Confusion matrix")]
    assert matrix == m["confusion_matrix"]
    if m.get("dedup") and m["dedup"]["accuracy"] is not None:
        [row] = _table_rows(report, "## Accuracy without duplicates")
        assert row[:4] == [
            str(m["dedup"]["n"]),
            str(m["dedup"]["correct"]),
            fmt(m["dedup"]["accuracy"]),
            interval(m["dedup"]["accuracy_ci95"]),
        ]


def test_report_figures_equal_the_metrics_dict() -> None:
    y_true, probabilities = _random_case(classes=3)
    metrics = {"test": classification_metrics(y_true, probabilities, CLASSES)}
    metrics["test"]["dedup"] = {
        "n": 200,
        "correct": 150,
        "accuracy": 0.75,
        "accuracy_ci95": list(wilson_interval(150, 200)),
        "loss": 0.7,
        "excluded": 40,
        "hash_threshold": 44,
    }
    metrics["training"] = history_summary(HISTORY)
    report = render_report(metrics, "test", run_config={"epochs": 3, "model": {"name": "B0"}})

    _check_report_matches(report, metrics["test"])
    assert "| model.name | B0 |" in report
    assert "None: every image was classified correctly." in report  # no list given


def test_a_val_report_names_its_own_predictions_file_and_why_two_losses_differ() -> None:
    # Many mistakes (a random model), label smoothing in the recipe: the list ends by
    # naming the file that holds the rest, and the two losses of one model are explained.
    y_true, probabilities = _random_case(classes=3, n=300)
    metrics = {"val": classification_metrics(y_true, probabilities, CLASSES)}
    metrics["val"]["misclassified"] = [
        {"path": f"val/A/{i}.jpg", "true": "A", "predicted": "B", "confidence": 0.5}
        for i in range(25)
    ]
    metrics["training"] = history_summary(HISTORY)
    report = render_report(metrics, "val", run_config={"label_smoothing": 0.1})
    assert "... and 5 more (see predictions_val.csv)." in report
    assert "include its label smoothing (0.1): they are higher than the cross-entropy" in report
    plain = render_report(metrics, "val", run_config={"label_smoothing": 0.0})
    assert "label smoothing" not in plain


def test_report_without_audit_history_or_run_config_says_so() -> None:
    y_true, probabilities = _random_case(classes=3, n=30)
    report = render_report({"test": classification_metrics(y_true, probabilities, CLASSES)})
    assert "No dataset audit" in report
    assert "No training history" in report
    assert "No run.json" in report


def test_pictures_handle_empty_inputs(tmp_path: Path) -> None:
    assert plots.misclassified_grid([], tmp_path, tmp_path / "m.png", total=0).is_file()
    assert plots.training_curves({"loss": [1.0, 0.5]}, tmp_path / "t.png").is_file()
    empty = plots.image_pairs([], tmp_path, tmp_path / "p.png", title="t", empty_text="none")
    assert empty.is_file()


# ---------------------------------------------------------------------------------------------
# Evaluation with a real (tiny, untrained) Keras model


def _tiny_keras_model(classes: int = 3, size: int = 32):
    import keras  # the dev extra installs it: a broken install fails here, never skips

    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_dataset(
        tmp_path_factory.mktemp("eval") / "data", CLASSES, {"train": 4, "val": 2, "test": 4}, 40
    )
    # One leak (for the de-duplicated accuracy) and one unreadable test image (skipped).
    (root / "test/alpha/alpha_leak.jpg").write_bytes(
        (root / "train/alpha/alpha_0.jpg").read_bytes()
    )
    (root / "test/beta/broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return root


def test_evaluate_model_writes_every_artefact(tiny_data: Path, tmp_path: Path) -> None:
    from trainer.evaluate import evaluate_model
    from trainer.keras_predictor import KerasPredictor

    audit = run_audit(tiny_data, tmp_path / "audit", pictures=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"epochs": 3}
    (run_dir / "run.json").write_text(json.dumps({"config": config, "class_names": list(CLASSES)}))
    model = _tiny_keras_model()
    dataset = load_dataset(tiny_data)

    predict = KerasPredictor(model)
    metrics = evaluate_model(
        predict,
        dataset,
        run_dir=run_dir,
        image_size=(32, 32),
        audit=audit,
        history=HISTORY,
        split="test",
        tta_flip=True,
        batch_size=5,
    )

    for name in (
        "metrics.json",
        "report.md",
        "predictions.csv",
        "confusion_matrix.png",
        "training_curves.png",
        "misclassified.png",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    m = metrics["test"]
    assert m["n"] == 12 + 1  # 3 classes x 4, plus the leak; the broken file is skipped
    assert m["evaluation"]["skipped"][0]["path"] == "test/beta/broken.jpg"
    assert m["evaluation"]["image_size"] == [32, 32] and m["evaluation"]["tta_flip"] is True
    assert np.array(m["confusion_matrix"]).sum() == m["n"]
    assert m["dedup"]["excluded_paths"] == ["test/alpha/alpha_leak.jpg"]
    assert m["dedup"]["n"] == m["n"] - 1
    assert metrics["training"]["epochs"] == 3
    assert len(m["misclassified"]) == m["n"] - m["correct"]

    report = (run_dir / "report.md").read_text()
    _check_report_matches(report, m)
    assert "| config.epochs | 3 |" in report  # run.json was picked up
    assert re.search(r"!\[Confusion matrix\]\(confusion_matrix\.png\)", report)

    with (run_dir / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == m["n"]
    assert sum(int(r["correct"]) for r in rows) == m["correct"]
    assert {r["true"] for r in rows} <= set(CLASSES)

    # A second split lands next to the first without overwriting it.
    both = evaluate_model(
        predict, dataset, run_dir=run_dir, image_size=(32, 32), split="val", audit=audit
    )
    assert set(both) >= {"test", "val", "training"}
    assert (run_dir / "report_val.md").is_file() and (
        run_dir / "confusion_matrix_val.png"
    ).is_file()


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_evaluate_saved_model(tiny_data: Path, tmp_path: Path) -> None:
    from trainer.evaluate import EvaluationError, evaluate_saved_model

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _tiny_keras_model().save(model_dir / "model.keras")
    (model_dir / "run.json").write_text(json.dumps({"class_names": list(CLASSES)}))
    (model_dir / "history.json").write_text(json.dumps(HISTORY))

    out = tmp_path / "eval"
    metrics = evaluate_saved_model(
        model_dir / "model.keras", tiny_data, out, split="test", batch_size=8
    )
    assert metrics["test"]["n"] == 13 and "dedup" in metrics["test"]
    assert (out / "audit" / "audit.json").is_file()
    assert (out / "training_curves.png").is_file() and (out / "report.md").is_file()

    # The wrong number of classes is refused before predicting anything.
    _tiny_keras_model(classes=4).save(model_dir / "four.keras")
    (model_dir / "run.json").unlink()
    with pytest.raises(EvaluationError, match="4 classes"):
        evaluate_saved_model(model_dir / "four.keras", tiny_data, tmp_path / "e2", audit=False)
    # Class names in run.json that differ from the dataset's are refused too.
    (model_dir / "run.json").write_text(json.dumps({"class_names": ["x", "y", "z"]}))
    with pytest.raises(EvaluationError, match="trained on classes"):
        evaluate_saved_model(model_dir / "model.keras", tiny_data, tmp_path / "e3", audit=False)
    with pytest.raises(EvaluationError, match="not found"):
        evaluate_saved_model(model_dir / "missing.keras", tiny_data, tmp_path / "e4")
    cut = model_dir / "cut.keras"  # a copy cut short: Keras itself says "File not found"
    cut.write_bytes((model_dir / "model.keras").read_bytes()[:1000])
    with pytest.raises(EvaluationError, match="is not a whole Keras model file"):
        evaluate_saved_model(cut, tiny_data, tmp_path / "e5")


def test_evaluate_an_exported_onnx_file_through_the_app_engine(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    """The shipped file's own figures: `evaluate model.onnx` runs the station engine."""
    from PIL import Image

    from tiny_model import CLASS_NAMES, PROTOTYPE_COLOURS
    from trainer.evaluate import evaluate_saved_model

    data = tmp_path / "data"
    for split in ("train", "val", "test"):
        for index, name in enumerate(CLASS_NAMES):
            folder = data / split / name
            folder.mkdir(parents=True)
            colour = PROTOTYPE_COLOURS[name]
            Image.new("RGB", (40, 30), colour).save(folder / f"{index}.png")
            # A second, mislabelled image per class: the next class's colour.
            other = PROTOTYPE_COLOURS[CLASS_NAMES[(index + 1) % len(CLASS_NAMES)]]
            Image.new("RGB", (40, 30), other).save(folder / f"{index}-wrong.png")
    metrics = evaluate_saved_model(tiny_model_path, data, tmp_path / "out", split="val")
    val = metrics["val"]
    assert val["n"] == 20 and val["correct"] == 10 and val["accuracy"] == 0.5
    assert metrics["val"]["evaluation"]["resize"] == "stretch"  # from the file's metadata
    # The dataset, given as an absolute path, is named from the report's folder.
    assert metrics["val"]["evaluation"]["dataset_root"] == "../data"
    assert (tmp_path / "out" / "report_val.md").is_file()


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_evaluate_without_split_reads_val_never_test(
    tiny_data: Path, tmp_path: Path, capsys
) -> None:
    """Forgetting --split must not spend the test split, which is read once, to ship."""
    from trainer.cli import main

    model = tmp_path / "model.keras"
    _tiny_keras_model().save(model)
    # No run.json beside it: how its images were resized must be said, not guessed.
    assert main(["evaluate", str(model), "--data", str(tiny_data)]) == 2
    assert "pass --resize stretch or --resize letterbox" in capsys.readouterr().err
    assert not (tmp_path / "model-val-evaluation").exists()  # asked before the slow audit
    assert main(["evaluate", str(model), "--data", str(tiny_data), "--resize", "stretch"]) == 0
    metrics = json.loads((tmp_path / "model-val-evaluation" / "metrics.json").read_text())
    assert "val" in metrics and "test" not in metrics
    assert not (tmp_path / "model-test-evaluation").exists()


def test_predictions_csv_never_holds_a_formula(tmp_path) -> None:
    from trainer.evaluate import _write_predictions

    names = ['=HYPERLINK("http://example.invalid")', "Mouse"]
    path = tmp_path / "predictions.csv"
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]])
    _write_predictions(path, ["=1+1.jpg", "b.jpg"], np.array([0, 0]), probabilities, names)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert rows[0][:3] == ["'=1+1.jpg", "'" + names[0], "'" + names[0]]
    assert rows[1][:3] == ["b.jpg", "'" + names[0], "Mouse"]

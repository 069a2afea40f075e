"""`ewaste-train soup` on real (tiny) runs: the average is exact, recorded, and refused for
runs whose weights do not average into a model."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from converter.metadata import provenance
from synthetic_dataset import make_dataset
from trainer import weights as weights_module
from trainer.cli import main
from trainer.run_folder import read_run

pytestmark = pytest.mark.slow

CLASSES = ("Battery", "Mouse", "Washing Machine")
# The product's whole-network preset (Lite0, no weights file), tiny: a soup does not depend
# on the backbone, and Lite0 trains in about half the time of EfficientNetV2B0; eager steps
# skip each run's 20 s graph trace.
TINY_RECIPE = [
    "--preset", "lite0", "--image-size", "32", "--batch-size", "8", "--learning-rate", "0.001",
    "--epochs", "2", "--eager",
]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A head run and two fine-tunes from it that differ only in their seed."""
    root = tmp_path_factory.mktemp("soup")
    data = make_dataset(root / "data", classes=CLASSES, per_split={"train": 8, "val": 4, "test": 4},
                        size=40)  # fmt: skip
    common = ["--data", str(data), "--cache-dir", str(root / "cache"), "--report-split", "val"]
    folders = {name: root / name for name in ("head", "seed1", "seed2")}
    head = ["fit", "--out", str(folders["head"]), *common, *TINY_RECIPE, "--epochs", "1"]
    assert main(head) == 0
    init = ["--init-from", str(folders["head"] / "model.keras")]
    for seed in ("1", "2"):
        argv = ["fit", "--out", str(folders[f"seed{seed}"]), *common, *TINY_RECIPE, *init]
        assert main([*argv, "--seed", seed]) == 0
    return {"data": data, **folders}


def last_epoch_model(run_dir: Path) -> Path:
    state = json.loads((run_dir / "state.json").read_text())
    return run_dir / state["checkpoint"]


def test_soup_is_the_mean_of_the_last_epochs_and_says_so(runs, tmp_path, capsys):
    soup = tmp_path / "soup"
    assert main(["soup", str(runs["seed1"]), str(runs["seed2"]), "--out", str(soup)]) == 0
    assert "averaged 2 runs" in capsys.readouterr().out

    files = [last_epoch_model(runs["seed1"]), last_epoch_model(runs["seed2"])]
    assert files[0].name == "checkpoint-epoch002.keras"  # the last epoch, not the best one
    first, second = (keras.saving.load_model(f, compile=False).get_weights() for f in files)
    averaged = keras.saving.load_model(soup / "model.keras", compile=False).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    for a, b, mean in zip(first, second, averaged, strict=True):
        np.testing.assert_allclose(mean, (a.astype(np.float64) + b) / 2, rtol=1e-6, atol=1e-7)

    record = read_run(soup)
    assert record.config == read_run(runs["seed1"]).config
    assert record.init_from["sha256"] == weights_module.file_sha256(runs["head"] / "model.keras")
    assert record.soup["epoch"] == "final"
    assert [i["seed"] for i in record.soup["ingredients"]] == [1, 2]
    assert [i["path"] for i in record.soup["ingredients"]] == [
        "seed1/checkpoint-epoch002.keras",
        "seed2/checkpoint-epoch002.keras",
    ]  # no path of this machine: the record travels into the ONNX metadata
    assert [i["sha256"] for i in record.soup["ingredients"]] == [
        weights_module.file_sha256(f) for f in files
    ]
    metadata = provenance(record, len(CLASSES))
    assert metadata["training"]["soup"] == record.soup
    assert metadata["summary"].endswith("the weight average of 2 runs")

    # The soup is a model like any other run's: the evaluation reads it.
    assert main(["evaluate", str(soup / "model.keras"), "--data", str(runs["data"]),
                 "--split", "val"]) == 0  # fmt: skip
    metrics = json.loads((soup / "model-val-evaluation" / "metrics.json").read_text())
    assert 0.0 <= metrics["val"]["accuracy"] <= 1.0


def test_best_epochs_can_be_averaged_instead(runs, tmp_path):
    soup = tmp_path / "soup"
    argv = ["soup", str(runs["seed1"]), str(runs["seed2"]), "--out", str(soup), "--epoch", "best"]
    assert main(argv) == 0
    paths = [i["path"] for i in read_run(soup).soup["ingredients"]]
    assert paths == ["seed1/model.keras", "seed2/model.keras"]
    # A second soup into the same folder would replace this one without a word: refused.
    assert main(argv) == 2


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["seed1"], "at least two runs"),
        (["seed1", "seed1"], "the same model was given twice"),
        (["head", "seed1"], "in epochs, init_from;"),  # only the seed may differ
        (["seed1", "empty"], "not a training run folder"),
    ],
)
def test_runs_that_do_not_average_are_refused(runs, tmp_path, capsys, names, message):
    (tmp_path / "empty").mkdir()
    folders = [runs.get(name, tmp_path / name) for name in names]
    soup = tmp_path / "soup"
    assert main(["soup", *map(str, folders), "--out", str(soup)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ewaste-train: error:") and message in error
    assert not (soup / "model.keras").exists()


def test_a_run_from_another_start_is_refused(runs, tmp_path, capsys):
    """Same recipe, but begun from another head: the weights sit in another basin."""
    copy = tmp_path / "seed2_elsewhere"
    copy.mkdir()
    for item in runs["seed2"].iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    record = json.loads((copy / "run.json").read_text())
    record["init_from"]["sha256"] = "0" * 64
    (copy / "run.json").write_text(json.dumps(record))
    assert main(["soup", str(runs["seed1"]), str(copy), "--out", str(tmp_path / "soup")]) == 2
    assert "start --init-from the same model" in capsys.readouterr().err

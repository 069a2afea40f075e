"""`ewaste-convert set-resize`: a model's resize mode changed in its metadata, and the item
mode through the real engine: a small item on a table, an empty frame."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from converter.cli import main as convert_main
from converter.model_files import write_model
from converter.open_set import fit_open_set
from desktop.core.cli import main as classify_main
from desktop.core.engine import Engine
from desktop.core.model_info import decode_metadata
from desktop.core.preprocessing import RESIZE_MODES
from desktop.core.results import STATUS_UNKNOWN, status_of
from synthetic_dataset import make_dataset
from tiny_model import CLASS_NAMES, build_tiny_model
from trainer.dataset import load_dataset


def red_item_on_grey_table(path: Path) -> Path:
    """A 4:3 phone-like photo: a small red item (a Battery, for the tiny model) on a grey
    table (a Television): the whole photo's mean colour is the table's."""
    rng = np.random.default_rng(0)
    pixels = np.full((300, 400, 3), 128.0)
    pixels[120:170, 180:230] = (255, 0, 0)
    pixels += rng.normal(0, 3, pixels.shape)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def classified(model: Path, photo: Path, tmp_path: Path) -> dict[str, str]:
    out = tmp_path / f"{model.stem}.csv"
    assert classify_main([str(photo), "--model", str(model), "--csv", str(out)]) == 0
    with open(out, newline="", encoding="utf-8-sig") as handle:
        return next(csv.DictReader(handle))


def test_set_resize_item_makes_the_app_crop_the_photo_to_the_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    item = tmp_path / "item.onnx"

    assert convert_main(["set-resize", str(tiny), "--resize", "item", "--out", str(item)]) == 0
    printed = capsys.readouterr()
    assert "resize item" in printed.out and printed.err == ""  # no open-set to fit again

    photo = red_item_on_grey_table(tmp_path / "photo.jpg")
    assert classified(tiny, photo, tmp_path)["predicted_class"] == "Television"
    assert classified(item, photo, tmp_path)["predicted_class"] == "Battery"
    # Only the metadata changed, and the file says when and from what.
    before, after = onnx.load(str(tiny)), onnx.load(str(item))
    assert before.graph.SerializeToString() == after.graph.SerializeToString()
    meta = decode_metadata({p.key: p.value for p in after.metadata_props})
    assert meta["preprocessing"]["resize"] == RESIZE_MODES["item"]
    assert meta["class_names"] == list(CLASS_NAMES)
    (change,) = meta["export"]["resize_changes"]
    assert (change["from"], change["to"], change["by"]) == (
        "stretch",
        "item",
        "ewaste-convert set-resize",
    )
    assert Engine(item, threads=1).info.resize == "item"


def test_set_resize_refuses_what_it_cannot_do_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "out.onnx"
    cases = [
        (["--resize", "stretch", "--out", str(out)], "already resizes with stretch"),
        (["--resize", "item", "--out", str(tiny)], "give the changed model another name"),
    ]
    for options, message in cases:
        assert convert_main(["set-resize", str(tiny), *options]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    not_a_model = tmp_path / "notes.onnx"
    not_a_model.write_text("not a model")
    command = ["set-resize", str(not_a_model), "--resize", "item", "--out", str(out)]
    assert convert_main(command) == 2
    err = capsys.readouterr().err
    assert "is not an ONNX model" in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_set_resize_cannot_write_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only folder or a full disk (this test runs as root, which writes anywhere).
    tiny = build_tiny_model(tmp_path / "tiny.onnx")

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(onnx, "save", refuse)
    out = tmp_path / "item.onnx"
    assert convert_main(["set-resize", str(tiny), "--resize", "item", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out}: Permission denied" in err and err.count("\n") == 1
    assert not out.exists()


def test_set_resize_runs_without_tensorflow(tmp_path: Path) -> None:
    # It edits metadata: a machine with onnx but not the rest of the train extra can run it.
    tiny = build_tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "item.onnx"
    blocked = ("tensorflow", "keras", "tf2onnx", "matplotlib")
    command = ["set-resize", str(tiny), "--resize", "item", "--out", str(out)]
    script = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({blocked!r}))\n"
        "from converter.cli import main\n"
        f"sys.exit(main({command!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Engine(out, threads=1).info.resize == "item"


def test_an_empty_frame_is_an_unknown_item_in_item_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bare red surface with a camera's noise and vignette: no item stands out, so the
    # item mode feeds the surface's flat colour, which a model detecting unknown items
    # calls unknown (a blank frame); the whole photo is a confident Battery to the tiny
    # model, whose red training images it resembles.
    data = make_dataset(tmp_path / "data", CLASS_NAMES, {"train": 4, "val": 3, "test": 1}, 32)
    fit = fit_open_set(onnx.load(str(build_tiny_model(tmp_path / "tiny.onnx"))), load_dataset(data))
    # The synthetic images are exact colours, so the fitted threshold rejects any other
    # colour: a looser one lets the whole photo's red pass as the Battery it resembles.
    (open_set,) = [p for p in fit.model.metadata_props if p.key == "open_set"]
    open_set.value = json.dumps({**json.loads(open_set.value), "threshold": 0.5})
    stretch, item = tmp_path / "stretch.onnx", tmp_path / "item.onnx"
    write_model(fit.model, stretch)
    assert convert_main(["set-resize", str(stretch), "--resize", "item", "--out", str(item)]) == 0
    assert f"ewaste-convert open-set {item}" in capsys.readouterr().err  # fit them again
    rng = np.random.default_rng(2)
    surface = np.array([230.0, 20.0, 20.0])
    pixels = np.full((300, 400, 3), surface) * np.linspace(1.0, 0.92, 400)[None, :, None]
    pixels += rng.normal(0, 3, pixels.shape)
    frame = tmp_path / "empty.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(frame, quality=90)

    (row,) = next(iter(Engine(item, threads=1).classify([frame])))
    assert status_of(row) == STATUS_UNKNOWN
    (row,) = next(iter(Engine(stretch, threads=1).classify([frame])))
    assert status_of(row) != STATUS_UNKNOWN and CLASS_NAMES[row.top_index] == "Battery"

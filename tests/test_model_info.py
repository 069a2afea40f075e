"""The ONNX metadata contract as the app parses it."""

from __future__ import annotations

import pytest

from desktop.core.model_info import ModelError, encode_metadata, parse_model_info
from desktop.core.preprocessing import PREPROCESSING_CONTRACT

CLASSES = ["Battery", "Mouse", "Washing Machine"]


def _props(**changes):
    values = {
        "ewaste_format": 1,
        "class_names": CLASSES,
        "input": {"name": "image", "size": [128, 96], "layout": "NHWC", "dtype": "float32"},
        "outputs": {"probabilities": "probabilities", "cam": None},
        "preprocessing": PREPROCESSING_CONTRACT,
    }
    values.update(changes)
    return encode_metadata(values)


def test_valid_metadata_round_trips():
    info = parse_model_info(_props())
    assert info.class_names == tuple(CLASSES) and info.num_classes == 3
    assert info.input_size == (128, 96) and info.input_name == "image"
    assert info.probabilities_output == "probabilities" and info.cam_output is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("value_range", [0, 1]),
        ("resize", "bicubic"),
        ("color", "BGR"),
        ("layout", "NCHW"),
        # A model that never saw a phone photo turned upright, or 16-bit scans clipped.
        ("exif_orientation", "ignored"),
        ("high_bit_depth", "clipped"),
        ("decoder", "OpenCV"),
    ],
)
def test_a_model_trained_with_other_preprocessing_is_refused(key, value):
    declared = {**PREPROCESSING_CONTRACT, key: value}
    with pytest.raises(ModelError, match=f"trained with {key}"):
        parse_model_info(_props(preprocessing=declared))


def test_format_version_must_be_the_integer_one():
    with pytest.raises(ModelError, match="metadata format"):
        parse_model_info(_props(ewaste_format=True))


def test_missing_metadata_says_how_to_export():
    with pytest.raises(ModelError, match="ewaste-convert export"):
        parse_model_info({})


def test_duplicate_class_names_are_refused():
    with pytest.raises(ModelError, match="distinct"):
        parse_model_info(_props(class_names=["Battery", "Battery"]))


def _raw(**raw_values: str) -> dict[str, str]:
    """Metadata props with some values replaced by raw (possibly hostile) JSON text."""
    return {**_props(), **raw_values}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"metrics": "[" * 100_000 + "]" * 100_000}, "not valid JSON"),  # RecursionError
        ({"metrics": "1" * 5_000}, "not valid JSON"),  # int too long to convert
        (
            {"input": '{"name": "image", "size": [Infinity, 32], "layout": "NHWC"}'},
            "malformed input",  # OverflowError
        ),
        ({"ewaste_format": '"1"'}, r"format '1', this app reads format 1"),
    ],
)
def test_hostile_metadata_is_one_model_error(raw: dict[str, str], match: str) -> None:
    with pytest.raises(ModelError, match=match):
        parse_model_info(_raw(**raw))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"input": {"name": "image", "size": [8000, 8000], "layout": "NHWC"}}, "1024x1024"),
        ({"class_names": [f"c{i}" for i in range(100_000)]}, "100000 classes"),
        ({"class_names": ["Battery", "Mou\nse"]}, "control characters"),
        ({"class_names": ["Battery", "Mouse\x00"]}, "control characters"),
    ],
)
def test_a_model_asking_beyond_the_limits_is_refused(changes: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        parse_model_info(_props(**changes))

"""Decoding paths of the one preprocessing: phone MPO files, display decoding, odd failures."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

from desktop.core import preprocessing
from desktop.core.preprocessing import ImageLoadError, load_display_rgb, load_rgb


def _photo(width: int, height: int) -> Image.Image:
    """A smooth gradient photo, so decoding at a reduced scale changes the pixels."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def test_phone_mpo_photo_decodes_like_the_same_jpeg(tmp_path):
    photo = _photo(1600, 1200)
    jpeg, mpo = tmp_path / "photo.jpg", tmp_path / "phone.jpg"
    photo.save(jpeg, "JPEG", quality=90)
    photo.save(mpo, "MPO", quality=90, save_all=True, append_images=[photo.resize((160, 120))])
    with Image.open(mpo) as opened:
        assert opened.format == "MPO"
    # Same draft-mode decode (1/8 scale here) for both: identical model input.
    np.testing.assert_array_equal(load_rgb(mpo, (128, 128)), load_rgb(jpeg, (128, 128)))


def test_display_decode_keeps_aspect_and_bounds_the_size(tmp_path):
    path = tmp_path / "wide.jpg"
    _photo(1200, 600).save(path, quality=90)
    shown = load_display_rgb(path, max_side=300)
    assert shown.shape == (150, 300, 3) and shown.dtype == np.uint8


def test_display_decode_shows_16_bit_grey_as_the_model_sees_it(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((40, 60), 32768, dtype=np.uint16)).save(path)
    shown = load_display_rgb(path, max_side=60)
    model_view = load_rgb(path, (40, 60))
    assert abs(int(shown.mean()) - 128) <= 1  # mid grey, not clipped to white
    np.testing.assert_array_equal(shown, model_view)


def test_display_decode_applies_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    image = _photo(80, 40)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    image.save(path, exif=exif, quality=95)
    assert load_display_rgb(path, max_side=100).shape == (80, 40, 3)


def test_any_decoder_failure_becomes_a_per_file_error(tmp_path, monkeypatch):
    path = tmp_path / "odd.jpg"
    _photo(32, 32).save(path)

    def broken_exif(image, **_options):
        raise KeyError("malformed EXIF block")

    monkeypatch.setattr(ImageOps, "exif_transpose", broken_exif)
    with pytest.raises(ImageLoadError) as caught:
        load_rgb(path, (16, 16))
    assert "cannot decode image" in caught.value.reason and "KeyError" in caught.value.reason


def test_damaged_metadata_decodes_without_a_warning_in_the_log(tmp_path):
    # Pillow warned "Truncated File Read" (or "Corrupt EXIF data") once per such photo, in
    # the commands' and the web page's logs, naming no file.
    ifd = struct.pack(">H", 1) + struct.pack(">HHII", 0x010F, 2, 100, 0x2000) + bytes(4)
    exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + ifd  # Make: 100 bytes past the end
    path = tmp_path / "damaged-exif.jpg"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path, "JPEG", exif=exif)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = load_rgb(path, (32, 32))
    assert pixels.shape == (32, 32, 3) and [str(w.message) for w in caught] == []


def test_contract_states_the_jpeg_draft_decoding():
    assert "jpeg_draft" in preprocessing.PREPROCESSING_CONTRACT


def stripes(first, second, dtype) -> np.ndarray:
    """6000x4200 (25.2 MP, over the size where shrinking starts) of 1-pixel columns."""
    columns = np.array([first, second] * 3_000, dtype=dtype)
    return np.broadcast_to(columns[None, :, ...], (4_200, *columns.shape)).copy()


@pytest.mark.parametrize(
    "mode, first, second, seen",
    [
        ("I;16", 0, 65_535, (128, 128, 128)),  # scaled, not clipped
        ("F", 0.0, 200.0, (100, 100, 100)),
        ("RGBA", (255, 0, 0, 255), (0, 0, 255, 255), (128, 0, 128)),
        ("L", 0, 200, (228, 228, 228)),  # 0 is its transparent colour: white
    ],
)
def test_a_huge_image_is_shrunk_in_its_own_mode_to_what_it_shows(
    tmp_path, mode, first, second, seen
) -> None:
    # Converted at full size, a 16-bit or transparent PNG of 100 MP took gigabytes; shrunk
    # first it must still average what the eye sees (not palette indices, not one column
    # of two, not a transparent colour key that no averaged pixel matches any more).
    dtype = {"I;16": np.uint16, "F": np.float32}.get(mode, np.uint8)
    big = Image.fromarray(stripes(first, second, dtype))  # Pillow 13 takes no mode here
    assert big.mode == mode  # the mode comes from the array's type and shape
    path = tmp_path / ("big.png" if mode == "L" else "big.tif")
    big.save(path, **({"transparency": 0} if mode == "L" else {}))
    assert preprocessing._reduced(big, 160).size == (1_000, 700)  # by 6, not to 160
    decoded = load_rgb(path, (160, 160)).reshape(-1, 3)
    assert np.abs(decoded.astype(int) - seen).max() <= 1

"""The shared preprocessing contract on real files: pixels, orientation, modes, failures."""

from __future__ import annotations

import errno
import io
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop.core.preprocessing import (
    ImageLoadError,
    is_supported_image,
    load_model_input,
    load_rgb,
    mirror,
)
from fixtures_images import (
    UNREADABLE_FILE,
    permissions_enforced,
    write_animated_gif,
    write_cmyk_jpeg,
    write_exif_rotated_jpeg,
    write_grey16_png,
    write_palette_png,
    write_png_bomb,
    write_rgba_png,
    write_solid,
    write_truncated_jpeg,
)

SIZE = (32, 32)
WHITE = np.array([255, 255, 255])
RED = np.array([255, 0, 0])
BLUE = np.array([0, 0, 255])


def decode(path: Path) -> np.ndarray:
    """Decoding facts (orientation, modes, transparency) on the whole image: stretched, so
    no letterbox padding mixes in (resizing is tested on its own)."""
    return load_rgb(path, SIZE, "stretch")


def write_gradient(path: Path, size: tuple[int, int]) -> Path:
    """A PNG of `size` (width, height) whose red rises left to right and green top to
    bottom: no two pixels alike, so any flip or pick of other pixels shows."""
    width, height = size
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x * y * 37) % 256], -1)
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(path)
    return path


def assert_colour(pixels: np.ndarray, colour: np.ndarray, tolerance: int = 6) -> None:
    difference = np.abs(pixels.reshape(-1, 3).astype(int) - colour).max()
    assert difference <= tolerance, f"pixels differ from {colour.tolist()} by up to {difference}"


def test_output_is_uint8_rgb_of_the_requested_height_and_width(tmp_path: Path) -> None:
    path = write_solid(tmp_path / "wide.png", (10, 20, 30), size=(90, 30))
    pixels = load_rgb(path, (24, 40), "stretch")
    assert pixels.shape == (24, 40, 3)
    assert pixels.dtype == np.uint8
    assert_colour(pixels, np.array([10, 20, 30]), tolerance=0)


def test_letterbox_keeps_the_aspect_ratio_on_white(tmp_path: Path) -> None:
    # 90x30 (3:1) into 40x24: scaled to 40x13, centred, white above and below.
    path = write_solid(tmp_path / "wide.png", (10, 20, 30), size=(90, 30))
    pixels = load_rgb(path, (24, 40), "letterbox")
    assert pixels.shape == (24, 40, 3) and pixels.dtype == np.uint8
    assert_colour(pixels[:5], WHITE, tolerance=0)
    assert_colour(pixels[5:18], np.array([10, 20, 30]), tolerance=0)
    assert_colour(pixels[18:], WHITE, tolerance=0)
    # Portrait goes the other way: white left and right.
    tall_path = write_solid(tmp_path / "tall.png", (10, 20, 30), size=(30, 90))
    tall = load_rgb(tall_path, (40, 24), "letterbox")
    assert_colour(tall[:, :5], WHITE, tolerance=0)
    assert_colour(tall[:, 5:18], np.array([10, 20, 30]), tolerance=0)
    # A square image fills a square input in both modes, with the same pixels.
    square = write_solid(tmp_path / "square.png", (10, 20, 30), size=(50, 50))
    np.testing.assert_array_equal(
        load_rgb(square, SIZE, "letterbox"), load_rgb(square, SIZE, "stretch")
    )
    with pytest.raises(ValueError, match="unknown resize mode"):
        load_rgb(square, SIZE, "crop")


def test_stretch_is_pillows_bilinear_resize_of_the_photo(tmp_path: Path) -> None:
    # The trainer resized with the same filter: another one (nearest pixel) shifts edges
    # and fine detail away from what the model learned on.
    path = write_gradient(tmp_path / "gradient.png", (7, 5))
    expected = Image.open(path).convert("RGB").resize((4, 3), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(load_rgb(path, (3, 4), "stretch"), np.asarray(expected))


def test_mirror_flips_each_image_of_a_batch_left_to_right(tmp_path: Path) -> None:
    # The second view of flip averaging: an upside-down view, or the images swapped
    # within the batch, would average the predictions of other pictures.
    first = write_gradient(tmp_path / "first.png", (6, 4))
    second = tmp_path / "second.png"
    Image.open(first).transpose(Image.Transpose.ROTATE_180).save(second)
    batch = np.stack([load_model_input(path, (4, 6)) for path in (first, second)])
    flipped = []
    for path in (first, second):
        view = tmp_path / f"flipped-{path.name}"
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(view)
        flipped.append(load_model_input(view, (4, 6)))
    np.testing.assert_array_equal(mirror(batch), np.stack(flipped))


def test_model_input_is_the_same_pixels_as_float32_0_to_255(tmp_path: Path) -> None:
    path = write_solid(tmp_path / "c.jpg", (250, 128, 3))
    model_input = load_model_input(path, SIZE)
    assert model_input.dtype == np.float32
    np.testing.assert_array_equal(model_input, load_rgb(path, SIZE).astype(np.float32))
    assert model_input.max() > 200  # 0-255, not rescaled to 0-1


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = decode(write_exif_rotated_jpeg(tmp_path / "rotated.jpg"))
    # Upright, red is on top and blue at the bottom (stored: red left, blue right).
    assert_colour(pixels[:12], RED, tolerance=12)
    assert_colour(pixels[-12:], BLUE, tolerance=12)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    pixels = decode(write_grey16_png(tmp_path / "grey16.png", value=32768))
    assert_colour(pixels, np.array([128, 128, 128]), tolerance=1)


def test_cmyk_jpeg_converts_to_rgb(tmp_path: Path) -> None:
    assert_colour(decode(write_cmyk_jpeg(tmp_path / "cmyk.jpg")), RED, tolerance=8)


@pytest.mark.parametrize("writer", [write_palette_png, write_rgba_png], ids=["palette", "rgba"])
def test_transparent_areas_become_white(tmp_path: Path, writer) -> None:
    # Left half is transparent *black*, right half opaque white: all of it must be white.
    pixels = decode(writer(tmp_path / "transparent.png"))
    assert_colour(pixels, WHITE, tolerance=0)


def test_animated_gif_uses_the_first_frame(tmp_path: Path) -> None:
    pixels = decode(write_animated_gif(tmp_path / "anim.gif"))
    assert_colour(pixels, BLUE, tolerance=0)


def test_camera_sized_jpeg_decodes(large_jpeg_path: Path) -> None:
    pixels = decode(large_jpeg_path)
    assert pixels.shape == (32, 32, 3)
    assert_colour(pixels, np.array([0, 240, 0]), tolerance=20)


@pytest.mark.parametrize(("width", "height"), [(12000, 10500), (16320, 12240)])
def test_a_photo_over_the_pixel_limit_says_what_to_set_on_the_camera(
    tmp_path: Path, width: int, height: int
) -> None:
    # A phone's 200 MP mode (16320x12240, over Pillow's own limit too) and a 126 MP image:
    # the JPEG's frame header claims the size; nothing that large is decoded.
    header = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 240, 0)).save(header, format="JPEG")
    data = bytearray(header.getvalue())
    frame = data.index(b"\xff\xc0") + 5  # SOF0: length (2), precision (1), then height, width
    data[frame : frame + 4] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path = tmp_path / "IMG_20261207_200MP.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError) as refused:
        decode(path)
    assert refused.value.reason.startswith("image too large")
    assert refused.value.reason.endswith(
        ": set the camera to a lower resolution (a phone: 12 or 50 MP)"
    )


def test_decompression_bomb_is_refused_without_allocating(tmp_path: Path) -> None:
    path = write_png_bomb(tmp_path / "bomb.png")
    assert path.stat().st_size < 200
    tracemalloc.start()
    try:
        with pytest.raises(ImageLoadError, match="too large"):
            decode(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"peak {peak} bytes: the bomb was decoded"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (write_truncated_jpeg, "truncated image: the file ends early"),
        (lambda p: p.write_bytes(b"BM" + bytes(60)), "corrupt image: Unsupported BMP header"),
        (lambda p: p.write_text("hello"), "not an image"),
        (lambda p: None, "file not found"),
        (lambda p: os.symlink("missing.jpg", p), "file not found"),
        (lambda p: os.symlink(p.name, p), "cannot read file"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=[
        "empty",
        "truncated",
        "bad-header",
        "text",
        "missing",
        "dangling-link",
        "link-loop",
        "folder",
    ],
)
def test_unusable_files_raise_image_load_error_with_a_reason(
    tmp_path: Path, make, reason: str
) -> None:
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageLoadError) as caught:
        decode(path)
    assert reason in caught.value.reason
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    path = write_solid(tmp_path / UNREADABLE_FILE, (255, 0, 0))
    path.chmod(0)
    try:
        if permissions_enforced(tmp_path):
            with pytest.raises(ImageLoadError, match="permission denied"):
                decode(path)
        else:
            # Running with privileges that ignore file modes (root in a container): the
            # file really is readable, so the honest assertion is that it decodes.
            assert_colour(decode(path), RED, tolerance=4)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("refused", ["desktop.core.preprocessing.os.stat", "PIL.Image.open"])
def test_permission_denied_reason_also_when_running_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    # Root reads mode 000 files, so test_unreadable_file cannot produce the refusal there:
    # the system call is made to refuse instead, and the reason is checked on every run.
    path = write_solid(tmp_path / "red.jpg", (255, 0, 0))

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(refused, refuse)
    with pytest.raises(ImageLoadError) as caught:
        decode(path)
    assert caught.value.reason == "permission denied"


@pytest.mark.parametrize(
    ("name", "supported"),
    [("a.JPG", True), ("b.jpeg", True), ("c.webp", True), ("d.txt", False), ("e", False)],
)
def test_supported_suffixes_ignore_case(name: str, supported: bool) -> None:
    assert is_supported_image(name) is supported

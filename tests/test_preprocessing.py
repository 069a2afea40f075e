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
    input_rect,
    is_supported_image,
    item_frame,
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


def item_on_a_table(
    path: Path, size: tuple[int, int], box: tuple[int, int, int, int], noise: float = 0.0
) -> Path:
    """A grey table photo of `size` (width, height) with a red item filling `box` (left,
    top, right, bottom), its sensor noise `noise` levels (standard deviation)."""
    pixels = np.full((size[1], size[0], 3), 150.0)
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = RED
    pixels += np.random.default_rng(0).normal(0, noise, pixels.shape)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def test_item_mode_crops_a_small_item_to_fill_the_input(tmp_path: Path) -> None:
    # A 40x40 item in a 400x300 photo: a tenth of it across, stretched; the square around
    # it with 8 % margin on each side (40 * 1.16 = 46 px) in item mode, the table around.
    path = item_on_a_table(tmp_path / "table.png", (400, 300), (200, 100, 240, 140), noise=3)
    stretched = load_rgb(path, (50, 50), "stretch")
    assert (np.abs(stretched.astype(int) - RED).max(axis=2) < 60).mean() < 0.03
    cropped = load_rgb(path, (50, 50), "item")
    item = np.abs(cropped.astype(int) - RED).max(axis=2) < 60
    assert 0.7 < item.mean() < 0.8  # (40 / 46.4) squared = 0.74
    assert item[4:-4, 4:-4].all() and not item[:2].any() and not item[:, -2:].any()
    assert_colour(cropped[0], np.array([150, 150, 150]), tolerance=12)  # the margin: table


def test_item_mode_fills_a_square_past_the_photos_edge_with_the_table(tmp_path: Path) -> None:
    # A tall item at the left edge: its square reaches past the photo on the left and
    # must hold the table's colour there, not white or black.
    path = item_on_a_table(tmp_path / "edge.png", (300, 200), (0, 50, 20, 150))
    found = item_frame(Image.open(path).convert("RGB"))
    assert found.background == (150, 150, 150) and not found.empty
    left, top, side = found.square
    assert left < 0 and 110 <= side <= 122 and abs(top + side / 2 - 100) <= 2
    pixels = load_rgb(path, (58, 58), "item")
    assert_colour(pixels[:, :20], np.array([150, 150, 150]), tolerance=2)
    assert (np.abs(pixels.astype(int) - RED).max(axis=2) < 30).any(axis=0)[25:33].all()


def test_item_mode_feeds_an_empty_frame_as_one_flat_colour(tmp_path: Path) -> None:
    # Nothing stands out of the surface: the input is its colour, flat, so a model that
    # detects unknown items calls it a blank frame (prediction_loop.is_blank).
    pixels = np.full((300, 400, 3), 90.0) + np.random.default_rng(1).normal(0, 3, (300, 400, 3))
    pixels *= np.linspace(1.0, 0.92, 400)[None, :, None]  # a lens's vignette
    path = tmp_path / "empty.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    empty = load_rgb(path, SIZE, "item")
    assert empty.std() == 0 and abs(int(empty[0, 0, 0]) - 88) <= 4
    assert load_rgb(path, SIZE, "stretch").std() > 1  # the whole photo is not flat


def test_a_catalogue_image_keeps_its_item_whole_in_item_mode(tmp_path: Path) -> None:
    # The dataset's photos: the item on white, filling most of the frame. The crop may
    # only trim the white around it, never cut into the item.
    path = item_on_a_table(tmp_path / "catalogue.png", (150, 150), (10, 20, 140, 130))
    pixels = np.asarray(Image.open(path)).copy()
    pixels[pixels[..., 1] == 150] = 255  # the table white, as in the catalogue
    Image.fromarray(pixels).save(path)
    found = item_frame(Image.open(path).convert("RGB"))
    assert found.background == (255, 255, 255)
    left, top, side = found.square
    assert left <= 10 and top <= 20 and left + side >= 140 and top + side >= 130
    # One that fills the photo both ways is not cropped: stretched whole, as in "stretch".
    filling = item_on_a_table(tmp_path / "filling.png", (150, 150), (2, 3, 148, 147))
    assert item_frame(Image.open(filling).convert("RGB")).square is None
    np.testing.assert_array_equal(
        load_rgb(filling, SIZE, "item"), load_rgb(filling, SIZE, "stretch")
    )


def test_a_textured_table_is_not_taken_for_an_item(tmp_path: Path) -> None:
    # Wood grain differs from its own median colour everywhere: a crop to the "box" of
    # those pixels would be arbitrary, so the whole photo is used, as by "stretch".
    y, x = np.mgrid[0:300, 0:400]
    grain = 140 + 25 * np.sin(x / 9.0 + 3 * np.sin(y / 60.0))
    pixels = np.stack([grain, grain * 0.75, grain * 0.5], axis=2)
    pixels[120:170, 180:230] = (0, 0, 255)
    path = tmp_path / "wood.png"
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    assert item_frame(Image.open(path).convert("RGB")).square is None
    np.testing.assert_array_equal(load_rgb(path, SIZE, "item"), load_rgb(path, SIZE, "stretch"))


def test_input_rect_says_where_the_models_input_lies_over_the_photo(tmp_path: Path) -> None:
    path = item_on_a_table(tmp_path / "table.png", (400, 300), (200, 100, 240, 140))
    photo = np.asarray(Image.open(path).convert("RGB"))
    left, top, width, height = input_rect(photo, (50, 50), "item")
    assert abs((left + width / 2) * 400 - 220) <= 2 and abs((top + height / 2) * 300 - 120) <= 2
    assert abs(width * 400 - 46.4) <= 2 and abs(height * 300 - 46.4) <= 2
    assert input_rect(photo, (50, 50), "stretch") == (0.0, 0.0, 1.0, 1.0)
    # Letterboxed into a square, the input is a 400x400 square centred on the photo.
    assert input_rect(photo, (50, 50), "letterbox") == (0.0, -50 / 300, 1.0, 400 / 300)
    assert input_rect(np.full((30, 40, 3), 7, np.uint8), (8, 8), "item") == (0, 0, 1, 1)


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

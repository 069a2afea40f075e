"""Real image files for tests: good samples of known colours and every bad input we handle.

Everything is written with Pillow or by hand (the decompression bomb), never faked with
mocks. `BAD_INPUTS` says what the app must make of each file, so the engine, CLI and GUI
tests can all check the same expectations.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tiny_model import AMBIGUOUS_COLOUR, PROTOTYPE_COLOURS

RGB = tuple[int, int, int]

# name -> colour of the good sample images; the tiny model's expected class in a comment.
SAMPLE_IMAGES: dict[str, RGB] = {
    "red_battery.jpg": PROTOTYPE_COLOURS["Battery"],
    "green_keyboard.png": PROTOTYPE_COLOURS["Keyboard"],
    "blue_microwave.jpg": PROTOTYPE_COLOURS["Microwave"],
    "yellow_mobile.png": PROTOTYPE_COLOURS["Mobile"],
    "grey_television.png": PROTOTYPE_COLOURS["Television"],
    "red_orange_ambiguous.png": AMBIGUOUS_COLOUR,  # ~50/50 Battery vs Washing Machine
}
SAMPLE_EXPECTED_CLASS: dict[str, str] = {
    "red_battery.jpg": "Battery",
    "green_keyboard.png": "Keyboard",
    "blue_microwave.jpg": "Microwave",
    "yellow_mobile.png": "Mobile",
    "grey_television.png": "Television",
    "red_orange_ambiguous.png": "Battery",  # top class, but under the review threshold
}
AMBIGUOUS_SAMPLE = "red_orange_ambiguous.png"


@dataclass(frozen=True)
class Expect:
    """What the app must make of one bad input.

    kind "class": decodes, and the tiny model predicts `class_name`.
    kind "error": an error row whose reason contains `reason`.
    kind "problem": found by discovery as a problem (not an image to classify), with a reason
        containing `reason`.
    """

    kind: str
    class_name: str | None = None
    reason: str | None = None


# Files and links created at the top of bad_inputs_dir, with what must happen to each.
# The unreadable file's expectation depends on the privileges of the test run: see
# `permissions_enforced`.
BAD_INPUTS: dict[str, Expect] = {
    "empty.jpg": Expect("error", reason="empty file"),
    "truncated.jpg": Expect("error", reason="truncated"),
    "text_named.jpg": Expect("error", reason="not an image"),
    "bomb_50000x50000.png": Expect("error", reason="too large"),
    "grey16.png": Expect("class", class_name="Television"),  # 16-bit half grey, not white
    "cmyk_red.jpg": Expect("class", class_name="Battery"),
    "palette_transparent.png": Expect("class", class_name="Player"),  # white, not black
    "rgba_transparent.png": Expect("class", class_name="Player"),  # white, not black
    "animated_blue_then_red.gif": Expect("class", class_name="Microwave"),  # first frame
    "exif_rotated.jpg": Expect("class", class_name="Television"),  # mean of red+blue: greyish
    "large_4000x3000.jpg": Expect("class", class_name="Keyboard"),
    "dangling_link.jpg": Expect("problem", reason="broken symbolic link"),
    "self_loop_link.jpg": Expect("problem", reason="symbolic link"),
}
# Valid images whose names trip up CSV writers and spreadsheets, with their colour's class.
AWKWARD_NAMES: dict[str, str] = {
    "comma, in name.jpg": "Battery",
    "quote \"double\" 'single'.png": "Keyboard",
    "new\nline.jpg": "Microwave",
    "emoji \U0001f4f1 phone.png": "Mobile",
    "=1+2.png": "Mouse",
    "@SUM(1).jpg": "Battery",
    "-1.png": "Keyboard",
    "+cmd.jpg": "Microwave",
}
BAD_INPUTS.update({name: Expect("class", class_name=c) for name, c in AWKWARD_NAMES.items()})
UNREADABLE_FILE = "unreadable.jpg"  # a valid red image with mode 000
UNREADABLE_FOLDER = "locked_folder"  # mode 000, holds one valid image
LOOP_FOLDER = "loop"  # holds `back_to_top` -> .. (a cycle)
EMPTY_FOLDER = "empty_folder"  # no files at all
NO_IMAGES_FOLDER = "no_images"  # only readme.txt
NON_IMAGE_FILES = ("notes.txt", f"{NO_IMAGES_FOLDER}/readme.txt")  # skipped by discovery


def write_solid(path: Path, colour: RGB, size: tuple[int, int] = (48, 40)) -> Path:
    """Write a solid-colour image; the format follows the suffix. `size` is (width, height)."""
    Image.new("RGB", size, colour).save(path)
    return path


# Latin-1 "café.jpg": not valid UTF-8. Python lists it as the str "caf\udce9.jpg"; the CSV
# and the table show it as "caf\\xe9.jpg".
NON_UTF8_NAME = b"caf\xe9.jpg"
NON_UTF8_SHOWN = "caf\\xe9.jpg"


def write_non_utf8_named(folder: Path, colour: RGB) -> Path:
    """A solid JPEG named NON_UTF8_NAME in `folder`, returned as Python lists it.

    Skips the test where the file system refuses such names: macOS (APFS/HFS+) and ZFS with
    utf8only require UTF-8 names, and Windows takes file names as Unicode, not bytes.
    """
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), colour).save(buffer, format="JPEG")
    target = os.path.join(os.fsencode(folder), NON_UTF8_NAME)
    try:
        with open(target, "xb") as handle:
            handle.write(buffer.getvalue())
    except (OSError, UnicodeError) as exc:
        pytest.skip(f"this file system refuses a file name that is not UTF-8: {exc}")
    return Path(os.fsdecode(target))


def write_sample_images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in SAMPLE_IMAGES.items():
        write_solid(folder / name, colour)
    return folder


def write_large_jpeg(path: Path, size: tuple[int, int] = (4000, 3000)) -> Path:
    """A camera-sized JPEG: green with a faint gradient, so it is not trivially compressible."""
    width, height = size
    ramp = np.linspace(0, 30, width, dtype=np.float32)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 1] = (225 + ramp).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path, quality=90)
    return path


def write_png_bomb(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A tiny PNG whose header declares width x height RGB pixels (nothing allocated)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    first_row = zlib.compress(b"\x00" + b"\x00" * 3 * 16)  # a few bytes of image data
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", first_row)
        + chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path


def write_truncated_jpeg(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_grey16_png(path: Path, value: int = 32768) -> Path:
    """A 16-bit greyscale PNG; `value` 32768 must come out as 128, not clipped to 255."""
    Image.fromarray(np.full((40, 48), value, dtype=np.uint16)).save(path)
    return path


def write_cmyk_jpeg(path: Path) -> Path:
    Image.new("CMYK", (48, 40), (0, 255, 255, 0)).save(path)  # red in CMYK
    return path


def write_palette_png(path: Path) -> Path:
    """Palette PNG: left half index 0 (black, transparent), right half index 1 (white)."""
    image = Image.new("P", (48, 40), 0)
    image.putpalette([0, 0, 0, 255, 255, 255] + [0, 0, 0] * 254)
    image.paste(1, (24, 0, 48, 40))
    image.save(path, transparency=0)
    return path


def write_rgba_png(path: Path) -> Path:
    """RGBA PNG: left half fully transparent black, right half opaque white."""
    pixels = np.zeros((40, 48, 4), dtype=np.uint8)
    pixels[:, 24:] = 255
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def write_animated_gif(path: Path) -> Path:
    first = Image.new("RGB", (48, 40), PROTOTYPE_COLOURS["Microwave"])
    second = Image.new("RGB", (48, 40), PROTOTYPE_COLOURS["Battery"])
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    return path


def write_exif_rotated_jpeg(path: Path) -> Path:
    """Stored 64x32 with the left half red and right half blue, EXIF orientation 6.

    Orientation 6 means "rotate 90 degrees clockwise to display": shown upright the image is
    32 wide, 64 high, red on top and blue at the bottom. Ignoring the tag would give red on
    the left and blue on the right instead.
    """
    image = Image.new("RGB", (64, 32), PROTOTYPE_COLOURS["Microwave"])
    image.paste(PROTOTYPE_COLOURS["Battery"], (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    image.save(path, exif=exif, quality=95)
    return path


def permissions_enforced(folder: Path) -> bool:
    """Whether mode 000 really stops this process reading a file.

    Tests often run as root (containers, CI), which bypasses file permissions; then an
    unreadable file cannot be produced with chmod and its tests assert the real behaviour
    instead (the file decodes).
    """
    probe = folder / ".permission_probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        with open(probe, "rb"):
            return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()


def write_bad_inputs(folder: Path, large_jpeg: Path) -> Path:
    """Create every bad input of BAD_INPUTS and the special folders in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    write_truncated_jpeg(folder / "truncated.jpg")
    (folder / "text_named.jpg").write_text("this is a shopping list, not a photo\n")
    write_png_bomb(folder / "bomb_50000x50000.png")
    write_grey16_png(folder / "grey16.png")
    write_cmyk_jpeg(folder / "cmyk_red.jpg")
    write_palette_png(folder / "palette_transparent.png")
    write_rgba_png(folder / "rgba_transparent.png")
    write_animated_gif(folder / "animated_blue_then_red.gif")
    write_exif_rotated_jpeg(folder / "exif_rotated.jpg")
    shutil.copyfile(large_jpeg, folder / "large_4000x3000.jpg")
    os.symlink("missing_target.jpg", folder / "dangling_link.jpg")
    os.symlink("self_loop_link.jpg", folder / "self_loop_link.jpg")

    for name, class_name in AWKWARD_NAMES.items():
        write_solid(folder / name, PROTOTYPE_COLOURS[class_name])

    write_solid(folder / UNREADABLE_FILE, PROTOTYPE_COLOURS["Battery"])
    (folder / UNREADABLE_FILE).chmod(0)
    locked = folder / UNREADABLE_FOLDER
    locked.mkdir()
    write_solid(locked / "inside_locked.jpg", PROTOTYPE_COLOURS["Battery"])
    locked.chmod(0)

    loop = folder / LOOP_FOLDER
    loop.mkdir()
    os.symlink("..", loop / "back_to_top")
    (folder / EMPTY_FOLDER).mkdir()
    (folder / NO_IMAGES_FOLDER).mkdir()
    (folder / "notes.txt").write_text("not an image\n")
    (folder / NO_IMAGES_FOLDER / "readme.txt").write_text("no images in here\n")
    return folder


def restore_permissions(folder: Path) -> None:
    """Undo the mode-000 entries so tmp-dir cleanup works when not running as root."""
    for relative in (UNREADABLE_FILE, UNREADABLE_FOLDER):
        try:
            (folder / relative).chmod(0o755)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise

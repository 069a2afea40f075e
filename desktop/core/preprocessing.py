"""The one definition of image preprocessing.

The desktop engine, the trainer and the converter's parity check all call `load_rgb`, so a
file becomes the same pixels everywhere. Qt-free and TensorFlow-free on purpose: the trainer
imports it without pulling in the GUI, and the station PC runs it without TensorFlow.

The contract (also written into every exported model's metadata, see `model_info`):
decode with Pillow, apply the EXIF orientation, convert any mode to 8-bit RGB (transparency
composited onto white, like the product photos the model learned from; 16-bit scaled down,
not clipped), resize to the model's input size with bilinear filtering, and feed float32
pixels in 0-255 in NHWC order. Every backbone normalises inside the model, so nothing here
does.

Resizing has three modes, and the model's metadata says which one it uses:
"stretch" resizes the whole image to the input size, "letterbox" keeps the aspect ratio and
centres the image on white. On the square dataset images both give the same pixels; on 4:3
and 3:4 variants of the validation images letterbox lost or tied 9 of 10 comparisons
against stretch for the shipped model (benchmarks/bench_aspect.py, README), so stretch is
the default for training. "item" first crops the photo to the square around the item (what
stands out of a plain background, see `item_frame`), then stretches that: a phone photo of
an item lying on a table is mostly table, and the model learned from catalogue photos the
item fills (benchmarks/bench_item_size.py).
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

from .pixel_budget import Abandoned, PixelBudget

# The one pixel layout of every model's input: (batch, height, width, RGB).
LAYOUT = "NHWC"
# How each resize mode is described in the metadata: the text is the contract.
RESIZE_MODES = {
    "stretch": "bilinear, whole image to input size (no crop, no padding)",
    "letterbox": "bilinear, aspect ratio kept, centred on white padding to input size",
    "item": (
        "square around the pixels that differ from the border's median colour by over 16 %"
        " of its brightest channel, at least 10 levels (found at 400 px), 8 % margin, filled"
        " with that colour (none differ: all that colour; their box spans 90 % of the photo"
        " both ways: the whole photo), bilinear to input size; JPEG drafted at 4 times the"
        " input size"
    ),
}
# Each mode as the user reads it (Help › About the model).
RESIZE_IN_WORDS = {
    "stretch": "the whole photo, stretched to a square",
    "letterbox": "the whole photo, padded to a square",
    "item": "the photo cropped to the item",
}
DEFAULT_RESIZE = "stretch"
# White, like the transparency background and the catalogue photos the model learned from.
PADDING_COLOR = (255, 255, 255)
# The "item" mode's crop (its text in RESIZE_MODES is the contract). A pixel is the item
# when it differs from the background, the border's median colour, in any channel by over
# ITEM_DIFFERENCE_SHARE of the background's brightest channel (40 levels on white, the
# catalogue's background; less on a darker table, or in a dim photo, whose contrast light
# scales down alike) and by at least ITEM_MIN_DIFFERENCE levels (over sensor noise and a
# lens's vignette). Then the margin kept around the item, of its larger side, each way;
# the side of the copy the item is looked for in (small, for speed; a box filter averages
# the noise away); and how much larger than the input a JPEG is decoded, so an item a
# quarter of the photo's height still reaches the input at full resolution.
ITEM_DIFFERENCE_SHARE = 0.16
ITEM_MIN_DIFFERENCE = 10
# What the item's box must span of the photo's width and of its height for the whole
# photo to be used instead: a wood-grain table differs from its own median everywhere.
ITEM_FILLS_SHARE = 0.9
ITEM_MARGIN = 0.08
ITEM_SEARCH_SIDE = 400
ITEM_DRAFT_FACTOR = 4

# Facts of the contract, written into the model metadata by the converter (with the
# resize mode of the model being exported: see `contract`).
PREPROCESSING_CONTRACT = {
    "decoder": "Pillow",
    "exif_orientation": "applied",
    "color": "RGB",
    "transparency": "composited onto white",
    "high_bit_depth": "scaled to 8 bit",
    "resize": RESIZE_MODES[DEFAULT_RESIZE],
    "jpeg_draft": "JPEG decoded at the smallest 1/2, 1/4 or 1/8 scale not below the input size",
    "value_range": [0, 255],
    "dtype": "float32",
    "layout": LAYOUT,
}

# .jfif, .jpe and .jif are JPEG too: Windows browsers and WhatsApp Web save photos as .jfif.
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".jpe", ".jif"})
SUPPORTED_SUFFIXES = JPEG_SUFFIXES | {".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
# What Pillow may decode, whatever a file's name says: never a format whose plugin runs a
# program (EPS starts Ghostscript) or that the station has no business reading. (JPEG opens
# a phone's MPO too.)
DECODED_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF")

# Formats a phone or camera may be set to that Pillow cannot decode on its own (HEIC needs
# libheif; RAW needs demosaicing). The station still picks them up, so each becomes an error
# row that says what to do: a phone set to HEIC must not hand in a folder that seems empty.
_HEIC_ADVICE = (
    "HEIC photo, not read here: set the phone to JPEG"
    " (iPhone: Settings › Camera › Formats › Most Compatible) or convert it"
)
_RAW_ADVICE = "camera RAW file, not read here: use the camera's JPEG copy"
ADVICE_FOR_UNREAD_PHOTOS = {
    ".heic": _HEIC_ADVICE,
    ".heif": _HEIC_ADVICE,
    **dict.fromkeys((".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"), _RAW_ADVICE),
}
PHOTO_SUFFIXES = SUPPORTED_SUFFIXES | ADVICE_FOR_UNREAD_PHOTOS.keys()

# Refuse images that declare more pixels than this before decoding them: a PNG header can
# claim 50000x50000 in a few hundred bytes (a decompression bomb). 120 MP admits every DSLR
# photo and a phone's 50 or 108 MP mode; a 200 MP mode's photo is refused with advice.
MAX_PIXELS = 120_000_000
TOO_LARGE_ADVICE = ": set the camera to a lower resolution (a phone: 12 or 50 MP)"
# A larger image other than a JPEG is shrunk in its own mode first (see `_reduced`), to at
# least this many times the model's input on its short side.
REDUCE_ABOVE_PIXELS = 24_000_000
REDUCED_SIDE_FACTOR = 4
# Large decodes on all threads together hold at most this many pixels at full size (about
# 0.4 GB at worst); one image over it decodes alone. Smaller images are not counted.
DECODE_BUDGET = PixelBudget(limit=48_000_000, exempt_up_to=4_000_000)
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # "I" holds them as 32-bit


class ImageLoadError(Exception):
    """A file could not be turned into model input; `reason` is meant for the user."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_supported_image(path: str | os.PathLike) -> bool:
    """True when the file name has one of the image suffixes the app reads."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def is_photo_file(path: str | os.PathLike) -> bool:
    """True for what the station picks up from a folder: the images it reads, and the
    camera formats it cannot read, which then fail with advice instead of vanishing."""
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def contract(resize: str = DEFAULT_RESIZE) -> dict:
    """The preprocessing contract of a model that resizes with `resize`."""
    return {**PREPROCESSING_CONTRACT, "resize": RESIZE_MODES[_checked_mode(resize)]}


def resize_mode_of(description: object) -> str | None:
    """The mode whose metadata text is `description`, None if it is no mode of this app."""
    return next((mode for mode, text in RESIZE_MODES.items() if text == description), None)


def load_rgb(
    path: str | os.PathLike,
    size: tuple[int, int],
    resize: str = DEFAULT_RESIZE,
    abandon: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Decode `path` into a (height, width, 3) uint8 RGB array of the given `size`.

    `size` is (height, width); `resize` is a key of RESIZE_MODES. Raises ImageLoadError with a
    readable reason for anything that is not a usable image: empty, truncated, not an image,
    too large, unreadable; Abandoned when `abandon()` turns true while a large image waits
    for its turn to decode (see DECODE_BUDGET).
    """
    _checked_mode(resize)
    draft_side = max(size) * (ITEM_DRAFT_FACTOR if resize == "item" else 1)
    with _opened_rgb(path, draft_side=draft_side, abandon=abandon) as rgb:
        return fit_to_input(rgb, size, resize)


def fit_to_input(rgb: Image.Image, size: tuple[int, int], resize: str) -> np.ndarray:
    """Resize a decoded RGB image to (height, width) by the contract's `resize` mode."""
    height, width = size
    if resize == "item":
        found = item_frame(rgb)
        if found.empty:  # nothing for the model to see but the surface
            return np.full((height, width, 3), found.background, dtype=np.uint8)
        if found.square is not None:
            left, top, side = found.square
            framed = Image.new("RGB", (side, side), found.background)
            framed.paste(rgb, (-left, -top))
            rgb = framed
        return np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
    left, top, inner_width, inner_height = image_box((rgb.width, rgb.height), size, resize)
    if (inner_width, inner_height) != (width, height):
        canvas = Image.new("RGB", (width, height), PADDING_COLOR)
        inner = rgb.resize((inner_width, inner_height), Image.Resampling.BILINEAR)
        canvas.paste(inner, (left, top))
        return np.asarray(canvas, dtype=np.uint8)
    return np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


@dataclass(frozen=True)
class ItemFrame:
    """What the "item" mode found in a photo (see `item_frame`)."""

    background: tuple[int, int, int]  # the median colour of the photo's border
    # The square to crop, in the photo's pixels: (left, top, side), reaching past its
    # edges where the item is near one. None: the whole photo, stretched (an item that
    # fills it, or a background with no plain colour) or, if `empty`, none of it.
    square: tuple[int, int, int] | None
    empty: bool = False  # nothing stands out of the background: a bare surface


def item_frame(rgb: Image.Image) -> ItemFrame:
    """Where the item is in an RGB photo, for the "item" mode.

    The item is every pixel that differs from the background (the median colour of the
    photo's border; see ITEM_DIFFERENCE_SHARE). Its square is centred on the box around
    them, with ITEM_MARGIN around the box's larger side. When that box spans most of the
    photo both ways (ITEM_FILLS_SHARE) there is nothing to crop: the item fills the photo,
    or the table is not one plain colour (wood grain, clutter) and the box means nothing.
    """
    scale = min(1.0, ITEM_SEARCH_SIDE / max(rgb.width, rgb.height))
    small_size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    small = rgb if small_size == rgb.size else rgb.resize(small_size, Image.Resampling.BOX)
    pixels = np.asarray(small)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    median = np.median(border, axis=0)
    background = (int(median[0]), int(median[1]), int(median[2]))
    difference = max(ITEM_MIN_DIFFERENCE, ITEM_DIFFERENCE_SHARE * max(background))
    # Each pixel's largest channel difference, by Pillow: six times NumPy's speed here.
    channels = ImageChops.difference(small, Image.new("RGB", small_size, background)).split()
    largest = ImageChops.lighter(ImageChops.lighter(channels[0], channels[1]), channels[2])
    differs = np.asarray(largest) > difference
    if not differs.any():
        return ItemFrame(background, square=None, empty=True)
    rows, columns = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
    box_width, box_height = columns[-1] + 1 - columns[0], rows[-1] + 1 - rows[0]
    if box_width >= ITEM_FILLS_SHARE * small_size[0] and box_height >= (
        ITEM_FILLS_SHARE * small_size[1]
    ):
        return ItemFrame(background, square=None)
    to_x, to_y = rgb.width / small_size[0], rgb.height / small_size[1]
    centre_x = (columns[0] + columns[-1] + 1) / 2 * to_x
    centre_y = (rows[0] + rows[-1] + 1) / 2 * to_y
    side = max(1, round(max(box_width * to_x, box_height * to_y) * (1 + 2 * ITEM_MARGIN)))
    return ItemFrame(background, (round(centre_x - side / 2), round(centre_y - side / 2), side))


def input_rect(
    photo: np.ndarray, size: tuple[int, int], resize: str
) -> tuple[float, float, float, float]:
    """Where the model's whole input of `size` (height, width) lies over a decoded photo
    (H, W, 3) under `resize`: (left, top, width, height) as fractions of the photo's width
    and height. Stretch: the photo itself; letterbox: the photo and its padding; item: the
    item's square (the whole photo for an empty frame). A photo's activation map is drawn
    over this rect, so any decode of the photo will do (the preview's, the web page's)."""
    height, width = photo.shape[:2]
    if resize == "item":
        square = item_frame(Image.fromarray(photo)).square
        if square is None:
            return 0.0, 0.0, 1.0, 1.0
        left, top, side = square
        return left / width, top / height, side / width, side / height
    if resize == "letterbox":
        scale = min(size[1] / width, size[0] / height)  # input pixels per photo pixel
        covered_width, covered_height = size[1] / scale, size[0] / scale
        return (
            (width - covered_width) / 2 / width,
            (height - covered_height) / 2 / height,
            covered_width / width,
            covered_height / height,
        )
    return 0.0, 0.0, 1.0, 1.0


def image_box(
    image_size: tuple[int, int], size: tuple[int, int], resize: str
) -> tuple[int, int, int, int]:
    """Where an image of `image_size` (width, height) lies in the model's input of `size`
    (height, width) under `resize`: (left, top, width, height) in input pixels. Stretch
    fills the input; letterbox centres the image at its own aspect ratio."""
    height, width = size
    image_width, image_height = image_size
    if resize != "letterbox" or image_width * height == image_height * width:
        return 0, 0, width, height
    scale = min(width / image_width, height / image_height)
    inner = (max(1, round(image_width * scale)), max(1, round(image_height * scale)))
    return (width - inner[0]) // 2, (height - inner[1]) // 2, *inner


def _checked_mode(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize!r}: {' or '.join(RESIZE_MODES)}")
    return resize


def load_display_rgb(path: str | os.PathLike, max_side: int) -> np.ndarray:
    """Decode `path` for display: the same decoding as the model's input (orientation,
    colour, transparency, bit depth), aspect ratio kept, longest side at most `max_side`."""
    with _opened_rgb(path, draft_side=max_side) as rgb:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


@contextmanager
def _opened_rgb(
    path: str | os.PathLike, draft_side: int, abandon: Callable[[], bool] | None = None
) -> Iterator[Image.Image]:
    """Open, check and convert an image to RGB; every failure becomes an ImageLoadError,
    including those raised by the caller's work inside the `with` block (Abandoned passes)."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(info.st_mode):
            # A pipe would block the read forever and /dev/zero never ends; a file swapped
            # for one after discovery must not read as "empty".
            raise ImageLoadError(path, "not a regular file (a device, pipe or socket)")
        if info.st_size == 0:
            raise ImageLoadError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # And what it says of a photo's damaged metadata ("Corrupt EXIF data", "Truncated
            # File Read"): a line per photo in a station's log, naming no file; the photo
            # decodes, or its error row says why.
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path, formats=DECODED_FORMATS) as image:
                pixels = image.width * image.height
                if pixels > MAX_PIXELS:
                    raise ImageLoadError(
                        path,
                        f"image too large: {image.width}x{image.height} pixels "
                        f"(limit {MAX_PIXELS // 1_000_000} megapixels){TOO_LARGE_ADVICE}",
                    )
                # Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale while staying at
                # least as large as the target: a 4000x3000 photo decodes ~30x faster.
                # Phones often write MPO (JPEG with a multi-picture block): same decoder.
                if image.format in ("JPEG", "MPO"):
                    image.draft("RGB", (draft_side, draft_side))
                # Decoding happens from here on, at the (drafted) size.
                with DECODE_BUDGET.reserved(image.width * image.height, abandon):
                    ImageOps.exif_transpose(image, in_place=True)  # no copy when upright
                    yield _to_rgb(_reduced(image, draft_side))
    except (ImageLoadError, Abandoned):
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses to even open an image far over its own limit (twice ours or more).
        raise ImageLoadError(
            path,
            f"image too large: over {MAX_PIXELS // 1_000_000} megapixels, the limit"
            f"{TOO_LARGE_ADVICE}",
        ) from exc
    except UnidentifiedImageError as exc:
        reason = "not an image file, or not a format this app reads"
        raise ImageLoadError(path, _undecodable(path, reason)) from exc
    except PermissionError as exc:
        raise ImageLoadError(path, "permission denied") from exc
    except FileNotFoundError as exc:
        raise ImageLoadError(path, "file not found") from exc
    except IsADirectoryError as exc:
        raise ImageLoadError(path, "is a folder, not an image file") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            # A system error (I/O error on a failing drive, a symlink loop, ...): the data
            # may be fine, so do not call it corrupt. Pillow's own errors carry no errno.
            raise ImageLoadError(path, f"cannot read file: {exc.strerror}") from exc
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated
        # (17 bytes not processed)"), SyntaxError (bad headers) or ValueError. The first is
        # the common case at a station, a copy stopped part way; say that in plain words.
        if "truncated" in str(exc):
            reason = "truncated image: the file ends early (a copy stopped part way?)"
        else:
            reason = f"corrupt image: {exc}"
        raise ImageLoadError(path, _undecodable(path, reason)) from exc
    except Exception as exc:
        # Anything else a decoder plugin raises on an odd file (malformed EXIF, an exotic
        # mode): still one file's problem, never the whole batch's.
        reason = f"cannot decode image: {type(exc).__name__}: {exc}"
        raise ImageLoadError(path, _undecodable(path, reason)) from exc


def _undecodable(path: str | os.PathLike, reason: str) -> str:
    """Why a file did not decode: the advice for a camera format read only by other tools
    (Pillow opens a RAW file as a TIFF and then fails), or `reason`."""
    return ADVICE_FOR_UNREAD_PHOTOS.get(Path(path).suffix.lower(), reason)


def load_model_input(
    path: str | os.PathLike, size: tuple[int, int], resize: str = DEFAULT_RESIZE
) -> np.ndarray:
    """`load_rgb` as the float32 0-255 array the model takes (one image, no batch axis)."""
    return load_rgb(path, size, resize).astype(np.float32)


def mirror(images: np.ndarray) -> np.ndarray:
    """Left-right mirror of NHWC images (or maps): the second view of flip averaging.

    Flip averaging (the mean of the predictions on an image and on its mirror) is done the
    same way by the trainer's evaluation and by the app's engine, with this one function.
    """
    return np.ascontiguousarray(images[:, :, ::-1, :])


def _sixteen_bit_grey(image: Image.Image) -> Image.Image:
    """16-bit greyscale scaled from 0-65535 to 0-255 (Pillow's own convert would clip)."""
    values = np.asarray(image, dtype=np.float32)
    values *= np.float32(255.0 / 65535.0)
    return _grey(values)


def _grey(values: np.ndarray) -> Image.Image:
    """Float grey values on the 0-255 scale as an 8-bit image, clipped and rounded in
    place (float64 copies of a large image took gigabytes)."""
    np.clip(values, 0, 255, out=values)
    np.rint(values, out=values)
    return Image.fromarray(values.astype(np.uint8), "L")


def _reduced(image: Image.Image, side: int) -> Image.Image:
    """A huge image other than a JPEG (decoded at full size: no draft) shrunk by a whole
    factor in its own mode, still at least `side` * REDUCED_SIDE_FACTOR pixels on its short
    side, before any conversion: converting a 16-bit or transparent 100 MP image at full
    size took gigabytes. Images up to REDUCE_ABOVE_PIXELS are left as they are."""
    if image.width * image.height <= REDUCE_ABOVE_PIXELS:
        return image
    factor = min(image.width, image.height) // (side * REDUCED_SIDE_FACTOR)
    if factor < 2:
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        image = _sixteen_bit_grey(image)  # reduce() has no 16-bit mode
    elif image.mode in ("1", "P", "PA") or "transparency" in image.info:
        # Palette indices and a transparent colour key mean nothing once averaged.
        image = _to_rgb(image)
    return image.reduce(factor)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB the way the contract says."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in SIXTEEN_BIT_MODES:
        return _sixteen_bit_grey(image).convert("RGB")
    if mode == "F":
        return _grey(np.array(image, dtype=np.float32)).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")

"""The one definition of image preprocessing.

The desktop engine, the trainer and the converter's parity check all call `load_rgb`, so a
file becomes the same pixels everywhere. Qt-free and TensorFlow-free on purpose: the trainer
imports it without pulling in the GUI, and the station PC runs it without TensorFlow.

The contract (also written into every exported model's metadata, see `model_info`):
decode with Pillow, apply the EXIF orientation, convert any mode to 8-bit RGB (transparency
composited onto white, like the product photos the model learned from; 16-bit scaled down,
not clipped), resize the whole image to the model's input size with bilinear filtering (no
crop, no padding), and feed float32 pixels in 0-255 in NHWC order. EfficientNetV2 rescales
inside the model, so nothing here normalises.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Facts of the contract, written into the model metadata by the converter.
PREPROCESSING_CONTRACT = {
    "decoder": "Pillow",
    "exif_orientation": "applied",
    "color": "RGB",
    "transparency": "composited onto white",
    "high_bit_depth": "scaled to 8 bit",
    "resize": "bilinear, whole image to input size (no crop, no padding)",
    "jpeg_draft": "JPEG decoded at the smallest 1/2, 1/4 or 1/8 scale not below the input size",
    "value_range": [0, 255],
    "dtype": "float32",
    "layout": "NHWC",
}

SUPPORTED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

# Refuse images that declare more pixels than this before decoding them: a PNG header can
# claim 50000x50000 in a few hundred bytes (a decompression bomb). 120 MP still admits
# every phone and DSLR photo a sorting station takes.
MAX_PIXELS = 120_000_000


class ImageLoadError(Exception):
    """A file could not be turned into model input; `reason` is meant for the user."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_supported_image(path: str | os.PathLike) -> bool:
    """True when the file name has one of the image suffixes the app reads."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def load_rgb(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """Decode `path` into a (height, width, 3) uint8 RGB array of the given `size`.

    `size` is (height, width). Raises ImageLoadError with a readable reason for anything
    that is not a usable image: empty, truncated, not an image, too large, unreadable.
    """
    height, width = size
    with _opened_rgb(path, draft_side=max(height, width)) as rgb:
        return np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_display_rgb(path: str | os.PathLike, max_side: int) -> np.ndarray:
    """Decode `path` for display: the same decoding as the model's input (orientation,
    colour, transparency, bit depth), aspect ratio kept, longest side at most `max_side`."""
    with _opened_rgb(path, draft_side=max_side) as rgb:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


@contextmanager
def _opened_rgb(path: str | os.PathLike, draft_side: int) -> Iterator[Image.Image]:
    """Open, check and convert an image to RGB; every failure becomes an ImageLoadError,
    including those raised by the caller's work inside the `with` block."""
    try:
        if os.path.getsize(path) == 0:
            raise ImageLoadError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                pixels = image.width * image.height
                if pixels > MAX_PIXELS:
                    raise ImageLoadError(
                        path,
                        f"image too large: {image.width}x{image.height} pixels "
                        f"(limit {MAX_PIXELS // 1_000_000} megapixels)",
                    )
                # Draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale while staying at
                # least as large as the target: a 4000x3000 photo decodes ~30x faster.
                # Phones often write MPO (JPEG with a multi-picture block): same decoder.
                if image.format in ("JPEG", "MPO"):
                    image.draft("RGB", (draft_side, draft_side))
                yield _to_rgb(ImageOps.exif_transpose(image))
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, f"image too large (decompression bomb guard): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, "not an image file Pillow can read") from exc
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
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated"),
        # SyntaxError (bad headers) or ValueError.
        raise ImageLoadError(path, f"corrupt or truncated image: {exc}") from exc
    except Exception as exc:
        # Anything else a decoder plugin raises on an odd file (malformed EXIF, an exotic
        # mode): still one file's problem, never the whole batch's.
        raise ImageLoadError(path, f"cannot decode image: {type(exc).__name__}: {exc}") from exc


def load_model_input(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """`load_rgb` as the float32 0-255 array the model takes (one image, no batch axis)."""
    return load_rgb(path, size).astype(np.float32)


def mirror(images: np.ndarray) -> np.ndarray:
    """Left-right mirror of NHWC images (or maps): the second view of flip averaging.

    Flip averaging (the mean of the predictions on an image and on its mirror) is done the
    same way by the trainer's evaluation and by the app's engine, with this one function.
    """
    return np.ascontiguousarray(images[:, :, ::-1, :])


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB the way the contract says."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit greyscale: scale 0-65535 to 0-255 (Pillow's own convert would clip).
        values = np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)
        return Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 255).round().astype(np.uint8)
        return Image.fromarray(values, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")

"""A model file is written under a temporary name beside its own, then moved into place."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import onnx

from converter.errors import ConvertError


@contextlib.contextmanager
def temporary_model(out: Path) -> Iterator[Path]:
    """A temp file next to `out` (same filesystem, so os.replace is atomic), always removed.
    Its name is unique: two runs writing the same `out` never share (nor delete) one."""
    # A fresh unique name rather than mkstemp, whose 0600 mode would end up on the model.
    temp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:12]}.tmp.onnx")
    try:
        yield temp
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def write_model(model: onnx.ModelProto, out: Path) -> None:
    """Write atomically, after proving the app's engine loads the file."""
    from desktop.core.engine import Engine, ModelError

    if out.suffix.lower() != ".onnx" or not out.parent.is_dir():
        raise ConvertError(f"--out must be an .onnx file in an existing folder, got {out}")
    with temporary_model(out) as temporary:
        try:
            onnx.save(model, str(temporary))
        except OSError as exc:  # a read-only or full disk: one line, not a traceback
            raise ConvertError(f"cannot write {out}: {exc.strerror or exc}") from exc
        try:
            Engine(temporary)
        except ModelError as exc:
            raise ConvertError(f"the app cannot load the new model: {exc}") from exc
        try:
            temporary.replace(out)
        except OSError as exc:
            raise ConvertError(f"cannot write {out}: {exc.strerror or exc}") from exc

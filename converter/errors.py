"""The one exception type the converter raises for problems the user can fix."""

from __future__ import annotations


class ConvertError(Exception):
    """A one-sentence problem with the input (model, paths, options); the CLI exits 2."""


class ParityError(Exception):
    """Keras and ONNX Runtime disagree; the CLI exits 1 and points at the parity report."""

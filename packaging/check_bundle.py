"""Fail the build when the bundle holds anything of the training side (TensorFlow, Keras,
tf2onnx, the trainer, the converter), or lacks the model, its licences or an executable."""

from __future__ import annotations

import sys
from pathlib import Path

FORBIDDEN = ("tensorflow", "keras", "tf2onnx", "trainer", "converter", "torch", "matplotlib")
# The app's licence, and the Apache-2.0 of the weights the model derives from.
LICENCES = ("LICENSE", "LICENSES/efficientnet-lite0-weights.txt")


def problems(bundle: Path) -> list[str]:
    found = []
    for path in bundle.rglob("*"):
        parts = [part.lower() for part in path.relative_to(bundle).parts]
        hits = [
            name
            for name in FORBIDDEN
            for part in parts
            if part == name
            or part.startswith(f"{name}.")
            or part.startswith(f"{name}-")
            or part.startswith(f"_{name}")
        ]
        if hits:
            found.append(f"{path.relative_to(bundle)} ({hits[0]})")
    suffix = ".exe" if sys.platform == "win32" else ""
    for executable in ("ewaste-app", "ewaste-classify"):
        if not (bundle / f"{executable}{suffix}").is_file():
            found.append(f"missing {executable}{suffix}")
    if not list(bundle.rglob("ewaste-classifier.onnx")):
        found.append("missing the model ewaste-classifier.onnx")
    for licence in LICENCES:  # beside the executables, or in PyInstaller's _internal/
        if not any((bundle / folder / licence).is_file() for folder in (".", "_internal")):
            found.append(f"missing the licence {licence}")
    return found


def main(argv: list[str]) -> int:
    bundle = Path(argv[0] if argv else "dist/ewaste-sorter")
    found = problems(bundle)
    for problem in found[:20]:
        print(f"check_bundle: {problem}", file=sys.stderr)
    if found:
        return 1
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"check_bundle: {bundle} is clean, {size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

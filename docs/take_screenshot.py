"""Take docs/screenshot.png: the real window after classifying a folder, one row previewed.

    xvfb-run -s "-screen 0 1400x900x24" python docs/take_screenshot.py \
        --flatten-into "$HOME/Pictures/intake"

`--flatten-into` first copies the folder's photos into one folder, as a station's intake
folder holds them, so the Folder column shows that folder and not the build machine's.

Uses the shipped model when assets/ewaste-classifier.onnx exists, else builds the tiny test
model (its answers on real photos are meaningless; say so where the picture is shown).
Settings go to a temporary file, so the picture never depends on the machine's settings.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_FOLDER = REPO.parent / "shared" / "datasets" / "ewaste" / "val"
SHIPPED_MODEL = REPO / "assets" / "ewaste-classifier.onnx"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="default: shipped model, else tiny model")
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--flatten-into", type=Path, help="copy the photos here first")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--width", type=int, default=1360)
    parser.add_argument("--height", type=int, default=860)
    parser.add_argument(
        "--row",
        type=int,
        help="table row to select (default: the most confident 'needs review' row, so the "
        "table shows where ok ends and review begins)",
    )
    args = parser.parse_args(argv)
    folder = args.folder
    if args.flatten_into:
        folder = _flatten(args.folder, args.flatten_into)

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    from desktop.gui.main_window import MainWindow
    from desktop.gui.results_model import COL_CONFIDENCE, ROW_ROLE
    from desktop.gui.settings import AppSettings

    app = QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            model = SHIPPED_MODEL if SHIPPED_MODEL.is_file() else _tiny_model(Path(scratch))
        window = MainWindow(AppSettings.at(Path(scratch) / "settings.ini"))
        window.resize(args.width, args.height)
        window.show()
        window.load_model(model)
        window.add_paths([str(folder)])
        _wait(app, lambda: window.last_summary is not None or window.model_error is not None)
        if window.model_error:
            raise SystemExit(f"model did not load: {window.model_error}")
        window.view.sortByColumn(COL_CONFIDENCE, Qt.SortOrder.DescendingOrder)
        rows = [window.proxy.index(r, 0).data(ROW_ROLE) for r in range(window.proxy.rowCount())]
        row = args.row
        if row is None:
            row = next((i for i, r in enumerate(rows) if r.status == "review"), 7)
        window.view.select_proxy_row(min(row, len(rows) - 1))
        # Put the selected row in the middle of the table.
        window.view.scrollTo(
            window.proxy.index(min(row, len(rows) - 1), 0),
            window.view.ScrollHint.PositionAtCenter,
        )
        # The table with the keys, as a worker sees it (without a window manager to make
        # the window active, Qt would paint its selection in the unfocused grey).
        window.activateWindow()
        window.view.setFocus()
        _wait(app, lambda: not window.preview.image_view.pending)
        _wait(app, lambda: False, seconds=0.5)  # let the last repaints land
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(args.out)):
            raise SystemExit(f"could not write {args.out}")
        print(
            f"wrote {args.out} ({window.width()}x{window.height()}, model {Path(model).name}, "
            f"{window.results.rowCount()} rows, platform {app.platformName()})"
        )
        window.close()
    return 0


def _flatten(source: Path, target: Path) -> Path:
    """Copy every photo under source into target (which must not exist yet)."""
    target.mkdir(parents=True)
    for photo in sorted(source.rglob("*")):
        if photo.is_file():
            shutil.copy2(photo, target / photo.name)
    return target


def _tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import build_tiny_model

    return build_tiny_model(folder / "tiny-classifier.onnx")


def _wait(app, condition, seconds: float = 600.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())

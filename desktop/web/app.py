"""`ewaste-web`: the same engine and model as the desktop app, as a Gradio page served
locally (default 127.0.0.1:7860), with nothing fetched from the internet.

    ewaste-web [--model MODEL.onnx] [--host 127.0.0.1] [--port 7860]

One photo: the predicted class, every class probability, the status (ok, needs review,
unknown item, error) and where the model looked. Many photos, or a zip of them: the
results table and a CSV download with exactly the app's CSV columns. The review threshold
is a slider. Anything the engine cannot read is an error row with the reason; nothing a
user uploads can stop the server. Uploads are limited in size and, for a zip, in count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

# Before Gradio is imported: no usage statistics sent anywhere.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from desktop.core.cam import cam_heatmap  # noqa: E402
from desktop.core.csv_export import result_row, results_header, write_results_csv  # noqa: E402
from desktop.core.engine import Engine  # noqa: E402
from desktop.core.model_info import ModelError  # noqa: E402
from desktop.core.preprocessing import (  # noqa: E402
    ImageLoadError,
    is_photo_file,
    load_display_rgb,
)
from desktop.core.results import (  # noqa: E402
    DEFAULT_REVIEW_THRESHOLD,
    STATUS_ERROR,
    STATUS_LABELS,
    Prediction,
    status_of,
)

MAX_UPLOAD = "25mb"  # per file, enforced by Gradio before our code runs
MAX_ZIP_MEMBERS = 5_000
MAX_ZIP_BYTES = 500 * 1024 * 1024  # unpacked: a zip bomb stops here
KEPT_WORKDIRS = 8  # recent requests whose photos and CSV stay on disk
_WORKDIRS: list[Path] = []
DISPLAY_SIDE = 480
# System fonts only: Gradio's default theme loads Google Fonts from the internet.
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
THEME = gr.themes.Default(
    font=[gr.themes.Font(name) for name in SYSTEM_FONTS],
    font_mono=[gr.themes.Font(name) for name in ("ui-monospace", "monospace")],
)


def verdict_text(prediction: Prediction, class_names: Sequence[str], threshold: float) -> str:
    status = status_of(prediction, threshold)
    if status == STATUS_ERROR:
        return f"**Error:** {prediction.error}"
    name = class_names[prediction.top_index]
    return f"**{name}** {prediction.confidence * 100:.1f} % · {STATUS_LABELS[status]}"


def overlay(path: str, prediction: Prediction) -> np.ndarray | None:
    """The photo with the predicted class's activation map laid over it in red."""
    if not prediction.ok:
        return None
    try:
        pixels = load_display_rgb(path, DISPLAY_SIDE).astype(np.float32)
    except ImageLoadError:
        return None
    if prediction.cam is None:
        return pixels.astype(np.uint8)
    heat = cam_heatmap(prediction.cam, pixels.shape[:2])[..., None]
    red = np.array([230.0, 30.0, 30.0])
    return (pixels * (1 - 0.55 * heat) + red * 0.55 * heat).clip(0, 255).astype(np.uint8)


def photos_in(uploads: Sequence[str], folder: Path) -> tuple[list[str], list[Prediction]]:
    """The uploaded files, each zip unpacked (image members only, safely) into folder, and
    an error row for each member that could not be unpacked."""
    paths: list[str] = []
    failed: list[Prediction] = []
    for number, upload in enumerate(uploads):
        if zipfile.is_zipfile(upload):
            try:
                unpacked, problems = _unpack(upload, folder / f"zip{number}")
            except (zipfile.BadZipFile, OSError) as exc:  # its index is broken
                failed.append(Prediction.failed(Path(upload).name, f"not a readable zip: {exc}"))
                continue
            paths += unpacked
            failed += problems
        else:
            paths.append(upload)
    return paths, failed


def _unpack(archive: str, folder: Path) -> tuple[list[str], list[Prediction]]:
    folder.mkdir(parents=True)
    paths, failed, total = [], [], 0
    with zipfile.ZipFile(archive) as bundle:
        members = [m for m in bundle.infolist() if not m.is_dir() and is_photo_file(m.filename)]
        for index, member in enumerate(members[:MAX_ZIP_MEMBERS]):
            total += member.file_size
            if total > MAX_ZIP_BYTES:
                break
            # Never the member's own path: "../../x.jpg" must not leave the folder.
            target = folder / f"{index:05d}-{Path(member.filename).name[:150]}"
            try:
                with bundle.open(member) as source, target.open("wb") as sink:
                    sink.write(source.read(member.file_size + 1)[: member.file_size])
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
                # Corrupt, encrypted or compressed in a way zipfile cannot read.
                name = f"{Path(archive).name}:{member.filename}"
                failed.append(Prediction.failed(name, f"cannot unpack from the zip: {exc}"))
                continue
            paths.append(str(target))
    return paths, failed


def _new_workdir() -> Path:
    """A folder for one request's photos and CSV; the oldest beyond KEPT_WORKDIRS go, so a
    server running for months does not fill its disk (the CSV link lives that long)."""
    folder = Path(tempfile.mkdtemp(prefix="ewaste-web-"))
    _WORKDIRS.append(folder)
    while len(_WORKDIRS) > KEPT_WORKDIRS:
        shutil.rmtree(_WORKDIRS.pop(0), ignore_errors=True)
    return folder


def build_app(engine: Engine) -> gr.Blocks:
    names = list(engine.class_names)

    def classify_one(upload: str | None, threshold_percent: float):
        if not upload:
            return "Upload a photo.", None, None
        prediction = engine.classify_file(upload)
        threshold = threshold_percent / 100
        probabilities = (
            {}
            if not prediction.ok
            else dict(zip(names, map(float, prediction.probabilities), strict=True))
        )
        return (
            verdict_text(prediction, names, threshold),
            probabilities,
            overlay(upload, prediction),
        )

    def classify_many(uploads: list[str] | None, threshold_percent: float):
        if not uploads:
            return None, None
        threshold = threshold_percent / 100
        workdir = _new_workdir()
        paths, unpack_failures = photos_in(uploads, workdir)
        predictions = [p for batch in engine.classify(paths, with_cam=False) for p in batch]
        predictions += unpack_failures
        csv_path = workdir / "ewaste-results.csv"
        write_results_csv(csv_path, predictions, names, threshold)
        rows = [result_row(p, names, threshold) for p in predictions]
        return {"headers": results_header(names), "data": rows}, str(csv_path)

    with gr.Blocks(title="E-Waste Sorter", analytics_enabled=False) as app:
        gr.Markdown(f"# E-Waste Sorter\nModel: `{engine.model_path.name}`, {len(names)} classes")
        threshold = gr.Slider(
            0, 100, value=DEFAULT_REVIEW_THRESHOLD * 100, step=1, label="Review below (%)"
        )
        with gr.Tab("One photo"):
            photo = gr.File(label="Photo", type="filepath", elem_id="photo")
            verdict = gr.Markdown(elem_id="verdict")
            with gr.Row():
                chart = gr.Label(num_top_classes=len(names), label="Class probabilities")
                looked = gr.Image(label="Where the model looked", interactive=False)
            for trigger in (photo.change, threshold.release):
                trigger(classify_one, [photo, threshold], [verdict, chart, looked], api_name=False)
        with gr.Tab("Many photos or a zip"):
            many = gr.File(
                label="Photos or .zip", file_count="multiple", type="filepath", elem_id="many"
            )
            table = gr.Dataframe(label="Results", interactive=False, wrap=True, elem_id="results")
            download = gr.File(label="CSV (the app's columns)")
            many.change(classify_many, [many, threshold], [table, download], api_name=False)
        gr.Button(visible=False).click(
            classify_one, [photo, threshold], [verdict, chart, looked], api_name="classify"
        )
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ewaste-web", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (7860)")
    args = parser.parse_args(argv)
    try:
        engine = Engine(args.model)
    except ModelError as exc:
        print(f"ewaste-web: error: {exc}", file=sys.stderr)
        return 2
    app = build_app(engine)
    app.queue(max_size=64).launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=MAX_UPLOAD,
        share=False,
        inbrowser=False,
        footer_links=[],  # no links to gradio.app
        ssr_mode=False,  # no Node.js server: one process, the page from Python
        theme=THEME,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

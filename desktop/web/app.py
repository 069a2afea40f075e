"""`ewaste-web`: the same engine and model as the desktop app, as a Gradio page served
locally (default 127.0.0.1:7860), with nothing fetched from the internet.

    ewaste-web [--model MODEL.onnx] [--host 127.0.0.1] [--port 7860]

One photo: the predicted class, every class probability, the status (ok, needs review,
unknown item, error) and where the model looked. Many photos, or a zip of them: a count
line, the results table (file, class, confidence, status, reason) and a CSV download with
exactly the app's CSV columns; each photo is named as the user knows it (its file name, or
zip:member), never by the server's temporary path. The review threshold is a slider that
also re-labels the last batch. Anything the engine cannot read is an error row with the
reason; nothing a user uploads can stop the server. Uploads are limited in size and, for a
zip, in count, and removed a day after they arrive and when the server stops (after a
crash, when the next one starts; not on Windows): a server running for months does not
fill its disk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

# Before Gradio is imported: no usage statistics sent anywhere.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import gradio.routes  # noqa: E402
import numpy as np  # noqa: E402

from desktop import package_version  # noqa: E402
from desktop.core.argtypes import port_number  # noqa: E402
from desktop.core.cam import cam_heatmap_over_image  # noqa: E402
from desktop.core.csv_export import results_csv_name, write_results_csv  # noqa: E402
from desktop.core.engine import Engine  # noqa: E402
from desktop.core.log_streams import forgiving_output, loggable, not_classified  # noqa: E402
from desktop.core.model_info import ModelError  # noqa: E402
from desktop.core.preprocessing import (  # noqa: E402
    ImageLoadError,
    input_rect,
    load_display_rgb,
)
from desktop.core.results import (  # noqa: E402
    DEFAULT_REVIEW_THRESHOLD,
    STATUS_ERROR,
    STATUS_LABELS,
    STATUS_UNKNOWN,
    Prediction,
    count_statuses,
    status_of,
)
from desktop.core.stop_signals import (  # noqa: E402
    Stopped,
    stop_signals_raise_once,
    stop_signals_wait,
)
from desktop.core.wording import counts_line, nearest_class, percent, plural  # noqa: E402
from desktop.web.uploads import (  # noqa: E402
    CACHE_CHECK_SECONDS,
    CACHE_KEEP_SECONDS,
    OTHER_ARCHIVES,
    keep_removing_dead_uploads,
    new_workdir,
    own_upload_folder,
    photos_in,
    remove_left_behind,
    remove_workdirs,
    sent_name,
    workdir_again,
)

# Per file, enforced by Gradio before our code runs; one file over it refuses the whole
# upload, so it admits any photo (120 MP at most decode) and a zip of a shift's photos.
MAX_UPLOAD = "200mb"
UPLOAD_HINT = f"each file up to {MAX_UPLOAD.removesuffix('mb')} MB"
DISPLAY_SIDE = 480
ALL_ADDRESSES = ("0.0.0.0", "[::]")  # --host: every network of this machine
# System fonts only: Gradio's default theme loads Google Fonts from the internet.
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
THEME = gr.themes.Default(
    font=[gr.themes.Font(name) for name in SYSTEM_FONTS],
    font_mono=[gr.themes.Font(name) for name in ("ui-monospace", "monospace")],
).set(
    # Text at 4.5:1 on white at the least (WCAG AA): the default's selected tab (orange
    # 500) was 2.8:1 and its grey secondary text (the slider's 0 and 100) 1.9:1.
    color_accent="*primary_700",
    body_text_color_subdued="*neutral_600",
)
# The verdict is the page's headline (the chart below it has none). The slider showed no
# sign of the keyboard's focus, and its arrow keys re-label the photo and the batch.
PAGE_CSS = (
    "#verdict p { font-size: 1.5rem; margin: 0.3em 0; }"
    " input[type=range]:focus { outline: 3px solid #1d4ed8; outline-offset: 2px; }"
)
# The verdict and the batch's counts are read out by a screen reader when they change: their
# text, not the box around it, where Gradio's timer ticks ("processing | 0.5s"). The Many
# tab's counts exist only once the tab is opened: marked when they appear. A download link
# (the batch's CSV) reads as its file, not as its size alone ("634.0 B").
PAGE_JS = """() => {
  const mark = () => {
    for (const id of ["verdict", "counts"]) {
      const text = document.querySelector(`#${id} [data-testid=markdown]`);
      if (text && !text.hasAttribute("aria-live")) text.setAttribute("aria-live", "polite");
    }
    for (const link of document.querySelectorAll("a[data-testid=download-link][download]")) {
      const size = link.textContent.replace(/[\\s⇣]+/g, " ").trim();
      const name = `Download ${link.download} (${size})`;
      if (link.getAttribute("aria-label") !== name) link.setAttribute("aria-label", name);
    }
  };
  mark();
  new MutationObserver(mark).observe(document.body, {
    childList: true, subtree: true, characterData: true,
    attributes: true, attributeFilter: ["download"],
  });
}"""


def markdown_literal(text: str) -> str:
    """`text` shown as it is in Markdown: a model's class names and a file's error are the
    model's and the uploader's words, and "<img src=http://...>" or "[a](http://...)" in
    them made every phone showing the page fetch from the network."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\g<0>", text)


_MARKDOWN_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")  # all of ASCII's, each escapable


def verdict_text(prediction: Prediction, class_names: Sequence[str], threshold: float) -> str:
    status = status_of(prediction, threshold)
    if status == STATUS_ERROR:
        return f"**Error:** {markdown_literal(prediction.error)}"
    name = markdown_literal(class_names[prediction.top_index])
    if status == STATUS_UNKNOWN:  # most likely none of the classes: the nearest is no headline
        return f"**Unknown item** · {nearest_class(name, prediction.confidence)}"
    return f"**{name}** {percent(prediction.confidence)} · {STATUS_LABELS[status]}"


def outcome(prediction: Prediction, class_names: Sequence[str], threshold: float) -> str:
    """The verdict of one photo for a log line: its status and nearest class, or why it
    could not be classified (the class names are the model's words: escaped too)."""
    status = status_of(prediction, threshold)
    if status == STATUS_ERROR:
        return f"not classified: {loggable(prediction.error)}"
    name = loggable(class_names[prediction.top_index])
    return f"{STATUS_LABELS[status]}, {name} {percent(prediction.confidence)}"


def log_batch(rows: Sequence[Prediction], threshold: float) -> None:
    """A batch's counts, and a line for each photo that could not be classified (the
    first LOGGED_FAILURES: a zip of thousands of broken files must not flood the log), in
    one write, so that another request's line never lands inside them."""
    counts = count_statuses(rows, threshold)
    said = [counts_line(len(rows), counts.ok, counts.review, counts.unknown, counts.error)]
    failed = [row for row in rows if row.error is not None]
    for row in failed[:LOGGED_FAILURES]:
        said.append(not_classified(row.path, row.error))
    if len(failed) > LOGGED_FAILURES:
        said.append(f"and {len(failed) - LOGGED_FAILURES} more not classified")
    log_request(*said)


LOGGED_FAILURES = 20


def log_request(*lines: str) -> None:
    """Timed lines on stdout for what the page classified: a service's log shows the page
    in use and which uploads failed, as a watch's does."""
    now = time.strftime("%H:%M:%S")
    say([f"{now} {line}" for line in lines])


RED = np.array([230.0, 30.0, 30.0])


def overlay(path: str, prediction: Prediction, engine: Engine) -> np.ndarray | None:
    """The photo with the predicted class's activation map laid over it, bright and red
    where the model looked: the map drawn where `engine`'s input lay over the photo (see
    `input_rect`)."""
    if not prediction.ok:
        return None
    try:
        photo = load_display_rgb(path, DISPLAY_SIDE)
    except ImageLoadError:
        return None
    if prediction.cam is None:
        return photo
    rect = input_rect(photo, engine.input_size, engine.info.resize)
    heat = cam_heatmap_over_image(prediction.cam, photo.shape[:2], rect)
    pixels = photo.astype(np.float32)
    # Where it looked stays bright and turns red; the rest is dimmed. A red tint alone
    # vanished for a red-green colour-blind worker (tan over tan): brightness does not.
    weight = heat[..., None]
    lit = pixels * (0.4 + 0.6 * weight)
    tint = 0.5 * weight
    return (lit * (1 - tint) + RED * tint).clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class BatchResult:
    """The last batch's rows (named as the user knows them), kept so the threshold slider
    can re-label them without classifying again."""

    predictions: list[Prediction]
    skipped: int
    csv_path: Path  # in the batch's own folder


RESULT_HEADERS = ["File", "Predicted class", "Confidence", "Status", "Reason"]
NO_RESULTS = {"headers": RESULT_HEADERS, "data": []}


def batch_view(result: BatchResult, names: Sequence[str], threshold: float):
    """The count line, the results table and the CSV (rewritten) at this threshold."""
    write_results_csv(result.csv_path, result.predictions, names, threshold)
    rows = []
    for prediction in result.predictions:
        code = status_of(prediction, threshold)
        status = STATUS_LABELS[code]
        if prediction.ok:
            shown = names[prediction.top_index]
            if code == STATUS_UNKNOWN:  # as the one-photo view: the nearest is no verdict
                shown = f"nearest: {shown}"
            confidence = percent(prediction.confidence)
            rows.append([prediction.path, shown, confidence, status, ""])
        else:
            rows.append([prediction.path, "", "", status, prediction.error])
    counts = count_statuses(result.predictions, threshold)
    line = counts_line(
        len(result.predictions), counts.ok, counts.review, counts.unknown, counts.error
    )
    if result.skipped:
        line += f" · {plural(result.skipped, 'non-image file')} skipped"
    return line, {"headers": RESULT_HEADERS, "data": rows}, str(result.csv_path)


def build_app(engine: Engine) -> gr.Blocks:
    names = list(engine.class_names)

    def classify_one(upload: str | None, threshold_percent: float):
        """The verdict, the bars and the map of one photo, and its prediction (kept so the
        threshold slider re-labels it without classifying it again)."""
        if not upload:
            return "Upload a photo.", None, None, None
        if upload.lower().endswith((".zip", *OTHER_ARCHIVES)):  # not "not an image file"
            archive = "**A zip or an archive:** send it on the Many photos or a zip tab."
            return archive, None, None, None
        prediction = engine.classify_file(upload)
        threshold = threshold_percent / 100
        log_request(
            f"one photo, {loggable(Path(upload).name)}: {outcome(prediction, names, threshold)}"
        )
        probabilities = (
            {}
            if not prediction.ok
            else dict(zip(names, map(float, prediction.probabilities), strict=True))
        )
        return (
            verdict_text(prediction, names, threshold),
            probabilities,
            # Without an activation map the photo would pass for one: none.
            overlay(upload, prediction, engine) if engine.has_cam else None,
            prediction,
        )

    def relabel_one(prediction: Prediction | None, upload: str | None, threshold_percent: float):
        """The verdict of the photo shown at this threshold; nothing changes while no photo
        is classified, or another is being (the state still holds the one before)."""
        if prediction is None or prediction.path != upload:
            return gr.skip()
        return verdict_text(prediction, names, threshold_percent / 100)

    def classify_many(sent: list[dict] | None, threshold_percent: float):
        """Run on Gradio's payload, not preprocessed: each file's path in Gradio's upload
        folder (Gradio refuses any other before this runs, preprocessed or not) and the
        name the browser sent, which Gradio's copy does not keep ('"' as %22, '?' gone,
        cut at 200 bytes)."""
        if not sent:
            return "", NO_RESULTS, None, None
        threshold_percent = threshold.preprocess(threshold_percent)  # its range checked
        paths = [file["path"] for file in sent]
        shown = [sent_name(file.get("orig_name"), file["path"]) for file in sent]
        workdir = new_workdir()
        upload = photos_in(paths, workdir, shown)
        # In input order, so each row takes its photo's name.
        classified = (p for batch in engine.classify(upload.paths, with_cam=False) for p in batch)
        predictions = [
            replace(prediction, path=name)
            for prediction, name in zip(classified, upload.names, strict=True)
        ]
        rows = upload.in_order(predictions + upload.failed)
        log_batch(rows, threshold_percent / 100)
        result = BatchResult(rows, upload.skipped, workdir / results_csv_name())
        return (*batch_view(result, names, threshold_percent / 100), result)

    def relabel(result: BatchResult | None, threshold_percent: float):
        if result is None:
            return "", NO_RESULTS, None
        # Its own folder, never a new one: new folders rotate old ones away, and one of
        # those could be a batch still being classified. It is made again if rotated away,
        # and then removed with the others when the server stops.
        workdir_again(result.csv_path.parent)
        return batch_view(result, names, threshold_percent / 100)

    with gr.Blocks(
        title="E-Waste Sorter",
        analytics_enabled=False,
        delete_cache=(CACHE_CHECK_SECONDS, CACHE_KEEP_SECONDS),
    ) as app:
        model = markdown_literal(engine.model_path.name)
        gr.Markdown(f"# E-Waste Sorter\nModel: {model}, {len(names)} classes")
        threshold = gr.Slider(
            0, 100, value=DEFAULT_REVIEW_THRESHOLD * 100, step=1, label="Review below (%)"
        )

        def follow_threshold(handler, inputs, outputs) -> None:
            """Run `handler` as the threshold changes: a drag, the arrow keys, each digit
            typed in the box, its reset button and the value the box takes when a number
            typed past an end is put back in range (`input` missed the last two, `release`
            came only from the mouse); of a run of them the last one runs, with no timer
            (quick, and one cut short left its timer showing)."""
            threshold.change(
                handler,
                inputs,
                outputs,
                api_name=False,
                trigger_mode="always_last",
                show_progress="hidden",
            )

        with gr.Tab("One photo"):
            photo = gr.File(label=f"Photo ({UPLOAD_HINT})", type="filepath", elem_id="photo")
            verdict = gr.Markdown(elem_id="verdict")
            with gr.Row():
                # No heading: the verdict above is the headline, and for an unknown item it
                # must not be the nearest class in large type.
                chart = gr.Label(
                    num_top_classes=len(names),
                    label="Class probabilities",
                    show_heading=False,
                    elem_id="chart",
                )
                looked = gr.Image(
                    label="Where the model looked",
                    alt_text="The photo, with a heat map over the parts that decided its class",
                    interactive=False,
                    elem_id="looked",
                    buttons=["download", "fullscreen"],  # "share" needs Hugging Face
                    visible=engine.has_cam,
                )
                if not engine.has_cam:  # a model converted without --cam: said, not faked
                    gr.Markdown(
                        "This model has no activation map (`ewaste-convert export --cam`): it "
                        "cannot show where it looked.",
                        elem_id="no-map",
                    )
            shown_photo = gr.State(None)
            photo.change(
                classify_one,
                [photo, threshold],
                [verdict, chart, looked, shown_photo],
                api_name=False,
            ).then(
                # The slider may have moved while the photo was classified.
                relabel_one,
                [shown_photo, photo, threshold],
                verdict,
                api_name=False,
                show_progress="hidden",  # instant: a timer would flash over the verdict
            )
            follow_threshold(relabel_one, [shown_photo, photo, threshold], verdict)
        with gr.Tab("Many photos or a zip"):
            many = gr.File(
                label=f"Photos or .zip ({UPLOAD_HINT})",
                file_count="multiple",
                type="filepath",
                height=220,  # a long upload list scrolls instead of pushing the results down
                elem_id="many",
            )
            counts = gr.Markdown(elem_id="counts")
            table = gr.Dataframe(
                value=NO_RESULTS,
                label="Results",
                interactive=False,
                wrap=True,
                column_widths=["38%", "17%", "13%", "14%", "18%"],
                elem_id="results",
            )
            download = gr.File(label="CSV (the app's columns)")
            last_batch = gr.State(None)
            many.change(
                classify_many,
                [many, threshold],
                [counts, table, download, last_batch],
                api_name="classify_many",
                preprocess=False,  # for the names the browser sent
            ).then(
                # The slider may have moved while the batch ran: label it at its current value.
                relabel,
                [last_batch, threshold],
                [counts, table, download],
                api_name=False,
                show_progress="hidden",
            )
            follow_threshold(relabel, [last_batch, threshold], [counts, table, download])
        gr.Button(visible=False).click(
            classify_one,
            [photo, threshold],
            [verdict, chart, looked, shown_photo],
            api_name="classify",
        )
    return app


def main(argv: Sequence[str] | None = None) -> int:
    with forgiving_output():  # a closed or full log (a service's) must not stop the page
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="ewaste-web",
        description="Serve the e-waste classifier as a local web page (nothing is fetched "
        "from the internet): one photo, or many photos and zips to a table and a CSV.",
    )
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on (127.0.0.1: this machine; 0.0.0.0: phones on its network too)",
    )
    parser.add_argument("--port", type=port_number, default=7860, help="port (7860)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    args = parser.parse_args(argv)
    host = bracketed(args.host)
    reason = unservable(host, args.port)
    if reason:
        print(f"ewaste-web: error: cannot serve on {host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    try:
        engine = Engine(args.model)
    except ModelError as exc:
        print(f"ewaste-web: error: {exc}", file=sys.stderr)
        return 2
    try:
        # SIGTERM too, so that the clean-up runs; from before anything is made or served,
        # so that a stop at any moment (a service manager's) cleans up as well. A second
        # stop (an impatient Ctrl+C) must not cut the clean-up short.
        with stop_signals_raise_once():
            return serve_and_clean_up(engine, host, args.port)
    except Stopped as stop:  # the way a server is stopped: a clean exit, said in its log
        log_request(f"stopped by {stop}")
        return 0


def serve_and_clean_up(engine: Engine, host: str, port: int) -> int:
    """Serve the page until it stops, then remove what it made, whatever stopped it."""
    uploads: Path | None = None
    app: gr.Blocks | None = None
    try:
        remove_left_behind()
        try:
            uploads = own_upload_folder()
        except OSError as exc:
            print(f"ewaste-web: error: no folder for uploads: {exc}", file=sys.stderr)
            return 2
        # Gradio fixed its own folder when imported (GRADIO_TEMP_DIR, or /tmp/gradio) and
        # makes a folder there for an editor this page does not offer: one left behind at
        # every run, and where another user's server made /tmp/gradio, no start at all.
        gradio.routes.DEFAULT_TEMP_DIR = str(uploads)
        keep_removing_dead_uploads(uploads)  # a daemon: it ends with the server
        allow_many_open_files()
        app = build_app(engine)
        return serve(app, host, port)
    finally:
        with stop_signals_wait():  # a first stop too, when the page ended otherwise
            remove_workdirs()
            if app is not None:
                app.close()
            if uploads is not None:
                shutil.rmtree(uploads, ignore_errors=True)


def allow_many_open_files() -> None:
    """Raise this process's soft limit of open files to its hard one, up to 65,536 (a shell
    or a service starts at 1,024): each upload in flight holds a socket and a file, a phone
    gone mid-upload holds them until the server stops, and at the limit the page answered
    no one. Where the system allows no more (or Windows, which has no such limit), as is."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    # macOS says "unlimited" and refuses more than its kern.maxfilesperproc (often 10,240).
    for wanted in (highest, MACOS_OPEN_FILES):
        if soft == resource.RLIM_INFINITY or soft >= wanted:
            return
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return


MAX_OPEN_FILES, MACOS_OPEN_FILES = 65_536, 10_240


def bracketed(host: str) -> str:
    """`host` as Gradio takes it: an IPv6 address in brackets ("::1" ended in a traceback,
    read as a host "" and a port ":1:7860")."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def unservable(host: str, port: int) -> str | None:
    """Why the page cannot be served at host:port, found by binding there and letting go;
    None when it can. Gradio's own check binds 127.0.0.1 only, and so blames the port for
    an address that is not this machine's."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # "[::1]"
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            bare, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, protocol) as probe:
            # As the server binds: a port its last run just let go of is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:  # "Address already in use", "Cannot assign requested address"
        return exc.strerror or str(exc)
    return None


def network_addresses() -> list[str]:
    """This machine's IPv4 addresses other machines may reach it at (not loopback): those
    of its name, and the one its route out would use (a UDP connect sends nothing)."""
    found = set()
    with contextlib.suppress(OSError):
        for *_, address in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(str(address[0]))
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, only routed
        found.add(probe.getsockname()[0])
    return sorted(address for address in found if not address.startswith("127."))


def say(lines: list[str]) -> None:
    """Print `lines` in one write, newline included: a reader never sees half of them, and a
    stop signal (its handler raises in this thread, between two writes) cannot leave the
    last line unfinished, with the next message run on to it."""
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()


def serve(app: gr.Blocks, host: str, port: int) -> int:
    """Serve the page until the server stops (a stop signal raises `Stopped`); 2 when it
    cannot be served there."""
    try:
        app.queue(max_size=64).launch(
            server_name=host,
            server_port=port,
            max_file_size=MAX_UPLOAD,
            share=False,
            inbrowser=False,
            footer_links=[],  # no links to gradio.app
            ssr_mode=False,  # no Node.js server: one process, the page from Python
            theme=THEME,
            css=PAGE_CSS,
            js=PAGE_JS,
            quiet=True,  # Gradio's banner suggests share=True, a public link: not for a station
            prevent_thread_lock=True,
        )
    except OSError as exc:  # the port taken (another ewaste-web?), or an address not ours
        reason = str(exc).split(". ")[0]  # Gradio's advice after it is for its own callers
        print(f"ewaste-web: error: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
        return 2
    said = [f"E-Waste Sorter page: {app.local_url} (Ctrl+C stops it)"]
    if host in ALL_ADDRESSES:  # "localhost" is this machine's name for it, not theirs
        # A phone finds no bare machine name without the network's own DNS: its address
        # (IPv4: served on "[::]", the page answers IPv6 only).
        addresses = network_addresses() if host == "0.0.0.0" else []
        places = [f"http://{address}:{port}/" for address in addresses]
        places.append(f"http://{socket.gethostname()}:{port}/")
        said.append(f"From other machines: {' or '.join(places)}")
    say(said)
    while app.is_running:
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

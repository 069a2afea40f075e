"""`ewaste-web`: a real server started by the test, driven by Debian's Chromium (Selenium)
and through its HTTP API; every request the page makes stays on this machine."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pytest

from child_signals import deliverable
from fixtures_images import write_solid
from tiny_model import AMBIGUOUS_COLOUR, PROTOTYPE_COLOURS, build_tiny_model, tiny_metadata

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# .ci/run installs Debian's chromium and chromium-driver and sets this: there a missing
# browser is a failure, not a skip. On a developer's machine without them it is a skip.
BROWSER_REQUIRED = os.environ.get("EWASTE_REQUIRE_BROWSER") == "1"
TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    model: Path, log_path: Path, env: dict[str, str] | None = None, host: str = "127.0.0.1"
):
    """`ewaste-web` on a free port of `host`, once its page answers: (process, url, log)."""
    port = free_port()
    log = log_path.open("w")
    options = ["--model", str(model), "--port", str(port), "--host", host]
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop.web.app", *options],
        stdout=log,  # a file, never a pipe nobody reads (a full pipe would block it)
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    local = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "::1": "[::1]"}.get(host, host)
    url = f"http://{local}:{port}/"
    deadline = time.monotonic() + TIMEOUT_S
    if not answers(url, process, deadline):
        process.kill()
        log.close()
        pytest.fail(f"the server did not answer: {Path(log.name).read_text()[-2000:]}")
    # The page may answer a moment before the command has said where it is served.
    while "(Ctrl+C stops it)" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return process, url, log


def answers(url: str, process: subprocess.Popen, deadline: float) -> bool:
    """Whether the page at `url` answers before `deadline`, while `process` runs."""
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The page on the tiny model with an activation map output, as `--cam` exports: its
    address and its log."""
    folder = tmp_path_factory.mktemp("web")
    model = build_tiny_model(folder / "tiny-cam.onnx", cam=True)
    process, url, log = start_server(model, folder / "server.log")
    yield url, Path(log.name)
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def server(served: tuple[str, Path]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        message = "Debian's chromium and chromium-driver are not installed (apt-get install)"
        if BROWSER_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


# Every visible text's colour against the background it sits on: those under WCAG AA's
# 4.5:1 (3:1 for large text), as [text, ratio].
LOW_CONTRAST_JS = """
const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => [r, g, b].map((v) => {
  v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const low = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const text = walker.currentNode.textContent.trim(), el = walker.currentNode.parentElement;
  const box = el.getBoundingClientRect(), style = getComputedStyle(el);
  if (!text || !box.width || style.visibility === "hidden") continue;
  const [a, b] = [lum(rgb(style.color)), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const large = parseFloat(style.fontSize) >= 24;
  if (ratio < (large ? 3 : 4.5)) low.push([text.slice(0, 40), ratio.toFixed(2)]);
}
return low;
"""


def wait_for(predicate, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def requested_hosts(driver) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith(("data:", "blob:")):
                hosts.add(urlparse(url).hostname)
    return hosts


def test_the_page_classifies_a_photo_and_a_bad_file_and_stays_offline(
    server: str, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    photo = write_solid(tmp_path / "battery.png", PROTOTYPE_COLOURS["Battery"])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")

    def verdict_for(path: Path, shown: str) -> str:
        """Upload one photo and wait until the verdict line contains `shown`."""
        upload = wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), "input"
        )[0]
        upload.send_keys(str(path))
        return wait_for(
            lambda: shown in (t := browser.find_element(By.ID, "verdict").text) and t, shown
        )

    browser.get(server)
    verdict = verdict_for(photo, "%")
    assert verdict.startswith("Battery") and verdict.endswith("ok")
    # The bars, without Gradio's big heading: the verdict is the headline (for an unknown
    # item the heading would name its nearest class).
    bar = "#chart .confidence-set"
    bars = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, bar), "the chart's bars")
    assert len(bars) == len(PROTOTYPE_COLOURS)
    assert browser.find_elements(By.CSS_SELECTOR, "#chart .output-class") == []
    # The activation map says what it is to a screen reader, not an empty alt.
    looked = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#looked img"), "the map")
    assert looked[0].get_attribute("alt").startswith("The photo, with a heat map")
    assert browser.find_elements(By.ID, "no-map") == []  # the model has one

    # Text a worker with low vision can read: the theme's orange tab and grey labels were not.
    assert browser.execute_script(LOW_CONTRAST_JS) == []

    # A screen reader says the verdict when it comes; the slider shows when it has the keys.
    live = browser.find_elements(By.CSS_SELECTOR, "#verdict [aria-live=polite]")
    assert len(live) == 1 and live[0].text == browser.find_element(By.ID, "verdict").text
    assert live[0].find_elements(By.CSS_SELECTOR, "[data-testid=status-tracker]") == []
    ring = browser.execute_script(
        "const slider = document.querySelector('input[type=range]'); slider.focus();"
        "const style = getComputedStyle(slider); return [style.outlineStyle, style.outlineWidth];"
    )
    assert ring == ["solid", "3px"]

    # The threshold's reset button re-labels the photo, as a drag does.
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element(By.CSS_SELECTOR, "input[type=number]")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("100", Keys.TAB)
    wait_for(lambda: browser.find_element(By.ID, "verdict").text.endswith("needs review"), "100")
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Reset to default value']").click()
    wait_for(lambda: browser.find_element(By.ID, "verdict").text.endswith("ok"), "the reset")
    assert box.get_attribute("value") == "70"

    browser.find_element(By.CSS_SELECTOR, "#photo button[aria-label='Clear']").click()
    error = verdict_for(broken, "Error")
    assert "not an image file" in error or "truncated" in error or "cannot" in error

    # Every request the page made (scripts, styles, fonts, the API) went to this machine.
    assert requested_hosts(browser) == {"127.0.0.1"}


def test_a_model_without_an_activation_map_shows_none(tiny_model_path, browser, tmp_path):
    from gradio_client import Client, handle_file
    from selenium.webdriver.common.by import By

    # The tiny model as built by default: converted without --cam.
    process, url, log = start_server(tiny_model_path, tmp_path / "server.log")
    try:
        photo = write_solid(tmp_path / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
        browser.get(url)
        upload = wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), "input"
        )[0]
        upload.send_keys(str(photo))
        wait_for(lambda: browser.find_element(By.ID, "verdict").text.startswith("Mouse"), "it")
        # A note in its place, not the plain photo under "Where the model looked".
        note = browser.find_element(By.ID, "no-map").text
        assert note.startswith("This model has no activation map")
        assert not [e for e in browser.find_elements(By.ID, "looked") if e.is_displayed()]
        assert "Where the model looked" not in browser.find_element(By.TAG_NAME, "body").text
        _, _, looked = Client(url, verbose=False).predict(
            handle_file(str(photo)), 70, api_name="/classify"
        )
        assert looked is None
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_threshold_relabels_the_photo_without_classifying_it_again(
    tiny_model_path, browser, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from desktop.core.engine import Engine
    from desktop.web.app import build_app

    engine = Engine(tiny_model_path, threads=1)
    classified = []
    classify_file = engine.classify_file
    engine.classify_file = lambda path, **options: (
        classified.append(path) or classify_file(path, **options)
    )
    app = build_app(engine)
    app.queue().launch(
        server_port=free_port(), prevent_thread_lock=True, ssr_mode=False, quiet=True
    )
    try:
        browser.get(app.local_url)
        upload = wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), "input"
        )[0]
        photo = write_solid(tmp_path / "battery.png", PROTOTYPE_COLOURS["Battery"])
        upload.send_keys(str(photo))
        wait_for(lambda: browser.find_element(By.ID, "verdict").text.endswith("ok"), "it")
        box = browser.find_element(By.CSS_SELECTOR, "input[type=number]")
        verdict = browser.find_element(By.ID, "verdict")
        for percent, status in (("100", "needs review"), ("1", "ok")):
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(percent, Keys.TAB)
            wait_for(lambda end=status: verdict.text.endswith(end), percent)
        assert len(classified) == 1
    finally:
        app.close()


def test_class_names_and_file_names_are_shown_as_text_not_markup(browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    from desktop.core.engine import Engine
    from desktop.web.app import build_app

    # A model's class names are its author's words: markup in them fetched from the network
    # on every phone showing the verdict.
    names = list(PROTOTYPE_COLOURS)
    names[0] = '<img src="http://example.invalid/x.png" alt="lure">'
    names[4] = "[Mouse](http://example.invalid/)"
    model = build_tiny_model(
        tmp_path / "[odd](http:x).onnx", metadata=tiny_metadata(class_names=names)
    )
    app = build_app(Engine(model, threads=1))
    app.queue().launch(
        server_port=free_port(), prevent_thread_lock=True, ssr_mode=False, quiet=True
    )
    try:
        browser.get(app.local_url)

        def verdict():
            return browser.find_element(By.ID, "verdict")

        for class_name, shown in (("Battery", names[0]), ("Mouse", names[4])):
            upload = wait_for(
                lambda: browser.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), "input"
            )[0]
            photo = write_solid(tmp_path / f"{class_name}.png", PROTOTYPE_COLOURS[class_name])
            upload.send_keys(str(photo))
            wait_for(lambda start=shown: verdict().text.startswith(start), shown)
            assert verdict().find_elements(By.CSS_SELECTOR, "img, a") == []
            browser.find_element(By.CSS_SELECTOR, "#photo button[aria-label='Clear']").click()
            wait_for(lambda: verdict().text == "Upload a photo.", "the cleared verdict")
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "Model: [odd](http:x).onnx, 10 classes" in body
        assert requested_hosts(browser) == {"127.0.0.1"}
    finally:
        app.close()


def many_photos_input(browser, server: str):
    """The page's "Many photos or a zip" tab opened, and its file input."""
    from selenium.webdriver.common.by import By

    browser.get(server)
    tab = "//button[@role='tab' and contains(., 'Many photos')]"
    wait_for(lambda: browser.find_elements(By.XPATH, tab), "the tabs")[0].click()
    return wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#many input[type=file]"), "the input"
    )[0]


def test_many_photos_and_a_zip_give_the_apps_csv_rows(server: str, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    files = [write_solid(tmp_path / f"{n.lower()}.png", c) for n, c in PROTOTYPE_COLOURS.items()]
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(files[0], "../../escape/mouse-copy.png")  # must not leave its folder
        bundle.writestr("notes.txt", "not a photo")
    upload = many_photos_input(browser, server)
    # Photos the tiny model is 98.7-99.4 % sure of: under 100 %, even as the CSV writes it.
    upload.send_keys("\n".join(str(p) for p in [files[3], files[9], archive]))
    table = wait_for(
        lambda: "mouse-copy.png" in (t := browser.find_element(By.ID, "results").text) and t,
        "the results table",
    )
    assert "mobile.png" in table and "washing machine.png" in table
    assert "notes.txt" not in table and not (tmp_path.parent / "escape").exists()
    # Named as the user knows them (zip:member), never by the server's temporary folders.
    assert "more.zip:../../escape/mouse-copy.png" in table and "/tmp" not in table
    assert "Predicted class" in table and "Status" in table
    counts = browser.find_element(By.ID, "counts").text
    assert counts.startswith("3 results:") and "1 non-image file skipped" in counts
    # Read out when it changes: the tab's counts are marked once the tab shows them.
    live = browser.find_elements(By.CSS_SELECTOR, "#counts [aria-live=polite]")
    assert len(live) == 1 and live[0].text == counts  # the text, not Gradio's timer
    assert browser.execute_script(LOW_CONTRAST_JS) == []  # the table and its file list too

    # Dragging the review threshold to 100 % re-labels the batch without a new upload.
    from selenium.webdriver.common.action_chains import ActionChains

    slider = browser.find_element(By.CSS_SELECTOR, "input[type=range]")
    drag = (
        ActionChains(browser)
        .click_and_hold(slider)
        .move_by_offset(slider.size["width"] // 2 - 1, 0)
    )
    drag.release().perform()
    wait_for(  # once no event is running (the line then shows no timer)
        lambda: browser.find_element(By.ID, "counts").text.startswith("3 results: 0 ok · 3 need"),
        "the batch re-labelled " + repr(browser.find_element(By.ID, "counts").text),
    )

    # A threshold typed into its box counts at once, without leaving the box.
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element(By.CSS_SELECTOR, "input[type=number]")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("50", Keys.ENTER)
    wait_for(
        lambda: browser.find_element(By.ID, "counts").text.startswith("3 results: 3 ok"),
        "the batch re-labelled at the threshold typed",
    )
    assert browser.switch_to.active_element == box

    # A number typed past the end, digit by digit as a person types: the box puts back
    # 100 when left, and the rows follow it (not the "15" typed on the way).
    box.send_keys(Keys.CONTROL, "a")
    for digit in "150":
        box.send_keys(digit)
        time.sleep(0.4)
    box.send_keys(Keys.TAB)
    wait_for(
        lambda: browser.find_element(By.ID, "counts").text.startswith("3 results: 0 ok · 3 need"),
        "the batch re-labelled at 100 % " + repr(browser.find_element(By.ID, "counts").text),
    )
    assert box.get_attribute("value") == "100"


def test_rows_are_named_as_the_browser_sent_the_files(server: str, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    # Names Gradio's own copies do not keep: '"' becomes %22, "?*|<>:\\" are dropped, and
    # names are cut at 200 bytes, so two that differ only at their end would become one.
    long = "shift-7-" + "x" * 220
    shown = ['Samsung 32" TV.png', "odd ?*|<>:\\ name.png", f"{long}-1.png", f"{long}-2.png"]
    colours = ["Television", "Printer", "Mouse", "Battery"]
    photos = [
        write_solid(tmp_path / n, PROTOTYPE_COLOURS[c]) for n, c in zip(shown, colours, strict=True)
    ]
    upload = many_photos_input(browser, server)
    upload.send_keys("\n".join(str(p) for p in photos))
    wait_for(lambda: browser.find_element(By.ID, "counts").text.startswith("4 results"), "the rows")
    cells = browser.find_elements(By.CSS_SELECTOR, "#results [role=gridcell][data-col='0']")
    assert [cell.text for cell in cells] == shown
    link = browser.find_element(By.CSS_SELECTOR, "a[href*='ewaste-results-']")
    # Read out as the file it downloads, not as its size alone ("634.0 B").
    name = link.get_attribute("download")
    assert re.fullmatch(
        rf"Download {re.escape(name)} \(\d+(\.\d+)? [KMG]?B\)", link.accessible_name
    )
    with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as response:
        rows = list(csv.DictReader(response.read().decode("utf-8-sig").splitlines()))
    assert [(row["path"], row["predicted_class"]) for row in rows] == list(
        zip(shown, colours, strict=True)
    )

    from desktop.web.uploads import sent_name

    # A name with folders (no browser sends one) shows its last part; none, the copy's.
    assert sent_name("../../etc/pcb.png", "/cache/1f/pcb.png") == "pcb.png"
    assert sent_name(None, "/cache/1f/copy.png") == sent_name("..", "/cache/1f/copy.png")
    assert sent_name("", "/cache/1f/copy.png") == "copy.png"


def test_the_http_api_answers_like_the_page(server: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    photo = write_solid(tmp_path / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    client = Client(server, verbose=False)
    verdict, probabilities, _ = client.predict(handle_file(str(photo)), 70, api_name="/classify")
    assert verdict.startswith("**Mouse**") and probabilities["label"] == "Mouse"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    verdict, _, _ = client.predict(handle_file(str(broken)), 70, api_name="/classify")
    assert verdict.startswith("**Error:**")
    archive = tmp_path / "shift.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(photo, "mouse.png")
    verdict, _, _ = client.predict(handle_file(str(archive)), 70, api_name="/classify")
    assert verdict == "**A zip or an archive:** send it on the Many photos or a zip tab."


def test_the_log_has_a_line_for_each_photo_and_batch_and_names_what_failed(served, tmp_path):
    from gradio_client import Client, handle_file

    url, log = served
    mouse = write_solid(tmp_path / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    client = Client(url, verbose=False)
    client.predict(handle_file(str(mouse)), 70, api_name="/classify")
    client.predict(
        [handle_file(str(mouse)), handle_file(str(broken))], 70, api_name="/classify_many"
    )
    time_stamp = r"\d\d:\d\d:\d\d"
    said = log.read_text()
    assert re.search(rf"^{time_stamp} one photo, mouse\.png: ok, Mouse [\d.]+ %$", said, re.M), said
    batch = rf"^{time_stamp} 2 results: 1 ok · 0 need review · 1 error$"
    assert re.search(batch, said, re.M), said
    failed = rf"^{time_stamp} not classified: broken\.png: not an image file"
    assert re.search(failed, said, re.M), said


def test_a_name_sent_with_a_line_break_stays_on_its_log_line(capsys) -> None:
    import numpy as np

    from desktop.core.results import Prediction
    from desktop.web.app import log_batch, outcome

    sent = Prediction("bro\nken.png\n12:00:00 2 results: 2 ok", None, error="not an image")
    log_batch([sent], 0.7)
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 2 and said[1].endswith(
        "not classified: bro\\nken.png\\n12:00:00 2 results: 2 ok: not an image"
    )
    # A class name is the model's words: escaped too.
    sure = Prediction("a.png", np.array([0.9, 0.1], dtype=np.float32))
    assert outcome(sure, ["Bat\ntery", "PCB"], 0.7) == "ok, Bat\\ntery 90.0 %"


def test_a_batchs_failures_are_logged_at_most_20_in_one_write(monkeypatch) -> None:
    from desktop.core.results import Prediction
    from desktop.web import app

    writes = []
    monkeypatch.setattr(app, "say", writes.append)
    rows = [Prediction(f"IMG_{i}.jpg", None, error="truncated") for i in range(25)]
    app.log_batch(rows, 0.7)
    [lines] = writes  # one write: another request's line cannot land inside it
    assert lines[0].endswith("25 results: 0 ok · 0 need review · 25 errors")
    assert sum("not classified: IMG_" in line for line in lines) == 20
    assert lines[-1].endswith("and 5 more not classified") and len(lines) == 22


def test_the_batch_api_takes_its_threshold_and_only_files_uploaded_to_it(server, tmp_path):
    import httpx
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    # The batch runs on Gradio's payload as it came (for the names the browser sent):
    # the threshold is still the slider's, range checked, ...
    photo = write_solid(tmp_path / "mobile.png", PROTOTYPE_COLOURS["Mobile"])  # 98.7 % sure
    client = Client(server, verbose=False)
    line, _, _ = client.predict([handle_file(str(photo))], 100, api_name="/classify_many")
    assert line.startswith("1 result: 0 ok · 1 needs review")
    with pytest.raises(AppError, match="greater than maximum value 100"):
        client.predict([handle_file(str(photo))], 150, api_name="/classify_many")
    # ... and Gradio still refuses a file on the server that no one uploaded.
    payload = {"path": str(photo), "orig_name": "mobile.png", "meta": {"_type": "gradio.FileData"}}
    call = f"{server}gradio_api/call/classify_many"
    event = httpx.post(call, json={"data": [[payload], 70]}, timeout=30).json()["event_id"]
    answer = httpx.get(f"{call}/{event}", timeout=60).text
    assert answer.startswith("event: error") and "Mobile" not in answer


def test_photos_with_the_same_name_stay_apart_in_a_batch(server: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    (tmp_path / "camA").mkdir()
    (tmp_path / "camB").mkdir()
    first = write_solid(tmp_path / "camA" / "IMG_0001.png", PROTOTYPE_COLOURS["Battery"])
    second = write_solid(tmp_path / "camB" / "IMG_0001.png", PROTOTYPE_COLOURS["Mouse"])
    client = Client(server, verbose=False)
    # The first photo twice too: Gradio stores both copies at one path on the server.
    uploads = [handle_file(str(p)) for p in (first, second, first)]
    line, table, csv_path = client.predict(uploads, 70, api_name="/classify_many")
    assert line.startswith("3 results: 3 ok")
    shown = [(row[0], row[1]) for row in table["data"]]
    assert shown == [
        ("IMG_0001.png", "Battery"),
        ("IMG_0001 (2).png", "Mouse"),
        ("IMG_0001 (3).png", "Battery"),
    ]
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = [(row["path"], row["predicted_class"]) for row in csv.DictReader(handle)]
    assert rows == shown
    assert Path(csv_path).name.startswith("ewaste-results-")  # a batch's own name


def test_a_batchs_rows_keep_the_order_the_files_were_sent_in(server: str, tmp_path: Path):
    from gradio_client import Client, handle_file

    battery = write_solid(tmp_path / "battery.png", PROTOTYPE_COLOURS["Battery"])
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04 cut short")
    mouse = write_solid(tmp_path / "mouse.png", PROTOTYPE_COLOURS["Mouse"])
    uploads = [handle_file(str(p)) for p in (battery, damaged, mouse)]
    _, table, csv_path = Client(server, verbose=False).predict(
        uploads, 70, api_name="/classify_many"
    )
    # The damaged zip where it was sent, not after every photo.
    assert [row[0] for row in table["data"]] == ["battery.png", "damaged.zip", "mouse.png"]
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == [
            "battery.png",
            "damaged.zip",
            "mouse.png",
        ]


def test_a_number_never_takes_the_name_of_another_photo_sent(server: str, tmp_path: Path):
    from gradio_client import Client, handle_file

    from desktop.web import uploads

    sent = [
        ("a", "IMG_1.jpg", "Mouse"),
        ("b", "IMG_1.jpg", "Battery"),
        ("c", "IMG_1 (2).jpg", "Printer"),
    ]
    photos = []
    for folder, name, label in sent:
        (tmp_path / folder).mkdir()
        photos.append(write_solid(tmp_path / folder / name, PROTOTYPE_COLOURS[label]))
    client = Client(server, verbose=False)
    _, table, _ = client.predict(
        [handle_file(str(p)) for p in photos], 70, api_name="/classify_many"
    )
    # The real "IMG_1 (2).jpg" keeps its name; the second IMG_1.jpg takes the next free one.
    assert [(row[0], row[1]) for row in table["data"]] == [
        ("IMG_1.jpg", "Mouse"),
        ("IMG_1 (3).jpg", "Battery"),
        ("IMG_1 (2).jpg", "Printer"),
    ]

    # A zip's members alike: one listed twice (zips allow it), and a camera's "(2)".
    archive = tmp_path / "shift.zip"
    with zipfile.ZipFile(archive, "w") as bundle, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it writes
        for photo in photos:
            bundle.write(photo, photo.name)
    upload = uploads.photos_in([str(archive), str(archive)], tmp_path / "work")
    assert upload.names == [
        "shift.zip:IMG_1.jpg",
        "shift.zip:IMG_1 (3).jpg",
        "shift.zip:IMG_1 (2).jpg",
        "shift (2).zip:IMG_1.jpg",
        "shift (2).zip:IMG_1 (3).jpg",
        "shift (2).zip:IMG_1 (2).jpg",
    ]


def test_a_stopped_server_leaves_no_upload_behind(tiny_model_path: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    photo = write_solid(tmp_path / "pcb.png", PROTOTYPE_COLOURS["PCB"])
    temp, cache = tmp_path / "temp", tmp_path / "gradio-cache"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(cache)}
    process, url, log = start_server(tiny_model_path, tmp_path / "server.log", env)
    try:
        Client(url, verbose=False).predict([handle_file(str(photo))], 70, api_name="/classify_many")
        held = [p for p in cache.rglob("*") if p.is_file()]
        assert any(p.name == "pcb.png" for p in held) and list(temp.glob("ewaste-web-*"))
    finally:
        process.send_signal(signal.SIGTERM)  # how a service manager stops it ...
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # ... and an impatient Ctrl+C during the clean-up
        assert process.wait(timeout=30) == 0
        log.close()
    # SIGINT when both were pending before the server ran (a busy machine): the lower first.
    stop = r"^\d\d:\d\d:\d\d stopped by SIG(TERM|INT)$"
    assert re.search(stop, Path(log.name).read_text(), re.M)
    # Gradio's copies, and the empty temporary file it leaves for each one: the server's
    # own folder in the cache went whole, and nothing Gradio made beside it stayed (its
    # folder for an editor this page does not offer, made where another user's server
    # may own it).
    assert list(cache.iterdir()) == []
    assert not list(temp.glob("ewaste-web-*"))  # the batches' photos and CSVs


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("log", [">&-", ">/dev/full"], ids=["closed", "full"])
def test_a_closed_or_full_log_does_not_stop_the_page(tiny_model_path, tmp_path, log) -> None:
    # A service's output closed, or its log on a full disk: the server ended at once, with
    # a traceback (Gradio asked a missing stdout whether it was a terminal) or exit 120.
    port = free_port()
    command = [sys.executable, "-m", "desktop.web.app", "--model", str(tiny_model_path)]
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            ["sh", "-c", f'exec "$@" --port {port} {log}', "sh", *command], stderr=stderr
        )
    try:
        served = answers(f"http://127.0.0.1:{port}/", process, time.monotonic() + TIMEOUT_S)
        assert served, (tmp_path / "stderr.log").read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "stderr.log").read_text()
    finally:
        process.kill()
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_ctrl_c_pressed_again_and_again_never_cuts_the_clean_up_short(tiny_model_path, tmp_path):
    # An impatient user: a SIGINT every 10 ms from the first stop until the server ends.
    # One landing between two steps of the clean-up ended it with a KeyboardInterrupt, its
    # uploads left behind; one in the second Python takes to exit, with -2 (killed).
    temp, cache = tmp_path / "temp", tmp_path / "gradio-cache"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(cache)}
    said = tmp_path / "server.log"
    with deliverable(signal.SIGINT):  # not inherited as ignored (a background pytest)
        process, _, log = start_server(tiny_model_path, said, env)
    try:
        assert list(cache.glob("ewaste-web-uploads-*"))
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            process.send_signal(signal.SIGINT)
            time.sleep(0.01)
        assert process.wait(timeout=30) == 0, said.read_text()
    finally:
        process.kill()
        log.close()
    assert "Traceback" not in said.read_text()
    assert not list(cache.glob("ewaste-web-uploads-*"))


def test_a_new_server_removes_what_a_killed_one_left_behind(tiny_model_path, tmp_path) -> None:
    # What a server killed with -9 (or a power cut) leaves: its upload folder and batches'.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    temp, cache = tmp_path / "temp", tmp_path / "gradio-cache"
    dead = [cache / f"ewaste-web-uploads-{ended.pid}-k2x_9q", temp / f"ewaste-web-{ended.pid}-a1b2"]
    # A running server's (this test's PID stands for one), and folders not named as ours.
    alive = [cache / f"ewaste-web-uploads-{os.getpid()}-z9", temp / f"ewaste-web-{os.getpid()}-y8"]
    others = [temp / "ewaste-web-notes", temp / "ewaste-web-12-"]
    for folder in dead + alive + others:
        folder.mkdir(parents=True)
        write_solid(folder / "pcb.png", PROTOTYPE_COLOURS["PCB"])
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(cache)}
    process, url, log = start_server(tiny_model_path, tmp_path / "server.log", env)
    try:
        assert [folder.exists() for folder in dead + alive + others] == [False, False] + [True] * 4
        # Its own, named so that the next server can tell when it is gone.
        assert list(cache.glob(f"ewaste-web-uploads-{process.pid}-*"))
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_a_restarted_server_with_its_predecessors_pid_removes_its_folders(
    tmp_path, monkeypatch
) -> None:
    # In a container the server is often the same PID each time it starts: its killed
    # predecessor's folders bear the PID that is now its own.
    from desktop.web import uploads

    monkeypatch.setattr(uploads.tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    left = tmp_path / f"ewaste-web-uploads-{os.getpid()}-k2x"
    left.mkdir()
    uploads.remove_left_behind()
    assert not left.exists()


def test_on_windows_no_server_is_taken_for_gone(monkeypatch) -> None:
    # os.kill(pid, 0) asks nothing there: 0 is CTRL_C_EVENT, sent to the other server.
    from desktop.web import uploads

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert not uploads._running(ended.pid)
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(uploads.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(uploads.os, "name", "nt")
    assert uploads._running(ended.pid) and sent == []


def test_the_map_of_a_letterboxing_model_is_laid_over_the_photo_not_its_padding(tmp_path):
    import numpy as np
    from PIL import Image

    from desktop.core.engine import Engine
    from desktop.core.preprocessing import contract
    from desktop.core.results import Prediction
    from desktop.web.app import overlay
    from tiny_model import tiny_metadata

    wide = tmp_path / "wide.png"
    Image.new("RGB", (400, 100), (0, 255, 0)).save(wide)  # 4:1: a quarter of the input high
    letterbox = {**tiny_metadata(cam=True), "preprocessing": contract("letterbox")}
    engines = {
        resize: Engine(build_tiny_model(tmp_path / f"{resize}.onnx", cam=True, metadata=meta))
        for resize, meta in (("stretch", None), ("letterbox", letterbox))
    }
    over_padding = np.zeros((4, 2), np.float32)
    over_padding[0] = 1.0  # the input's top rows: white padding above a letterboxed photo
    probabilities = np.full(10, 0.1, np.float32)
    looked = Prediction(str(wide), probabilities, cam=over_padding)
    stretched = overlay(str(wide), looked, engines["stretch"]).astype(int)
    letterboxed = overlay(str(wide), looked, engines["letterbox"]).astype(int)
    assert stretched[0, :, 0].min() > 100  # red over the photo's top, where the map is hot
    assert letterboxed[..., 0].max() < 5  # none: that part of the map lies over padding

    # Brighter where it looked, not only redder: a red tint on a grey photo came out darker
    # than the rest, and a red-green colour-blind worker could not find it.
    grey = tmp_path / "grey.png"
    Image.new("RGB", (100, 100), (128, 128, 128)).save(grey)
    shown = overlay(str(grey), replace(looked, path=str(grey)), engines["stretch"])
    luminance = shown.astype(float) @ np.array([0.2126, 0.7152, 0.0722])
    assert luminance[:10].mean() > 1.5 * luminance[-10:].mean()


def test_the_map_of_an_item_cropping_model_is_laid_over_the_item_only(tmp_path):
    import numpy as np
    from PIL import Image

    from desktop.core.engine import Engine
    from desktop.core.preprocessing import contract
    from desktop.core.results import Prediction
    from desktop.web.app import overlay
    from tiny_model import tiny_metadata

    pixels = np.full((300, 400, 3), 128, np.uint8)  # a grey table
    pixels[100:150, 250:300] = (0, 0, 255)  # a small blue item
    photo = tmp_path / "table.png"
    Image.fromarray(pixels).save(photo)
    item = {**tiny_metadata(cam=True), "preprocessing": contract("item")}
    engine = Engine(build_tiny_model(tmp_path / "item.onnx", cam=True, metadata=item))
    looked = Prediction(str(photo), np.full(10, 0.1, np.float32), cam=np.ones((4, 2)))
    shown = overlay(str(photo), looked, engine).astype(int)
    # Hot all over the input: the item's square lit and reddened; the table the crop
    # left out dimmed, as where the model did not look.
    assert shown[110:140, 260:290, 0].min() > 100  # red added over the blue item
    assert shown[:80, :200].max() < 0.5 * 128 and shown[250:, :].max() < 0.5 * 128


def test_a_batchs_folder_goes_after_a_day(tmp_path: Path, monkeypatch) -> None:
    from desktop.web import uploads

    monkeypatch.setattr(uploads.tempfile, "tempdir", str(tmp_path))
    try:
        old = uploads.new_workdir()
        (old / "ewaste-results.csv").write_text("path\n")
        day_ago = time.time() - uploads.CACHE_KEEP_SECONDS - 60
        os.utime(old, (day_ago, day_ago))
        recent = uploads.new_workdir()
        assert not old.exists() and recent.is_dir()  # a day old, not the 8th before
        assert recent.name.startswith(f"ewaste-web-{os.getpid()}-")
    finally:
        uploads.remove_workdirs()


def test_past_the_kept_number_of_batches_the_oldest_folder_goes_not_the_new_one(
    tmp_path: Path, monkeypatch
) -> None:
    from desktop.web import uploads

    # A busy station within one day: the request just made needs its folder (its photos and
    # CSV link); the one made longest ago is what goes.
    monkeypatch.setattr(uploads.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(uploads, "_WORKDIRS", [])  # none left by another test
    try:
        folders = []
        for _ in range(uploads.KEPT_WORKDIRS + 1):
            folders.append(uploads.new_workdir())
            assert folders[-1].is_dir()  # the request's own folder, there to write into
            (folders[-1] / "ewaste-results.csv").write_text("path\n")
        assert not folders[0].exists()
        assert all((folder / "ewaste-results.csv").is_file() for folder in folders[1:])
        assert len(list(tmp_path.iterdir())) == uploads.KEPT_WORKDIRS
    finally:
        uploads.remove_workdirs()


def test_uploads_cut_off_are_removed_while_the_server_runs(tmp_path, monkeypatch) -> None:
    from desktop.web import uploads

    # A phone gone mid-upload leaves Gradio's temporary file at the top of the upload
    # folder; before, they piled up until the disk was full and every phone got "HTTP 500".
    folder = tmp_path / "ewaste-web-uploads-1-x"
    (folder / "0123abcd").mkdir(parents=True)
    finished = folder / "0123abcd" / "photo.jpg"  # Gradio's own, kept for its day
    cut, live = folder / "tmpcut", folder / "tmplive"
    # The first photo of a long upload of many: written long ago, but Gradio holds it open
    # until the last one has arrived, and only then moves it below.
    first_of_many = folder / "tmpfirst"
    for path in (finished, cut, live, first_of_many):
        path.write_bytes(b"\xff" * 1024)
    dead = time.time() - uploads.DEAD_UPLOAD_SECONDS - 60
    for path in (finished, cut, first_of_many):
        os.utime(path, (dead, dead))
    monkeypatch.setattr(uploads, "SWEEP_SECONDS", 0.05)

    with first_of_many.open("ab"):
        stop = uploads.keep_removing_dead_uploads(folder)
        try:
            wait_for(lambda: not cut.exists(), "the sweep")
            time.sleep(0.2)  # a few sweeps more
        finally:
            stop.set()
    assert finished.is_file() and live.is_file() and first_of_many.is_file()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/limits")
def test_the_server_raises_its_limit_of_open_files(tiny_model_path, tmp_path) -> None:
    import resource

    # Each upload in flight holds a socket and a file: at a shell's 1,024 (here 256) a few
    # hundred phones gone mid-upload left the page answering no one.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard <= 256:
        pytest.skip(f"this machine's hard limit of open files is {hard}")
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    low = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # noqa: E731
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "desktop.web.app", "--model", str(tiny_model_path),
             "--port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=low,
        )  # fmt: skip
    try:
        wait_for(lambda: "(Ctrl+C stops it)" in log_path.read_text(), "the server")
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        soft = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert soft.split()[3] == str(min(hard, 65536))
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_no_writable_temporary_folder_is_said_in_one_line(tiny_model_path: Path) -> None:
    # A hardened service may have none; the tests can write somewhere (as root, anywhere),
    # so Python's list of places to try is emptied instead.
    command = (
        "import sys, tempfile; tempfile._candidate_tempdir_list = lambda: []; "
        "from desktop.web import main; sys.exit(main(sys.argv[1:]))"
    )
    options = ["--model", str(tiny_model_path), "--port", str(free_port())]
    result = subprocess.run(
        [sys.executable, "-c", command, *options], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    said = "ewaste-web: error: no writable temporary folder for the uploads: set TMPDIR to one"
    assert result.stderr.startswith(said) and result.stderr.count("\n") == 1, result.stderr


def test_a_port_already_taken_is_said_in_one_line(tiny_model_path, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "desktop.web.app", "--model", str(tiny_model_path)]
            + ["--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "cache")},
        )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"ewaste-web: error: cannot serve on 127.0.0.1:{port}: Address already in use\n"
    )
    assert not list((tmp_path / "cache").glob("ewaste-web-uploads-*"))  # removed as at a stop


def run_web(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "desktop.web.app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("port", ["99999", "-5", "0"])
def test_a_port_out_of_range_is_a_usage_error(port: str) -> None:
    result = run_web("--port", port)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: ewaste-web")
    assert f"error: argument --port: must be from 1 to 65535, got {port}" in result.stderr


def test_an_address_not_this_machines_is_said_as_such(tiny_model_path: Path) -> None:
    # 192.0.2.1 is kept for documentation (RFC 5737): never a machine's own address.
    port = free_port()
    result = run_web("--model", str(tiny_model_path), "--host", "192.0.2.1", "--port", str(port))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"ewaste-web: error: cannot serve on 192.0.2.1:{port}: Cannot assign requested address\n"
    )

    from desktop.web.app import unservable

    # An IPv6 address as Gradio takes it, in brackets: checked as the address it is.
    with socket.socket(socket.AF_INET6) as taken:
        try:
            taken.bind(("::1", 0))
        except OSError:
            pytest.skip("this machine has no IPv6 loopback")
        taken.listen()
        assert unservable("[::1]", taken.getsockname()[1]) == "Address already in use"
    assert unservable("[::1]", free_port()) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "::1"])
def test_the_page_is_served_on_every_network_or_an_ipv6_address(
    tiny_model_path: Path, tmp_path: Path, host: str
) -> None:
    from desktop.web.app import network_addresses

    if ":" in host and not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    process, url, log = start_server(tiny_model_path, tmp_path / "server.log", host=host)
    process.terminate()
    process.wait(timeout=30)
    log.close()
    said = (tmp_path / "server.log").read_text()
    port = urlparse(url).port
    others = [line for line in said.splitlines() if line.startswith("From other machines: ")]
    assert bool(others) == (host != "::1"), said  # not "localhost", theirs or not
    if others:  # a phone finds no bare machine name: the (IPv4) addresses come first
        ipv4 = network_addresses() if host == "0.0.0.0" else []  # "::" answers IPv6 only
        places = [f"http://{address}:{port}/" for address in ipv4]
        places.append(f"http://{socket.gethostname()}:{port}/")
        assert others == [f"From other machines: {' or '.join(places)}"]
        assert all(not address.startswith("127.") for address in network_addresses())
    assert "Traceback" not in said


def test_the_lines_saying_where_the_page_is_are_written_whole_before_a_stop(monkeypatch):
    # A stop signal's handler raises in the main thread between two writes: the address
    # line written apart from its newline ran on into Gradio's "Closing server ..." in CI.
    from desktop.core.stop_signals import Stopped
    from desktop.web.app import say

    class StoppedAfterOneWrite(io.StringIO):
        def write(self, text: str) -> int:
            if self.getvalue():
                raise Stopped(signal.SIGTERM)
            return super().write(text)

    out = StoppedAfterOneWrite()
    monkeypatch.setattr(sys, "stdout", out)
    say(["E-Waste Sorter page: http://127.0.0.1:7860/", "From other machines: http://vm:7860/"])
    assert out.getvalue().splitlines(keepends=True) == [
        "E-Waste Sorter page: http://127.0.0.1:7860/\n",
        "From other machines: http://vm:7860/\n",
    ]


def test_a_stop_the_moment_the_page_answers_is_a_clean_exit(tiny_model_path, tmp_path) -> None:
    # A service manager may stop it as soon as it is up: the stop handlers are in place
    # before the page is served, or SIGTERM would end it without its clean-up.
    process, _, log = start_server(tiny_model_path, tmp_path / "server.log")
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        log.close()


def test_the_web_app_never_imports_tensorflow(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = (
        "import sys, desktop.web.app\n"
        "print(sorted({'tensorflow', 'keras', 'trainer', 'converter'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_zip_is_unpacked_within_its_folder_and_its_limits(tmp_path: Path, monkeypatch):
    from desktop.web import uploads

    photo = write_solid(tmp_path / "p.png", PROTOTYPE_COLOURS["PCB"])
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(5):
            bundle.write(photo, f"../../up-{index}.png")
        bundle.writestr("readme.txt", "x")
    monkeypatch.setattr(uploads, "MAX_ZIP_MEMBERS", 3)
    notes = tmp_path / "notes.txt"  # uploaded with a folder's photos
    notes.write_text("pallet 7")
    upload = uploads.photos_in([str(archive), str(photo), str(notes)], tmp_path / "work")
    unpacked = [Path(p) for p in upload.paths[:-1]]
    assert len(unpacked) == 3 and upload.paths[-1] == str(photo)
    assert all(p.parent == tmp_path / "work" / "zip0" for p in unpacked)
    assert upload.names == [f"a.zip:../../up-{i}.png" for i in range(3)] + ["p.png"]
    assert upload.skipped == 2  # counted as ewaste-classify counts a folder's, not an error
    # What the limit left out is said, never dropped silently.
    [cut] = upload.failed
    assert cut.path == "a.zip"
    assert cut.error.startswith("2 photos not unpacked: one upload's zips hold at most 3")
    monkeypatch.setattr(uploads, "MAX_ZIP_BYTES", photo.stat().st_size * 2)  # a zip bomb's brake
    assert len(uploads.photos_in([str(archive)], tmp_path / "work2").paths) == 2
    # The limits hold for an upload's zips together, not each (many small zips of bombs).
    small = tmp_path / "b.zip"
    with zipfile.ZipFile(small, "w") as bundle:
        bundle.write(photo, "one.png")
    upload = uploads.photos_in([str(small), str(small), str(small)], tmp_path / "together")
    assert len(upload.paths) == 2 and [row.path for row in upload.failed] == ["b (3).zip"]

    monkeypatch.undo()  # the real limits again
    # Two zips, the first without photos, and a member that cannot be unpacked.
    empty, broken = tmp_path / "empty.zip", tmp_path / "broken.zip"
    with zipfile.ZipFile(empty, "w") as bundle:
        bundle.writestr("notes.txt", "x")
        # What a Mac adds to a zip: neither a photo nor counted as a skipped file.
        bundle.writestr("__MACOSX/shift/._good.png", b"\x00\x05\x16\x07")
        bundle.writestr("shift/.DS_Store", b"\x00\x00\x00\x01Bud1")
    with zipfile.ZipFile(broken, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.write(photo, "good.png")
        bundle.writestr("bad.png", os.urandom(4000))  # incompressible: 4000 bytes of data
    raw = bytearray(broken.read_bytes())
    start = raw.find(b"bad.png") + len(b"bad.png") + 2000  # inside its data
    raw[start : start + 20] = bytes(20)  # the CRC no longer matches
    broken.write_bytes(bytes(raw))
    cut_short = tmp_path / "cut.zip"
    cut_short.write_bytes(broken.read_bytes()[:100])  # an upload that stopped midway
    upload = uploads.photos_in([str(empty), str(broken), str(cut_short)], tmp_path / "work3")
    assert [Path(p).name for p in upload.paths] == ["00000-good.png"]
    assert [p.path for p in upload.failed] == ["broken.zip:bad.png", "cut.zip"]
    assert upload.failed[1].error == "not a readable zip (damaged or cut)"
    assert upload.skipped == 1  # empty.zip's notes.txt

    # A member's name as long as a disk takes, in letters of two bytes each: unpacked under
    # a name the disk takes too, and shown as the zip names it.
    long_name = "плата-" + "П" * 118 + ".png"  # 250 bytes
    named = tmp_path / "named.zip"
    with zipfile.ZipFile(named, "w") as bundle:
        bundle.write(photo, f"shift/{long_name}")
    upload = uploads.photos_in([str(named)], tmp_path / "work4")
    assert upload.failed == [] and upload.names == [f"named.zip:shift/{long_name}"]
    [unpacked] = upload.paths
    assert Path(unpacked).read_bytes() == photo.read_bytes() and unpacked.endswith(".png")

    # A zip inside the zip is not opened, and says so in its row.
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as bundle:
        bundle.write(named, "day2/named.zip")
    upload = uploads.photos_in([str(outer)], tmp_path / "work5")
    assert upload.paths == [] and upload.skipped == 0
    [inner] = upload.failed
    assert inner.path == "outer.zip:day2/named.zip" and "not opened" in inner.error


def test_only_a_file_named_zip_is_unpacked(tmp_path: Path) -> None:
    # A Word or Excel file, an app package: zips inside, whose pictures are no photos.
    from desktop.web import uploads

    picture = write_solid(tmp_path / "image1.jpeg", PROTOTYPE_COLOURS["Mouse"])
    photo = write_solid(tmp_path / "battery.png", PROTOTYPE_COLOURS["Battery"])
    documents = []
    for name in ("receipt.docx", "stock.xlsx", "scanner.apk"):
        documents.append(tmp_path / name)
        with zipfile.ZipFile(documents[-1], "w") as bundle:
            bundle.write(picture, "word/media/image1.jpeg")
            bundle.writestr("word/document.xml", "<w:document/>")
        assert zipfile.is_zipfile(documents[-1])
    archive = tmp_path / "shift.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(picture, "image1.jpeg")
    paths = [str(p) for p in [*documents, photo, archive]]
    upload = uploads.photos_in(paths, tmp_path / "work")
    assert upload.names == ["battery.png", "shift.zip:image1.jpeg"]
    assert upload.failed == [] and upload.skipped == 3  # counted, as a folder's receipts are


def test_an_archive_other_than_a_zip_is_an_error_row_saying_to_send_a_zip(tmp_path) -> None:
    from desktop.web import uploads

    rar, seven = tmp_path / "shift.rar", tmp_path / "shift.7z"
    for archive in (rar, seven):
        archive.write_bytes(b"Rar!\x1a\x07\x00 photos inside")
    upload = uploads.photos_in([str(rar), str(seven)], tmp_path / "work")
    assert [(row.path, row.error) for row in upload.failed] == [
        (name, "not unpacked: only .zip archives are; send its photos, or a zip")
        for name in ("shift.rar", "shift.7z")
    ]
    assert upload.skipped == 0  # not counted with the receipts, which nobody looks into


def test_an_empty_zip_is_an_error_row(tmp_path: Path) -> None:
    from desktop.web import uploads

    empty, folders, notes = tmp_path / "empty.zip", tmp_path / "folders.zip", tmp_path / "n.zip"
    with zipfile.ZipFile(empty, "w"):
        pass  # no members at all
    with zipfile.ZipFile(folders, "w") as bundle:  # folders and a Mac's files, no one's own
        bundle.mkdir("shift")
        bundle.writestr("__MACOSX/shift/._good.png", b"\x00\x05\x16\x07")
    with zipfile.ZipFile(notes, "w") as bundle:
        bundle.writestr("notes.txt", "pallet 7")
    upload = uploads.photos_in([str(empty), str(folders), str(notes)], tmp_path / "work")
    assert [(p.path, p.error) for p in upload.failed] == [
        ("empty.zip", "an empty zip: it holds no files"),
        ("folders.zip", "an empty zip: it holds no files"),
    ]
    assert upload.paths == [] and upload.skipped == 1  # n.zip's notes, counted as before


def test_a_zip_listing_too_many_files_is_refused_before_its_index_is_read(tmp_path, monkeypatch):
    # zipfile reads a zip's whole index first: 3.5 million entries took 160 s and 1.8 GB.
    from desktop.web import uploads

    photo = write_solid(tmp_path / "p.png", PROTOTYPE_COLOURS["PCB"])
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(photo, "p.png")
        for index in range(200):
            bundle.writestr(f"empty-{index}.txt", "")
    index_size = uploads.zip_index_bytes(str(archive))
    assert index_size > 200 * 46  # at least a fixed header a file

    monkeypatch.setattr(uploads, "MAX_ZIP_INDEX_BYTES", index_size - 1)
    opened = []
    monkeypatch.setattr(uploads.zipfile, "ZipFile", lambda *a, **k: opened.append(a))
    upload = uploads.photos_in([str(archive)], tmp_path / "work")
    assert opened == [] and upload.paths == []
    assert [p.error for p in upload.failed] == ["not unpacked: it lists far more than 5000 files"]


def test_the_threshold_relabels_the_last_batch_and_rewrites_its_csv(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    from desktop.core.engine import Engine
    from desktop.web.app import BatchResult, batch_view

    engine = Engine(tiny_model_path, threads=1)
    photo = write_solid(tmp_path / "unsure.png", AMBIGUOUS_COLOUR)
    prediction = engine.classify_file(str(photo))
    result = BatchResult([prediction], skipped=0, csv_path=tmp_path / "r.csv")
    names = list(engine.class_names)
    low, high = prediction.confidence - 0.01, prediction.confidence + 0.01

    line, table, csv_path = batch_view(result, names, low)
    assert table["data"][0][3] == "ok" and line == "1 result: 1 ok · 0 need review · 0 errors"
    assert ",ok," in Path(csv_path).read_text()
    line, table, csv_path = batch_view(result, names, high)
    assert table["data"][0][3] == "needs review" and "1 needs review" in line
    assert ",review," in Path(csv_path).read_text()


def test_an_upload_over_the_limit_is_refused_by_the_server(server: str, tmp_path: Path) -> None:
    import httpx

    from desktop.web.app import MAX_UPLOAD

    limit = int(MAX_UPLOAD.removesuffix("mb")) * 1024 * 1024
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:
        handle.truncate(limit + 1024)  # sparse: streamed from disk, never held in memory
    with huge.open("rb") as body:
        too_big = {"files": ("huge.jpg", body, "image/jpeg")}
        response = httpx.post(f"{server}gradio_api/upload", files=too_big, timeout=120)
    assert response.status_code == 413
    small = {"files": ("small.jpg", b"\xff" * 1024, "image/jpeg")}
    assert httpx.post(f"{server}gradio_api/upload", files=small, timeout=60).status_code == 200


def test_an_unknown_item_is_not_headlined_as_its_nearest_class(tmp_path: Path) -> None:
    import numpy as np

    from desktop.core.results import Prediction
    from desktop.web.app import BatchResult, batch_view, verdict_text

    names = list(PROTOTYPE_COLOURS)
    probabilities = np.full(len(names), 0.05 / (len(names) - 1))
    probabilities[4] = 0.95
    sure = Prediction("/shift/mouse.jpg", probabilities)
    sun = Prediction("/shift/sun.png", probabilities, unknown_score=9.0, unknown=True)
    assert verdict_text(sure, names, 0.7) == f"**{names[4]}** 95.0 % · ok"
    assert verdict_text(sun, names, 0.7) == (
        f"**Unknown item** · nearest class {names[4]} (95.0 % among the known classes)"
    )
    # Nor is it in the batch table's class column; the CSV keeps its documented columns.
    result = BatchResult([sure, sun], skipped=0, csv_path=tmp_path / "r.csv")
    _, table, csv_path = batch_view(result, names, 0.7)
    assert [row[1:4] for row in table["data"]] == [
        [names[4], "95.0 %", "ok"],
        [f"nearest: {names[4]}", "95.0 %", "unknown item"],
    ]
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = [(row["predicted_class"], row["status"]) for row in csv.DictReader(handle)]
    assert rows == [(names[4], "ok"), (names[4], "unknown")]


def test_python_dash_m_desktop_web_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "desktop.web", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: ewaste-web"), done.stderr

"""`ewaste-classify --ray` on a real local Ray cluster started by the test: a head node and
one worker node, each its own processes. Its CSV is the plain command's, byte for byte, bad
files included; a worker killed mid-run loses and duplicates nothing."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from child_signals import deliverable

CLASSIFY = Path(sys.executable).with_name("ewaste-classify")
RAY = Path(sys.executable).with_name("ray")
# Every Ray process of these tests gets its own home: Ray keeps an auth token in ~/.ray, and
# one left by another Ray on this machine would lock these nodes out of each other. The
# cluster checks that token, as docs/cluster.md says to start one: RAY_AUTH_MODE=token on
# every node and for every command.
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
# Set in the environment of these nodes, which every process of theirs inherits: how the
# tests tell their own Ray processes from those of another cluster on this machine.
NODE_MARK = "EWASTE_TEST_RAY_NODE"
NODE_OPTIONS = ["--num-cpus=1", "--object-store-memory=100000000", "--disable-usage-stats"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head node and a worker node on this machine; the address to give --ray."""
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    ENV["HOME"] = str(tmp_path_factory.mktemp("home"))
    ENV[NODE_MARK] = str(temp)
    ray("get-auth-token", "--generate")  # the token every machine copies
    head = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"]
    address = f"127.0.0.1:{port}"
    try:
        ray("start", *head, *NODE_OPTIONS)
        ray("start", f"--address={address}", *NODE_OPTIONS)
        yield address
    finally:
        stop_nodes_marked(str(temp))


def ray(*args: str) -> None:
    """The `ray` command; its own words when it fails (a temporary folder too deep for
    Ray's sockets, say), which check=True would hide."""
    result = subprocess.run([str(RAY), *args], env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"ray {' '.join(args)} failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")


def stop_nodes_marked(mark: str) -> None:
    """Stop the Ray processes these tests started, and no others: `ray stop` stops every
    Ray process of the machine, a developer's own cluster included. Again until none is
    left: a raylet may start an agent while it is being stopped."""
    deadline = time.monotonic() + 60
    while (own := processes_marked(mark)) and time.monotonic() < deadline:
        for process in own:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(own, timeout=10)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
    assert not own, f"Ray processes of the tests still run: {own}"


def processes_marked(mark: str) -> list[psutil.Process]:
    """The processes whose environment holds the mark, and theirs."""
    own = {}
    for process in psutil.process_iter():
        try:
            if has_mark(process, mark):
                own[process.pid] = process
                own.update((child.pid, child) for child in process.children(recursive=True))
        except psutil.Error:  # gone, a zombie, or another user's
            continue
    return list(own.values())


def has_mark(process: psutil.Process, mark: str) -> bool:
    # Ray's agents retitle themselves over the start of their environment, NUL bytes where
    # psutil stops reading: read all of it where the system shows it.
    if not Path("/proc/self/environ").is_file():  # no /proc (macOS)
        return process.environ().get(NODE_MARK) == mark
    try:
        environment = Path(f"/proc/{process.pid}/environ").read_bytes()
    except OSError:  # gone, or another user's
        return False
    return f"\0{NODE_MARK}={mark}\0".encode() in b"\0" + environment


def classify(
    *args: str | Path, timeout: int = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    command = [str(CLASSIFY), *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=cwd
    )


def test_the_cluster_has_two_nodes(cluster: str) -> None:
    check = "import ray; ray.init(address=%r); print(len([n for n in ray.nodes() if n['Alive']]))"
    result = subprocess.run(
        [sys.executable, "-c", check % cluster], capture_output=True, text=True, env=ENV
    )
    assert result.stdout.strip().splitlines()[-1] == "2", result.stderr


def test_the_csv_is_the_plain_commands_bad_files_included(
    cluster: str, tiny_model_path: Path, sample_images_dir: Path, bad_inputs_dir: Path, tmp_path
) -> None:
    plain, on_ray = tmp_path / "plain.csv", tmp_path / "ray.csv"
    inputs = [sample_images_dir, bad_inputs_dir]
    assert classify(*inputs, "--model", tiny_model_path, "--csv", plain).returncode == 0
    # --model as typed in its own folder: the workers, elsewhere, get its whole path.
    model, here = ["--model", tiny_model_path.name], tiny_model_path.parent
    result = classify(*inputs, *model, "--csv", on_ray, "--ray", cluster, cwd=here)
    assert result.returncode == 0, result.stderr
    assert on_ray.read_bytes() == plain.read_bytes()
    with open(on_ray, newline="", encoding="utf-8-sig") as handle:
        statuses = [row["status"] for row in csv.DictReader(handle)]
    assert "error" in statuses and "ok" in statuses


def test_an_address_nobody_answers_at_fails_at_once_and_writes_nothing(
    tiny_model_path: Path, sample_images_dir: Path, tmp_path: Path
) -> None:
    # Ray itself retries such an address for some 14 minutes before it gives up.
    address = f"127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    out.mkdir()
    inputs = [sample_images_dir, "--model", tiny_model_path, "--csv", out / "r.csv"]
    result = classify(*inputs, "--ray", address, timeout=60)
    assert result.returncode == 3
    assert f"cannot reach the Ray cluster at {address} (Connection refused)" in result.stderr
    assert "nothing written" in result.stderr
    assert list(out.iterdir()) == []  # no r.partial.csv to warn about next time


def test_a_head_is_found_at_an_ipv4_or_a_bracketed_ipv6_address() -> None:
    from desktop.cluster.ray_classify import _check_reachable

    for family, host, written in (
        (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
        (socket.AF_INET6, "::1", "[::1]"),  # as Ray takes it
    ):
        with socket.socket(family) as head:
            try:
                head.bind((host, 0))
            except OSError:
                pytest.skip(f"this machine has no {host}")
            head.listen()
            _check_reachable(f"{written}:{head.getsockname()[1]}")  # no error: it answers
    with pytest.raises(RuntimeError, match="is not a Ray address: give HOST:PORT"):
        _check_reachable("head")


def test_a_photo_folder_given_after_ray_is_not_taken_for_its_address(
    sample_images_dir: Path, tmp_path: Path
) -> None:
    result = classify("--csv", tmp_path / "r.csv", "--ray", sample_images_dir, timeout=60)
    assert result.returncode == 2
    assert f"--ray took {sample_images_dir} for the cluster's address" in result.stderr


def ray_workers() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "PhotoClassifier" in command or "MapWorker" in command:
            found.append(process)
    return found


def start_on_ray(
    cluster: str, model: Path, large_jpeg: Path, tmp_path: Path, count: int
) -> tuple[subprocess.Popen, Path, Path]:
    """`ewaste-classify --ray` started on `count` links to a 4000x3000 photo (decoding keeps
    the run going for seconds): (the run, its photo folder, its --csv)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(count):
        os.link(large_jpeg, photos / f"shot_{index:04d}.jpg")
    out = tmp_path / "ray.csv"
    command = [str(CLASSIFY), photos, "--csv", out, "--model", model, "--batch", "8"]
    run = subprocess.Popen(
        [*map(str, command), "--ray", cluster],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    return run, photos, out


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    cluster: str, tiny_model_path: Path, large_jpeg_path: Path, tmp_path
) -> None:
    run, photos, out = start_on_ray(cluster, tiny_model_path, large_jpeg_path, tmp_path, 240)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(ray_workers()) < 2 and run.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # let both workers take batches
        victims = ray_workers()
        assert victims and run.poll() is None, "the run ended before a worker could be killed"
        victims[0].send_signal(signal.SIGKILL)
        _, stderr = run.communicate(timeout=300)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 0, stderr
    with open(out, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    paths = [row["path"] for row in rows]
    assert len(paths) == 240 and len(set(paths)) == 240  # nothing lost, nothing twice
    assert paths == sorted(str(p) for p in photos.iterdir())  # the plain command's order
    assert {row["status"] for row in rows} <= {"ok", "review"}


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_keeps_the_rows_the_workers_finished(
    cluster: str, tiny_model_path: Path, large_jpeg_path: Path, tmp_path, stop, status
) -> None:
    # Ctrl+C, or SIGTERM from a service manager (Ray sets its own handler for that one).
    # 1,200 photos: long enough to be stopped after its first progress line.
    with deliverable(stop):
        run, _, out = start_on_ray(cluster, tiny_model_path, large_jpeg_path, tmp_path, 1200)
    try:
        # Not a terminal: a "classified N/1200" line every few seconds.
        for line in run.stderr:
            if line.startswith("classified ") and not line.startswith("classified 0/"):
                break
        assert run.poll() is None, "the run ended before it could be stopped"
        run.send_signal(stop)
        stderr = run.stderr.read()
        run.wait(timeout=120)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == status, stderr
    assert not out.exists()  # an incomplete run never takes the CSV's name
    with open(tmp_path / "ray.partial.csv", newline="", encoding="utf-8-sig") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)]
    assert 0 < len(paths) < 1200, stderr
    assert paths == sorted(set(paths))  # once each, in input order
    assert f"after {len(paths)} of 1200 images" in stderr

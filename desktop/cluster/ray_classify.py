"""`ewaste-classify PATH... --csv OUT --ray [ADDRESS]`: the station's engine on Ray Data.

Each Ray actor holds one `desktop.core.engine.Engine` (one ONNX Runtime session, one
thread) and classifies a batch of paths with the same prediction loop as the plain
command; the driver puts the rows back in input order, so the CSV is the plain command's,
row for row, bad files included. Paths must be readable from every node (a shared folder),
and so must `--model` when given (without it each node uses the model its install ships).

A worker that dies mid-run costs nothing: Ray Data restarts the actor and runs its batch
again, and each input row is kept once, by its index.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from desktop.core.engine import Engine
from desktop.core.results import Prediction
from desktop.core.stop_signals import STOP_SIGNALS

DEFAULT_BATCH = 32
PROBE_SECONDS = 5  # a wrong address is said at once: Ray itself retries for 14 minutes


class PhotoClassifier:
    """A Ray Data actor: one engine, reused for every batch the actor is given."""

    def __init__(self, model: str | None, flip_average: bool = False) -> None:
        self.engine = Engine(model, threads=1)
        self.flip_average = flip_average

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        paths = [str(path) for path in batch["path"]]
        rows = [
            prediction
            for predictions in self.engine.classify(
                paths, batch_size=max(1, len(paths)), flip_average=self.flip_average, with_cam=False
            )
            for prediction in predictions
        ]
        return {"index": list(batch["index"]), "result": [_encode(p) for p in rows]}


def classify_on_ray(
    paths: Sequence[str | os.PathLike[str]],
    *,
    address: str | None,
    model: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    workers: int | None = None,
    flip_average: bool = False,
) -> Iterator[tuple[int, Prediction]]:
    """(index into `paths`, prediction) for every path, once each, as the pool of Ray actors
    finishes them (not in input order): a caller stopped midway keeps what came.

    address: a running cluster ("auto", "host:6379", "ray://host:10001"); None starts Ray
    on this machine, or joins one already running here. workers: actors in the pool (None:
    one per CPU of the cluster). Raises RuntimeError if the cluster skipped a path.
    """
    # Ray's own INFO lines (start-up, execution plans, progress) would bury the command's
    # progress and summary; its warnings and errors still show. Ray Data reads its level
    # when it sets up its logging, so it is set before Ray is imported.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    import ray  # the optional extra `cluster`; only this function needs it

    if not ray.is_initialized():
        _check_reachable(address)
        # ray.init sets its own SIGTERM handler, which exits on the spot: the command's own
        # handlers go back, so a stop unwinds and keeps the finished rows.
        on_main_thread = threading.current_thread() is threading.main_thread()
        ours = {s: signal.getsignal(s) for s in STOP_SIGNALS} if on_main_thread else {}
        ray.init(
            address=address,
            log_to_driver=False,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
        for signum, handler in ours.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(signum, handler)
    items = [{"index": index, "path": str(path)} for index, path in enumerate(paths)]
    if not items:
        return
    size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), size * 4))
    classified = dataset.map_batches(
        PhotoClassifier,
        fn_constructor_kwargs={"model": model, "flip_average": flip_average},
        batch_size=batch_size,
        batch_format="numpy",
        # Ray Data's actors restart when killed and run their batch again, by default.
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
    )
    seen: set[int] = set()
    for row in classified.iter_rows():
        index = int(row["index"])
        if index not in seen:  # a batch run again after a worker died: once, by index
            seen.add(index)
            yield index, _decode(row["result"])
    if len(seen) < len(items):
        raise RuntimeError(f"the cluster returned no row for {len(items) - len(seen)} photos")


def _check_reachable(address: str | None) -> None:
    """A RuntimeError saying why, unless the head at "host:port" takes connections (None,
    "auto" and "ray://" addresses are left to Ray)."""
    if address is None or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # "[::1]:6379", as Ray takes IPv6
    if not host or not port.isdigit():
        raise RuntimeError(f"{address} is not a Ray address: give HOST:PORT, such as head:6379")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RuntimeError(f"cannot reach the Ray cluster at {address} ({reason})") from exc


def _encode(prediction: Prediction) -> str:
    """One row as JSON: plain types travel through Arrow whatever the model."""
    probabilities = prediction.probabilities
    return json.dumps(
        {
            "path": prediction.path,
            "probabilities": None if probabilities is None else probabilities.tolist(),
            "error": prediction.error,
            "unknown_score": prediction.unknown_score,
            "unknown": prediction.unknown,
        }
    )


def _decode(text: str) -> Prediction:
    row = json.loads(text)
    if row["probabilities"] is None:
        return Prediction.failed(row["path"], row["error"])
    return Prediction(
        row["path"],
        np.array(row["probabilities"], dtype=np.float32),
        unknown_score=row["unknown_score"],
        unknown=row["unknown"],
    )

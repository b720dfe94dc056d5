"""The real inference worker process: faces from several cameras batched together, results routed back."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from fer_stream.inference.worker import InferenceSpec, main
from fer_stream.messages import FaceRequest, FaceResult, ModelStatus
from fer_stream.queues import BoundedQueue

REPO = Path(__file__).resolve().parents[1]
CAMERAS = ("lobby", "door", "yard")


@pytest.fixture(scope="module")
def model_path() -> Path | None:
    if os.environ.get("FER_STREAM_MODEL"):
        return Path(os.environ["FER_STREAM_MODEL"])
    if (REPO / "models" / "DEFAULT").is_file():
        return None  # the shipped default
    pytest.skip("no model: ship one into models/ (models/DEFAULT) or set FER_STREAM_MODEL")


def start_worker(spec: InferenceSpec, cameras: tuple[str, ...]):
    """The worker process with its queues: (process, requests, results by camera, status, heartbeat)."""
    ctx = multiprocessing.get_context("spawn")
    requests: BoundedQueue[FaceRequest] = BoundedQueue(ctx, "t-requests", 64)
    results = {c: BoundedQueue(ctx, f"t-results-{c}", 64) for c in cameras}
    status: BoundedQueue[ModelStatus] = BoundedQueue(ctx, "t-status", 4)
    heartbeat = ctx.Value("d", 0.0, lock=False)
    worker = ctx.Process(target=main, args=(spec, requests, results, status, os.getpid(), heartbeat), daemon=True)
    worker.start()
    return worker, requests, results, status, heartbeat


def test_worker_batches_across_cameras_and_routes_results(model_path: Path | None) -> None:
    # A long max_wait: a batch can only leave early by filling up, so batches of 6 prove mixing.
    spec = InferenceSpec(model_path, "auto", 1, max_batch_size=6, max_wait_ms=2000, log_level="WARNING")
    worker, requests, results, status, heartbeat = start_worker(spec, CAMERAS)
    try:
        ready = _take(status, 1, timeout=120)
        assert ready and isinstance(ready[0], ModelStatus) and ready[0].pid == worker.pid
        beat = heartbeat.value
        time.sleep(0.6)
        assert heartbeat.value > beat > 0, "the worker beats while it waits for faces"
        from fer_stream.inference.engine import default_model_path
        from fer_stream.model_card import load_card

        card, _ = load_card(model_path or default_model_path())
        size = card.input_size
        rng = np.random.default_rng(0)
        sent = []
        for i in range(12):
            camera = CAMERAS[i % 3]
            face = rng.integers(0, 255, (size, size), dtype=np.uint8)
            requests.put(FaceRequest(camera=camera, track_id=i, frame_id=100 + i, captured_at=time.time(),
                                     captured_monotonic=time.monotonic(), face=face))
            sent.append((camera, i))
        got: dict[str, list[FaceResult]] = {c: _take(results[c], 4, timeout=60) for c in CAMERAS}
        for camera, items in got.items():
            assert len(items) == 4
            assert all(r.camera == camera for r in items)
            assert sorted(r.track_id for r in items) == sorted(t for c, t in sent if c == camera)
            for r in items:
                assert r.probabilities.shape == (len(card.labels),)
                assert abs(float(r.probabilities.sum()) - 1.0) < 1e-3
                assert r.classified_at >= r.captured_monotonic
        # Results of one batch share its classified_at: two full batches of 6, each mixing all cameras.
        batches: dict[float, list[FaceResult]] = {}
        for r in (r for items in got.values() for r in items):
            batches.setdefault(r.classified_at, []).append(r)
        assert sorted(len(b) for b in batches.values()) == [6, 6]
        assert all({r.camera for r in b} == set(CAMERAS) for b in batches.values())
    finally:
        worker.terminate()  # SIGTERM: the worker leaves its loop and exits 0
        worker.join(30)
    assert worker.exitcode == 0


def test_faces_pending_at_a_stop_are_classified(model_path: Path | None) -> None:
    """A batch still waiting for company when SIGTERM comes is answered before the worker exits."""
    spec = InferenceSpec(model_path, "auto", 1, max_batch_size=32, max_wait_ms=600_000, log_level="WARNING")
    worker, requests, results, status, _ = start_worker(spec, ("lobby",))
    try:
        assert _take(status, 1, timeout=120), "the model loads"
        size = _take_size(model_path)
        for i in range(3):
            requests.put(FaceRequest(camera="lobby", track_id=i, frame_id=i, captured_at=time.time(),
                                     captured_monotonic=time.monotonic(), face=np.full((size, size), 90, np.uint8)))
        deadline = time.monotonic() + 10
        while requests.qsize() and time.monotonic() < deadline:  # the worker has taken them into its batch
            time.sleep(0.05)
        time.sleep(0.3)
        assert results["lobby"].qsize() == 0, "nothing is due for ten minutes"
    finally:
        worker.terminate()
        worker.join(30)
    assert worker.exitcode == 0
    assert sorted(r.track_id for r in _take(results["lobby"], 3, timeout=10)) == [0, 1, 2]


def _take_size(model_path: Path | None) -> int:
    from fer_stream.inference.engine import default_model_path
    from fer_stream.model_card import load_card

    return load_card(model_path or default_model_path())[0].input_size


def _take(q: BoundedQueue, n: int, timeout: float) -> list:
    items: list = []
    deadline = time.monotonic() + timeout
    while len(items) < n and time.monotonic() < deadline:
        q.wait(0.2)
        items += q.drain(n - len(items))
    return items

"""The inference worker: one process per host, batching faces from every camera.

It owns the model (and the GPU, when there is one), keeps no per-camera state,
and routes each result by the camera named in its request. Restarting it loses
at most the faces in flight.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from fer_stream.inference.engine import Backend
from fer_stream.messages import FaceRequest, FaceResult, ModelStatus
from fer_stream.queues import BoundedQueue

log = logging.getLogger(__name__)

#: Longest idle wait, so a stop request or a dead parent is noticed promptly.
_IDLE_WAIT_S = 0.25


@dataclass(frozen=True)
class InferenceSpec:
    """Everything the worker needs, resolved by the supervisor from the config."""

    model_path: Path | None
    backend: Backend
    num_threads: int | None
    max_batch_size: int
    max_wait_ms: float
    log_level: str = "INFO"


def main(
    spec: InferenceSpec,
    requests: BoundedQueue[FaceRequest],
    results: dict[str, BoundedQueue[FaceResult]],
    ready: BoundedQueue[ModelStatus],
    parent_pid: int,
    heartbeat,
) -> None:
    """Process entry point (spawned by the supervisor); ``heartbeat`` (shared double) gets the time of each loop."""
    from fer_stream.process import parent_alive, start_child

    stop = start_child("inference", spec.log_level)
    ready.detach_on_exit()
    for q in results.values():
        q.detach_on_exit()

    from fer_stream.inference.batcher import Batcher
    from fer_stream.inference.engine import load_classifier
    from fer_stream.metrics import MODEL_LOADED

    heartbeat.value = time.monotonic()
    classifier = load_classifier(spec.model_path, backend=spec.backend, num_threads=spec.num_threads)
    classifier.warmup(spec.max_batch_size)
    MODEL_LOADED.set(1)
    card = classifier.card
    ready.put(ModelStatus(model_id=card.model_id, version=card.version, backend=classifier.backend,
                          labels=tuple(classifier.labels), pid=os.getpid()))
    log.info("ready: %r, batches of up to %d faces or %.1f ms", classifier, spec.max_batch_size, spec.max_wait_ms)

    batcher: Batcher[FaceRequest] = Batcher(spec.max_batch_size, spec.max_wait_ms / 1000.0)
    while not stop.is_set() and parent_alive(parent_pid):
        heartbeat.value = time.monotonic()  # the supervisor's watchdog reads it
        wait = batcher.seconds_until_due()
        requests.wait(_IDLE_WAIT_S if wait is None else min(wait, _IDLE_WAIT_S))  # a stop is seen within this
        for request in requests.drain(spec.max_batch_size):
            batch = batcher.add(request)
            if batch:
                classify(classifier, batch, results)
        batch = batcher.due()
        if batch:
            classify(classifier, batch, results)
    pending = batcher.flush()  # faces already taken are answered at a stop, not dropped
    if pending:
        classify(classifier, pending, results)
        for queue in results.values():
            queue.flush(1.0)
    MODEL_LOADED.set(0)
    log.info("stopped")


def classify(classifier, batch: list[FaceRequest], results: dict[str, BoundedQueue[FaceResult]]) -> None:
    """Run one batch and send every camera its results."""
    from fer_stream.metrics import INFERENCE_BATCH_SECONDS, INFERENCE_BATCH_SIZE, INFERENCE_FACES
    from fer_stream.preprocessing import to_model_input

    inputs = to_model_input([r.face for r in batch])
    started = time.perf_counter()
    probabilities = classifier.predict(inputs)
    INFERENCE_BATCH_SECONDS.observe(time.perf_counter() - started)
    INFERENCE_BATCH_SIZE.observe(len(batch))
    INFERENCE_FACES.inc(len(batch))
    now = time.monotonic()
    for request, probs in zip(batch, probabilities, strict=True):
        queue = results.get(request.camera)
        if queue is None:
            log.warning("result for unknown camera %r dropped", request.camera)
            continue
        queue.put(
            FaceResult(camera=request.camera, track_id=request.track_id, frame_id=request.frame_id,
                       captured_at=request.captured_at, captured_monotonic=request.captured_monotonic,
                       probabilities=probs, classified_at=now)
        )

"""The supervisor: starts the inference worker and one worker per camera, watches and restarts them.

It runs in the main process with the HTTP server and the alert publisher. It
never kills a child that might hold a queue lock: stop requests are SIGTERM,
which children turn into a flag checked between steps; SIGKILL is the last
resort at shutdown only. After a child died (crash or kill -9) the locks of
the queues it used are checked and freed, so its successor cannot deadlock.
"""

from __future__ import annotations

import functools
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fer_stream
from fer_stream.alerts.message import Alert, EndReason, utc_from_epoch
from fer_stream.camera.slots import CpuSlots
from fer_stream.camera.worker import CameraQueues, CameraSpec
from fer_stream.config.models import FerStreamConfig
from fer_stream.config.shard import Shard
from fer_stream.daemon_state import DaemonState
from fer_stream.inference.worker import InferenceSpec
from fer_stream.messages import AlertEvent, CameraStatus, ModelStatus
from fer_stream.queues import BoundedQueue
from fer_stream.supervisor.metrics_dir import LOCK as METRICS_LOCK
from fer_stream.supervisor.metrics_dir import forget_dead_process
from fer_stream.supervisor.restarts import RestartPolicy

if TYPE_CHECKING:
    from fer_stream.alerts.publisher import AlertPublisher
    from fer_stream.evidence.store import SnapshotStore
    from fer_stream.http.server import ConsoleServer
    from fer_stream.reviews.flood import FloodControl
    from fer_stream.reviews.publisher import ReviewPublisher
    from fer_stream.reviews.store import ReviewStore

log = logging.getLogger(__name__)

INFERENCE = "inference"
#: How long children get to leave their loops after SIGTERM before SIGKILL.
STOP_GRACE_S = 3.0
#: Supervisor loop tick: bounds how late a death, a restart or a stop is handled.
TICK_S = 0.2
#: Longest the start waits for the model before starting the cameras.
MODEL_WAIT_S = 60.0
ALERTS_QUEUE_SIZE = 1024
STATUS_QUEUE_SIZE = 256
#: How often expired alert pictures are removed.
SNAPSHOT_SWEEP_S = 10.0
#: Each camera worker generation gets its own block of track ids, so ids are never reused after a restart.
TRACK_IDS_PER_WORKER = 100_000


@dataclass
class Child:
    """One supervised process and how to start it again."""

    name: str
    make: Callable[[Any], BaseProcess]
    heartbeat: Any  # multiprocessing Value('d'): time.monotonic() of the child's last loop
    #: Runs once the process started (it holds its ends of its queues from then on).
    on_start: Callable[[], None] = lambda: None
    on_death: Callable[[], None] = lambda: None
    process: BaseProcess | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    finished: bool = False
    policy: RestartPolicy = field(default_factory=RestartPolicy)


def camera_worker_name(camera: str) -> str:
    return f"camera-{camera}"


class Daemon:
    def __init__(
        self, config: FerStreamConfig, metrics_dir: str, log_level: str = "INFO", config_path: Path | None = None,
        shard: Shard | None = None,
    ) -> None:
        from fer_stream.inference.engine import default_model_path
        from fer_stream.model_card import load_card

        self.config = config
        self.config_path = config_path
        self.metrics_dir = metrics_dir
        self.log_level = log_level
        # Verify the model and its card here, so a bad file stops the start with a clear message
        # instead of crash-looping the inference worker.
        self.model_path = config.model.path or default_model_path()
        self.card, _ = load_card(self.model_path)
        enabled = [c.name for c in config.enabled_cameras]
        self.shard = shard
        self.cameras = enabled if shard is None else shard.cameras(enabled)
        if shard is not None:
            log.info("shard %s of the enabled cameras: %s", shard, ", ".join(self.cameras) or "none (more shards than cameras)")
        from fer_stream.metrics import DAEMON_INFO

        DAEMON_INFO.labels(shard=str(shard or "all"), version=fer_stream.__version__).set(1)
        self.state = DaemonState(self.cameras)
        self.ctx = multiprocessing.get_context("spawn")
        #: camera -> set while someone watches it on the console
        self.view_wanted = {c: self.ctx.Event() for c in self.cameras}
        inference = config.inference
        self.requests: BoundedQueue = BoundedQueue(self.ctx, "requests", inference.request_queue_size)
        self.results: dict[str, BoundedQueue] = {
            c: BoundedQueue(self.ctx, f"results-{c}", inference.result_queue_size) for c in self.cameras
        }
        #: camera -> the alert queue of its running worker; each worker gets a new one, and is its only writer.
        self.alerts: dict[str, BoundedQueue[AlertEvent]] = {}
        self.status: BoundedQueue[CameraStatus] = BoundedQueue(self.ctx, "status", STATUS_QUEUE_SIZE)
        self.ready: BoundedQueue[ModelStatus] = BoundedQueue(self.ctx, "ready", 4)
        self.views: BoundedQueue = BoundedQueue(self.ctx, "views", max(4, 2 * len(self.cameras)))
        overload = config.overload
        #: At most one camera per core works on a frame at once (fer_stream/camera/slots.py).
        self.cpu_slots = (CpuSlots(self.ctx, overload.cpu_slots or len(os.sched_getaffinity(0)))
                          if overload.enabled else None)  # fmt: skip
        self.children: dict[str, Child] = {}
        #: camera -> (track, emotion) -> its start: what to end if the camera worker dies mid-episode.
        self.open_episodes: dict[str, dict[tuple[int, str], Alert]] = {c: {} for c in self.cameras}
        #: camera -> emotion -> epoch second: cooldowns a restarted camera worker inherits.
        self.camera_cooldowns: dict[str, dict[str, float]] = {c: {} for c in self.cameras}
        self.http: ConsoleServer | None = None
        self.publisher: AlertPublisher | None = None
        self.snapshots: SnapshotStore | None = None
        self.reviews: ReviewStore | None = None
        self.review_publisher: ReviewPublisher | None = None
        self.flood: FloodControl | None = None
        self.state.thresholds = {c: {e: config.camera_settings(c).alert_rules.enter_for(e)
                                     for e in config.camera_settings(c).alert_rules.watched} for c in self.cameras}
        self._swept_at = 0.0
        self._stopping = False

    # --- start ---------------------------------------------------------------
    def start(self, stop: threading.Event | None = None) -> None:
        """Start the publisher, HTTP and the workers; a ``stop`` set meanwhile ends the start early."""
        stop = stop or threading.Event()
        from fer_stream.alerts.publisher import AlertPublisher
        from fer_stream.evidence.store import SnapshotStore
        from fer_stream.http.access import Access
        from fer_stream.http.history import AlertHistory
        from fer_stream.http.server import start_http_server
        from fer_stream.reviews.flood import FloodControl
        from fer_stream.reviews.publisher import ReviewPublisher
        from fer_stream.reviews.store import ReviewStore

        alerts, http = self.config.alerts, self.config.http
        if alerts.enabled:
            publisher = self.publisher = AlertPublisher(self.config.redis, alerts, alerts.journal_path(self.config_path))
            publisher.check_connection()  # bad credentials or TLS stop the start; a Redis merely away does not
            publisher.start()
            self.state.delivery = publisher.health
            if alerts.snapshots.enabled:
                snapshots = alerts.snapshots
                self.snapshots = SnapshotStore(snapshots.path(), max_bytes=int(snapshots.max_mb * 1e6),
                                               retention_s=snapshots.retention_h * 3600)
            reviews = self.reviews = ReviewStore(alerts.reviews_path())
            self.review_publisher = ReviewPublisher(self.config.redis, alerts.reviews, reviews)
            self.review_publisher.start()
            caps = {c: self.config.camera_settings(c).alert_rules.max_starts_per_hour for c in self.cameras}
            self.flood = FloodControl(self.cameras, caps, reviews)
            self.state.flood = self.flood.status
        self.http = start_http_server(
            http.host, http.port, self.state, self.metrics_dir, METRICS_LOCK,
            access=Access(http.token(), reviewer_token=http.reviewer_token(), viewer_token=http.viewer_token(),
                          protect_probes=http.protect_probes, host=http.host),
            snapshots=self.snapshots, history=AlertHistory(self.config.redis, alerts) if alerts.enabled else None,
            reviews=self.reviews, flood=self.flood,
            on_review=self.review_publisher.notify if self.review_publisher is not None else lambda: None,
        )  # fmt: skip
        self._add(Child(INFERENCE, self._make_inference, self._heartbeat(), on_death=self._inference_died))
        self._wait_for_model(MODEL_WAIT_S, stop)
        if stop.is_set():
            return
        for name in self.cameras:
            self._add(Child(camera_worker_name(name), self._camera_factory(name), self._heartbeat(),
                            on_start=functools.partial(self._alerts_started, name),
                            on_death=self._camera_died_hook(name)))

    def _wait_for_model(self, timeout: float, stop: threading.Event) -> None:
        """Let the model load before cameras compete for the CPU (cameras start anyway after ``timeout``)."""
        deadline = time.monotonic() + timeout
        inference = self.children[INFERENCE].process
        assert inference is not None
        while self.state.model is None and inference.is_alive() and time.monotonic() < deadline and not stop.is_set():
            self.ready.wait(TICK_S)
            self._pump()
        if self.state.model is None and not stop.is_set():
            log.warning("the model is not loaded yet; starting the cameras anyway")

    def _add(self, child: Child) -> None:
        self.children[child.name] = child
        self._spawn(child)

    def _heartbeat(self) -> Any:
        return self.ctx.Value("d", time.monotonic(), lock=False)

    def _spawn(self, child: Child) -> None:
        from fer_stream.metrics import WORKER_STALLED

        child.heartbeat.value = time.monotonic()
        child.process = child.make(child.heartbeat)
        child.process.start()
        child.on_start()
        child.started_at = time.monotonic()
        child.restart_at = None
        self.state.set_stalled(child.name, False)
        WORKER_STALLED.labels(worker=child.name).set(0)
        self.state.set_pid(child.name, child.process.pid)
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def _make_inference(self, heartbeat: Any) -> BaseProcess:
        from fer_stream.inference import worker

        inference = self.config.inference
        spec = InferenceSpec(
            self.model_path, self.config.model.backend, inference.num_threads, inference.max_batch_size,
            inference.max_wait_ms, self.log_level,
        )
        return self.ctx.Process(
            target=worker.main, args=(spec, self.requests, self.results, self.ready, os.getpid(), heartbeat),
            name=INFERENCE, daemon=False,
        )

    def _camera_factory(self, name: str) -> Callable[[Any], BaseProcess]:
        from fer_stream.camera import worker

        settings = self.config.camera_settings(name)
        generation = itertools.count()

        def make(heartbeat: Any) -> BaseProcess:
            now = time.time()
            alerts = self.alerts[name] = BoundedQueue(self.ctx, f"alerts-{name}", ALERTS_QUEUE_SIZE)
            queues = CameraQueues(self.requests, self.results[name], alerts, self.status, self.views)
            spec = CameraSpec(
                settings, tuple(self.card.labels), self.card.input_size, self.card.model_id, self.card.version,
                self.config.alerts.enabled, self.log_level,
                first_track_id=1 + TRACK_IDS_PER_WORKER * next(generation),
                max_backlog=max(1, self.config.inference.request_queue_size // 4),
                camera_cooldowns={e: t for e, t in self.camera_cooldowns[name].items() if t > now},
                snapshots=self.snapshots is not None, console=self.config.console,
                shard=None if self.shard is None else str(self.shard),
            )  # fmt: skip
            return self.ctx.Process(
                target=worker.main, args=(spec, queues, self.view_wanted[name], self.cpu_slots, os.getpid(), heartbeat),
                name=camera_worker_name(name), daemon=False,
            )

        return make

    def _inference_died(self) -> None:
        self.state.set_model(None)
        self._repair(self.requests, reader=True, writer=False)
        for q in (*self.results.values(), self.ready):
            self._repair(q, reader=True, writer=True)

    def _alerts_started(self, camera: str) -> None:
        """The camera's worker started: from now on it is the only writer of its alert queue."""
        self.alerts[camera].reader_only()

    def _camera_died_hook(self, name: str) -> Callable[[], None]:
        def hook() -> None:
            dead = self.children[camera_worker_name(name)].process
            if self.cpu_slots is not None and dead is not None and dead.pid is not None:
                if self.cpu_slots.free_dead(dead.pid):
                    log.warning("camera %s died while working on a frame: gave its CPU slot back", name)
            self._repair(self.requests, reader=True, writer=False)
            self._repair(self.results[name], reader=True, writer=False)
            for q in (self.status, self.views):
                self._repair(q, reader=True, writer=False)
            self._retire_alerts(name)  # the alerts it sent before dying count first
            self._end_orphaned_episodes(name, "camera_stopped")

        return hook

    def _end_orphaned_episodes(self, camera: str, reason: EndReason) -> None:
        """A dead camera worker cannot end its episodes: end them here, and let them cool down in its successor."""
        now = time.time()
        cooldown = self.config.camera_settings(camera).alert_rules.cooldown_s
        for start in list(self.open_episodes[camera].values()):
            end = Alert.model_validate({
                **start.model_dump(), "event": "end", "end_reason": reason, "alert_id": uuid.uuid4().hex,
                "event_at": utc_from_epoch(now), "duration_s": max(now - start.started_at.timestamp(), 0.0), "snapshot": None,
            })  # fmt: skip
            log.warning("camera %s died inside an episode (track %d, %s): ended it; no new %s start on this camera "
                        "for %.0f s", camera, start.track_id, start.emotion, start.emotion, cooldown)  # fmt: skip
            self._forward(end)
            until = self.camera_cooldowns[camera].get(start.emotion, 0.0)
            self.camera_cooldowns[camera][start.emotion] = max(until, now + cooldown)
        self.open_episodes[camera].clear()

    def _forward(self, alert: Alert) -> None:
        """Hand an alert to the publisher, remembering which episodes are open."""
        episodes = self.open_episodes.setdefault(alert.camera, {})
        if alert.event == "start":
            episodes[(alert.track_id, alert.emotion)] = alert
            log.info("alert started: %s on %s (face #%d), score %.2f", alert.emotion, alert.camera, alert.track_id, alert.score)
            if self.reviews is not None:
                self.reviews.remember_episode(alert)
        elif alert.event == "end":
            episodes.pop((alert.track_id, alert.emotion), None)
            log.info("alert ended: %s on %s (face #%d) after %.1f s, peak %.2f (%s)", alert.emotion, alert.camera,
                     alert.track_id, alert.duration_s, alert.peak_score, (alert.end_reason or "").replace("_", " "))
        if self.publisher is not None:
            self.publisher.submit(alert)
        self.state.record_alert(alert)

    @staticmethod
    def _repair(q: BoundedQueue, reader: bool, writer: bool) -> None:
        freed = q.release_stale_locks(reader=reader, writer=writer, grace_s=0.2)
        if freed:
            log.warning("queue %s: freed the %s lock a dead process held", q.name, "/".join(freed))

    # --- run -----------------------------------------------------------------
    def run(self, stop: threading.Event, deadline: float | None = None, on_tick: Callable[[], None] | None = None) -> None:
        """Supervise until ``stop`` is set, ``deadline`` (monotonic) passes or every camera finished."""
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            self.tick()
            if on_tick:
                on_tick()
            if self.cameras and all(self.children[camera_worker_name(c)].finished for c in self.cameras):
                log.info("every camera finished its file")
                break

    def tick(self) -> None:
        sentinels = [c.process.sentinel for c in self.children.values() if c.process is not None and c.restart_at is None]
        readers = [q._queue._reader for q in (self.status, self.ready, self.views, *self.alerts.values())]  # type: ignore[attr-defined]
        multiprocessing.connection.wait(sentinels + readers, timeout=TICK_S)
        self._pump()
        for q in self.queues():
            q.record_depth()
        now = time.monotonic()
        for child in self.children.values():
            self._check(child, now)
        self._update_viewers()
        if self.snapshots is not None and now - self._swept_at >= SNAPSHOT_SWEEP_S:
            self._swept_at = now
            self.snapshots.sweep()
        if self.flood is not None:
            self.flood.refresh()

    def _update_viewers(self) -> None:
        """Cameras encode live-view frames only while someone watches them."""
        from fer_stream.metrics import CONSOLE_VIEWERS

        for camera, wanted in self.view_wanted.items():
            (wanted.set if self.state.viewers_present(camera) else wanted.clear)()
            CONSOLE_VIEWERS.labels(camera=camera).set(self.state.viewers.get(camera, 0))

    def queues(self) -> tuple[BoundedQueue, ...]:
        return (self.requests, *self.results.values(), *self.alerts.values(), self.status, self.ready, self.views)

    def _pump(self) -> None:
        for status in self.status.drain(STATUS_QUEUE_SIZE):
            self.state.update_status(status)
        for model in self.ready.drain(4):
            inference = self.children.get(INFERENCE)
            if inference and inference.process and inference.process.pid == model.pid:
                self.state.set_model(model)
        for view in self.views.drain(64):
            self.state.update_view(view)
        self._pump_alerts()

    def _pump_alerts(self) -> None:
        for alerts in list(self.alerts.values()):
            self._take_alerts(alerts)

    def _retire_alerts(self, camera: str) -> None:
        """The camera's worker is gone: take what it sent, to the end of its queue (a half-written message is dropped)."""
        alerts = self.alerts.pop(camera, None)
        if alerts is None:
            return
        self._repair(alerts, reader=True, writer=False)
        self._take_alerts(alerts)
        alerts.close()

    def _take_alerts(self, alerts: BoundedQueue[AlertEvent]) -> None:
        """Keep each alert's pictures, then forward it: the console finds them when the alert arrives.

        Episodes of a snoozed camera, or past its starts-per-hour cap, are held back here (reviews/flood.py)."""
        for event in alerts.drain(ALERTS_QUEUE_SIZE):
            if self.flood is not None and not self.flood.admit(event.alert):
                continue  # held back whole: no message, no pictures
            pictures = event.pictures
            if pictures is not None and self.snapshots is not None:
                try:
                    self.snapshots.put(pictures)
                except OSError as exc:
                    log.error("alert picture %s not kept: %s", pictures.name, exc)
            self._forward(event.alert)

    def _check(self, child: Child, now: float) -> None:
        process = child.process
        if child.finished or process is None:
            return
        if child.restart_at is not None:
            if now >= child.restart_at:
                from fer_stream.metrics import WORKER_RESTARTS

                WORKER_RESTARTS.labels(worker=child.name).inc()
                self.state.count_restart(child.name)
                self._spawn(child)
            return
        if process.is_alive():
            self._watch(child, process, now)
            return
        process.join()
        code = process.exitcode
        if process.pid is not None:
            forget_dead_process(self.metrics_dir, process.pid)
        self.state.set_pid(child.name, None)
        child.on_death()
        if code == 0 and child.name != INFERENCE:
            log.info("%s finished (end of its file)", child.name)
            child.finished = True
            return
        delay = child.policy.delay_after_death(now - child.started_at)
        child.restart_at = now + delay
        log.error("%s (pid %d) died with exit code %s; restarting in %.1f s", child.name, process.pid, code, delay)

    def _watch(self, child: Child, process: BaseProcess, now: float) -> None:
        """Kill a child whose loop stopped advancing (hung, deadlocked, SIGSTOPped); its death restarts it."""
        from fer_stream.metrics import WORKER_STALLED

        watchdog = self.config.watchdog
        loading = child.name == INFERENCE and self.state.model is None
        limit = watchdog.model_load_s if loading else watchdog.stall_s
        silent = now - max(child.heartbeat.value, child.started_at)
        if silent <= limit:
            return
        what = "loaded no model" if loading else "made no progress"
        log.error("%s (pid %d) %s for %.0f s (hung or stopped); killing it to restart it", child.name, process.pid, what, silent)
        self.state.set_stalled(child.name, True)
        WORKER_STALLED.labels(worker=child.name).set(1)
        process.kill()

    # --- stop ----------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop everything: SIGTERM to children, take their last alerts, SIGKILL stragglers, flush alerts, stop HTTP."""
        if self._stopping:
            return
        self._stopping = True
        live = [c.process for c in self.children.values() if c.process is not None and c.process.is_alive()]
        for process in live:
            process.terminate()  # SIGTERM: children finish their step and leave
        deadline = time.monotonic() + STOP_GRACE_S
        # Cameras end their episodes as they leave; the end events and their pictures need a reader to get out.
        while (running := [p for p in live if p.is_alive()]) and (left := deadline - time.monotonic()) > 0:
            readers = [q._queue._reader for q in self.alerts.values()]  # type: ignore[attr-defined]
            multiprocessing.connection.wait([p.sentinel for p in running] + readers, timeout=min(left, TICK_S))
            self._pump_alerts()
            for camera in [c for c in self.alerts if not self._running(camera_worker_name(c))]:
                self._retire_alerts(camera)
        for process in live:
            if process.is_alive():
                log.warning("%s did not stop within %.0f s; killing it", process.name, STOP_GRACE_S)
                process.kill()
                process.join(1.0)
        for camera in list(self.alerts):
            self._retire_alerts(camera)
        for camera in self.cameras:
            if self.open_episodes.get(camera):
                self._end_orphaned_episodes(camera, "daemon_stopped")  # of cameras killed instead of stopping
        if self.publisher is not None:
            self.publisher.close(timeout=1.0)
        if self.review_publisher is not None:
            self.review_publisher.close()
        if self.http is not None:
            self.http.shutdown()
        for q in self.queues():
            q.close()
        if self.reviews is not None:
            self.reviews.close()

    def _running(self, worker: str) -> bool:
        process = self.children[worker].process
        return process is not None and process.is_alive()

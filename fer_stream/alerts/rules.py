"""Per-camera alert rules: smoothed expression per tracked face -> start/end events of episodes.

Pure and synchronous: the camera worker calls :meth:`AlertTracker.observe` with
every classification result and hands the returned alerts to the supervisor.
Everything is driven by the frames' capture times, so a slow or bursty pipeline
does not change what counts as "sustained".

Smoothing: per track, a time-weighted exponential moving average of the class
probabilities (half-life in seconds), starting from the uniform distribution.

Per (track, watched emotion) the state is (thresholds may differ per emotion):
idle -> candidate (smoothed score >= enter_threshold; start time and observations counted) -> episode (a start
event was emitted once the candidate lasted min_duration_s with
min_observations, the emotion on top of at least min_top_share of them, and no cooldown applied; an update every
update_every_s) -> idle (an end event when the score falls below release_threshold, the track is lost or the
camera stops; cooldown begins).

Why the share on top: the smoothed score says "enough of this emotion on
average"; it can be reached by a face whose every single reading puts disgust,
sadness or neutral first with anger a close second (a frown while talking). A
consensus of readings, as production classifiers decide from several attempts,
asks that the watched emotion actually win most of them.
"""

from __future__ import annotations

import math
import socket
import uuid
from dataclasses import dataclass, field

import numpy as np

from fer_stream.alerts.config import AlertRules
from fer_stream.alerts.message import Alert, Box, EndReason, FrameSize, ModelRef, utc_from_epoch

#: A track not observed for this long is dropped (with end events) even if forget() never came.
STALE_TRACK_S = 60.0
#: How often (frame time) stale tracks and expired cooldowns are swept.
SWEEP_EVERY_S = 5.0


@dataclass(slots=True)
class _Run:
    """Observations of one emotion on one track since its smoothed score reached enter_threshold."""

    since: float
    n: int = 0
    peak: float = 0.0
    total: float = 0.0
    last: float = 0.0
    on_top: int = 0  # observations whose own (unsmoothed) top class was this emotion
    started: bool = False
    episode_id: str = ""
    reported_at: float = 0.0  # frame time of the start or the latest update

    def add(self, score: float, on_top: bool) -> None:
        self.n += 1
        self.on_top += on_top
        self.peak = max(self.peak, score)
        self.total += score
        self.last = score

    @property
    def mean(self) -> float:
        return self.total / self.n


@dataclass(slots=True)
class _Track:
    smoothed: np.ndarray
    last_t: float
    box: tuple[int, int, int, int]
    frame_size: tuple[int, int]
    runs: dict[int, _Run] = field(default_factory=dict)


class AlertTracker:
    """The alert rules of one camera. Not thread-safe: one per camera worker."""

    def __init__(
        self,
        rules: AlertRules,
        camera: str,
        labels: list[str],
        model_id: str,
        model_version: str,
        host: str | None = None,
        shard: str | None = None,
        max_tracks: int = 256,
        camera_cooldowns: dict[str, float] | None = None,
    ) -> None:
        """``camera_cooldowns``: emotion -> epoch second before which no face of this camera may start an
        episode of it (a restarted camera worker inherits the cooldown of the episodes its predecessor left open)."""
        named = [*rules.watched, *(key for t in (rules.enter_threshold, rules.release_threshold, rules.min_top_share)
                                   if isinstance(t, dict) for key in t)]
        unknown = sorted({name for name in named if name not in labels})
        if unknown:
            raise ValueError(
                f"camera {camera!r}: the alert rules name {unknown}, which the model does not have; "
                f"its labels are {list(labels)}"
            )
        self.rules = rules
        self.camera = camera
        self.labels = list(labels)
        self._watched = [self.labels.index(name) for name in rules.watched]
        self._enter = {self.labels.index(name): rules.enter_for(name) for name in rules.watched}
        self._release = {self.labels.index(name): rules.release_for(name) for name in rules.watched}
        self._top_share = {self.labels.index(name): rules.top_share_for(name) for name in rules.watched}
        self._model = ModelRef(id=model_id, version=model_version)
        self._host = host or socket.gethostname()
        self._shard = shard
        self._max_tracks = max_tracks
        self._tracks: dict[int, _Track] = {}
        self._cooldown_until: dict[tuple[int, int], float] = {}
        self._camera_cooldown = {self.labels.index(e): t for e, t in (camera_cooldowns or {}).items() if e in self.labels}
        self._next_sweep = -math.inf

    def observe(
        self,
        track_id: int,
        probs: np.ndarray,
        t: float,
        box: tuple[int, int, int, int],
        frame_size: tuple[int, int],
    ) -> list[Alert]:
        """Feed one classification (``t``: capture time, epoch seconds; ``box``: x, y, w, h; ``frame_size``: w, h).

        Returns the alerts it caused: usually none, a start or an end of this
        track, and, rarely, ends of other tracks dropped as stale or over the cap.
        """
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        if probs.shape[0] != len(self.labels):
            raise ValueError(f"camera {self.camera!r}: {probs.shape[0]} probabilities for {len(self.labels)} labels")
        alerts = self._sweep(t, keep=track_id)
        track = self._tracks.get(track_id)
        if track is None:
            # A new face starts from no opinion (uniform), not from its first frame: that frame is often
            # a half-visible or blurred face (smiling_woman_phone.mp4's reads angry 0.57, docs/alerts.md).
            prior = np.full(len(self.labels), 1.0 / len(self.labels))
            track = _Track(smoothed=prior, last_t=t, box=box, frame_size=frame_size)
            self._tracks[track_id] = track
            alerts += self._enforce_cap(keep=track_id)
        # Each classification stands for the time since the previous one, so the first one weighs nothing.
        dt = max(t - track.last_t, 0.0)
        alpha = 1.0 - 0.5 ** (dt / self.rules.smoothing_half_life_s)
        track.smoothed += alpha * (probs - track.smoothed)
        track.last_t, track.box, track.frame_size = t, box, frame_size
        top = int(np.argmax(probs))
        for index in self._watched:
            alert = self._step(track_id, track, index, float(track.smoothed[index]), top == index, t)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def forget(self, track_id: int, t: float, reason: EndReason = "face_lost") -> list[Alert]:
        """The tracker lost this face (or the camera stops): end its open episodes at the last time it was seen."""
        track = self._tracks.pop(track_id, None)
        self._prune_cooldowns(t)
        if track is None:
            return []
        return [
            self._end(track_id, track, index, run, track.last_t, reason) for index, run in track.runs.items() if run.started
        ]

    def forget_all(self, t: float, reason: EndReason = "camera_stopped") -> list[Alert]:
        """The camera stops (end of file, shutdown): end every open episode."""
        alerts: list[Alert] = []
        for track_id in list(self._tracks):
            alerts += self.forget(track_id, t, reason)
        return alerts

    def smoothed(self, track_id: int) -> dict[str, float] | None:
        """The track's smoothed probability of every label (console chart, tuning), None for an unknown track."""
        track = self._tracks.get(track_id)
        return None if track is None else {label: float(p) for label, p in zip(self.labels, track.smoothed, strict=True)}

    def is_alerting(self, track_id: int) -> bool:
        """Whether the track is inside an episode (for the live view)."""
        track = self._tracks.get(track_id)
        return track is not None and any(run.started for run in track.runs.values())

    @property
    def track_count(self) -> int:
        return len(self._tracks)

    # --- the state machine -------------------------------------------------------

    def _step(self, track_id: int, track: _Track, index: int, score: float, on_top: bool, t: float) -> Alert | None:
        rules = self.rules
        run = track.runs.get(index)
        if run is not None and run.started:
            if score < self._release[index]:
                del track.runs[index]
                run.last = score
                return self._end(track_id, track, index, run, t, "calm")
            run.add(score, on_top)
            if rules.update_every_s > 0 and t - run.reported_at >= rules.update_every_s:
                run.reported_at = t
                return self._alert("update", track_id, track, index, run, t)
            return None
        if score < self._enter[index]:
            track.runs.pop(index, None)
            return None
        if run is None:
            run = track.runs[index] = _Run(since=t)
        run.add(score, on_top)
        sustained = (t - run.since >= rules.min_duration_s and run.n >= rules.min_observations
                     and run.on_top >= self._top_share[index] * run.n)
        cooling = max(self._cooldown_until.get((track_id, index), -math.inf), self._camera_cooldown.get(index, -math.inf))
        if sustained and t >= cooling:
            run.started, run.episode_id, run.reported_at = True, uuid.uuid4().hex, t
            return self._alert("start", track_id, track, index, run, t)
        return None

    def _end(self, track_id: int, track: _Track, index: int, run: _Run, t: float, reason: EndReason) -> Alert:
        self._cooldown_until[(track_id, index)] = t + self.rules.cooldown_s
        return self._alert("end", track_id, track, index, run, t, reason)

    def _alert(
        self, event: str, track_id: int, track: _Track, index: int, run: _Run, t: float, reason: EndReason | None = None
    ) -> Alert:
        x, y, w, h = (int(v) for v in track.box)
        return Alert(
            episode_id=run.episode_id,
            event=event,
            end_reason=reason,
            camera=self.camera,
            track_id=track_id,
            emotion=self.labels[index],
            score=min(max(run.last, 0.0), 1.0),
            peak_score=min(max(run.peak, 0.0), 1.0),
            mean_score=min(max(run.mean, 0.0), 1.0),
            duration_s=max(t - run.since, 0.0),
            started_at=utc_from_epoch(run.since),
            event_at=utc_from_epoch(max(t, run.since)),
            box=Box(x=x, y=y, w=w, h=h),
            frame=FrameSize(width=int(track.frame_size[0]), height=int(track.frame_size[1])),
            model=self._model,
            host=self._host,
            shard=self._shard,
        )

    # --- bounded memory ----------------------------------------------------------

    def _sweep(self, t: float, keep: int) -> list[Alert]:
        """Drop tracks the caller never forgot and expired cooldowns, every SWEEP_EVERY_S of frame time."""
        if t < self._next_sweep:
            return []
        self._next_sweep = t + SWEEP_EVERY_S
        stale = [tid for tid, track in self._tracks.items() if tid != keep and t - track.last_t > STALE_TRACK_S]
        alerts: list[Alert] = []
        for tid in stale:
            alerts += self.forget(tid, t)
        self._prune_cooldowns(t)
        return alerts

    def _enforce_cap(self, keep: int) -> list[Alert]:
        alerts: list[Alert] = []
        while len(self._tracks) > self._max_tracks:
            oldest = min((tid for tid in self._tracks if tid != keep), key=lambda tid: self._tracks[tid].last_t)
            alerts += self.forget(oldest, self._tracks[oldest].last_t)
        return alerts

    def _prune_cooldowns(self, t: float) -> None:
        expired = [key for key, until in self._cooldown_until.items() if until <= t]
        for key in expired:
            del self._cooldown_until[key]

"""Follow faces across frames by box overlap, so each person keeps one track id.

Detections are matched to tracks greedily by IoU, highest first (faces in one
camera rarely overlap, so the optimal assignment buys nothing). A track is
reported once it has ``min_hits`` detections, which filters one-frame false
faces, and ends when it has not been seen for ``max_missed_s`` seconds of frame
time; ended ids are reported once so per-track state (alert rules) can be freed.

Each track keeps a velocity (box centre, pixels a second, smoothed over its
sightings), and detections are matched against where the track should be *now*:
a face that walks on behind a pillar for half a second is matched where it
reappears and keeps its id, so its alert cooldown holds, instead of coming back
as a new face. The same motion carries tracks over frames where detection is
not run at all (:meth:`IouTracker.coast`, ``detector.detect_every``).

A carried box is clipped to the frame as the detector clips its own boxes. A
face whose predicted box keeps less than half of itself inside the frame has,
by its motion, left it (or its velocity came from a bad match): nothing is
there to crop, so it is not reported on that frame, as if the detector had
missed it, and it ends after ``max_missed_s`` unless a detection finds it
again. Cropping a guess at the frame edge would feed the classifier, and so
the alert rules, a sliver of background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from fer_stream.faces.detector import Detection

Box = tuple[int, int, int, int]
#: Weight of the newest displacement in a track's velocity (the rest is its earlier estimate).
VELOCITY_SMOOTHING = 0.5
#: A carried box with less of its area inside the frame than this is a face that has left it.
MIN_VISIBLE_SHARE = 0.5


@dataclass(slots=True)
class Track:
    track_id: int
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    landmarks: tuple[tuple[float, float], ...] | None = None
    velocity: tuple[float, float] = (0.0, 0.0)

    def predicted(self, t: float) -> Box:
        """The box moved on by the track's velocity to time ``t``."""
        dt = max(t - self.last_seen, 0.0)
        x, y, w, h = self.box
        return (round(x + self.velocity[0] * dt), round(y + self.velocity[1] * dt), w, h)

    def coasted(self, t: float, frame_size: tuple[int, int]) -> Track | None:
        """A copy at its predicted place at ``t``, clipped to the ``(width, height)`` frame, landmarks moved along.

        None when less than ``MIN_VISIBLE_SHARE`` of the predicted box lies in the frame. The track itself is unchanged.
        """
        x, y, w, h = self.predicted(t)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, frame_size[0]), min(y + h, frame_size[1])
        if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < MIN_VISIBLE_SHARE * w * h:
            return None
        dx, dy = x - self.box[0], y - self.box[1]
        landmarks = None if self.landmarks is None else tuple((lx + dx, ly + dy) for lx, ly in self.landmarks)
        return replace(self, box=(x0, y0, x1 - x0, y1 - y0), landmarks=landmarks)

    def observe(self, detection: Detection, t: float) -> None:
        dt = t - self.last_seen
        if dt > 0:
            (x0, y0, w0, h0), (x1, y1, w1, h1) = self.box, detection.box
            vx = ((x1 + w1 / 2) - (x0 + w0 / 2)) / dt
            vy = ((y1 + h1 / 2) - (y0 + h0 / 2)) / dt
            self.velocity = (VELOCITY_SMOOTHING * vx + (1 - VELOCITY_SMOOTHING) * self.velocity[0],
                             VELOCITY_SMOOTHING * vy + (1 - VELOCITY_SMOOTHING) * self.velocity[1])  # fmt: skip
        self.box, self.score, self.last_seen, self.landmarks = detection.box, detection.score, t, detection.landmarks
        self.hits += 1


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """``active``: confirmed tracks seen in this frame (with this frame's box); ``ended``: ids gone for good."""

    active: list[Track] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)


def iou_matrix(boxes_a: Sequence[Box], boxes_b: Sequence[Box]) -> np.ndarray:
    """Intersection over union of every (x, y, w, h) box in ``a`` with every box in ``b``."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ax1, ay1 = a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter_w = np.clip(np.minimum(ax1, bx1) - np.maximum(a[:, 0:1], b[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(ay1, by1) - np.maximum(a[:, 1:2], b[:, 1]), 0, None)
    inter = inter_w * inter_h
    union = (a[:, 2:3] * a[:, 3:4]) + (b[:, 2] * b[:, 3]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


class IouTracker:
    def __init__(self, iou_threshold: float = 0.3, max_missed_s: float = 1.0, min_hits: int = 2, first_id: int = 1):
        self.iou_threshold = iou_threshold
        self.max_missed_s = max_missed_s
        self.min_hits = min_hits
        self._tracks: list[Track] = []
        self._next_id = first_id  # a restarted camera starts above its predecessor's ids

    def update(self, detections: Sequence[Detection], t: float) -> TrackUpdate:
        """Match this frame's detections (taken at time ``t``, seconds) to the tracks."""
        matched_tracks: set[int] = set()
        matched_detections: set[int] = set()
        if self._tracks and detections:
            ious = iou_matrix([track.predicted(t) for track in self._tracks], [d.box for d in detections])
            for flat in np.argsort(ious, axis=None)[::-1]:
                ti, di = divmod(int(flat), len(detections))
                if ious[ti, di] < self.iou_threshold:
                    break
                if ti in matched_tracks or di in matched_detections:
                    continue
                self._tracks[ti].observe(detections[di], t)
                matched_tracks.add(ti)
                matched_detections.add(di)
        seen = [track for index, track in enumerate(self._tracks) if index in matched_tracks]
        for index, detection in enumerate(detections):
            if index not in matched_detections:
                track = Track(self._next_id, detection.box, detection.score, first_seen=t, last_seen=t,
                              landmarks=detection.landmarks)
                self._next_id += 1
                self._tracks.append(track)
                seen.append(track)
        ended = [track for track in self._tracks if t - track.last_seen > self.max_missed_s]
        self._tracks = [track for track in self._tracks if t - track.last_seen <= self.max_missed_s]
        return TrackUpdate(
            active=[track for track in seen if track.hits >= self.min_hits],
            ended=[track.track_id for track in ended if track.hits >= self.min_hits],
        )

    def coast(self, t: float, frame_size: tuple[int, int]) -> TrackUpdate:
        """A frame of ``(width, height)`` without detection: the confirmed tracks where their motion puts them at ``t``.

        Nothing is matched, so no track gains a hit or a sighting; a track carried out of the
        frame is left out (:meth:`Track.coasted`); tracks not detected for ``max_missed_s`` end
        as in :meth:`update`.
        """
        ended = [track for track in self._tracks if t - track.last_seen > self.max_missed_s]
        self._tracks = [track for track in self._tracks if t - track.last_seen <= self.max_missed_s]
        carried = [track.coasted(t, frame_size) for track in self._tracks if track.hits >= self.min_hits]
        return TrackUpdate(
            active=[track for track in carried if track is not None],
            ended=[track.track_id for track in ended if track.hits >= self.min_hits],
        )

    @property
    def tracks(self) -> list[Track]:
        """Every live track, confirmed or not (for inspection; ``update`` is the interface)."""
        return list(self._tracks)

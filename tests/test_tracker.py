"""IoU tracker: stable ids, new ids for new faces, confirmation after min_hits, ended ids after max_missed_s."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_stream.faces import Detection, IouTracker, Track, crop_face
from fer_stream.faces.tracker import MIN_VISIBLE_SHARE, iou_matrix


def det(x: int, y: int, w: int = 50, h: int = 50) -> Detection:
    return Detection((x, y, w, h), 0.9)


def test_iou_of_identical_disjoint_and_half_overlapping_boxes():
    ious = iou_matrix([(0, 0, 10, 10)], [(0, 0, 10, 10), (20, 20, 5, 5), (5, 0, 10, 10)])
    assert np.allclose(ious, [[1.0, 0.0, 50 / 150]])
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_a_moving_face_keeps_its_id_and_a_new_face_gets_a_new_one():
    tracker = IouTracker(iou_threshold=0.3, max_missed_s=1.0, min_hits=1)
    first = tracker.update([det(100, 100)], t=0.0).active
    assert len(first) == 1
    face_id = first[0].track_id
    for step in range(1, 6):
        update = tracker.update([det(100 + 5 * step, 100)], t=0.1 * step)
        assert [track.track_id for track in update.active] == [face_id]
        assert update.active[0].box == (100 + 5 * step, 100, 50, 50)
    both = tracker.update([det(126, 100), det(400, 300)], t=0.6).active
    ids = {track.box[0]: track.track_id for track in both}
    assert ids[126] == face_id and ids[400] != face_id


def test_two_faces_are_not_swapped_when_they_move():
    tracker = IouTracker(min_hits=1)
    a, b = (t.track_id for t in tracker.update([det(0, 0), det(200, 0)], t=0.0).active)
    update = tracker.update([det(210, 5), det(8, 3)], t=0.1)  # listed in the other order
    assert {t.box[0]: t.track_id for t in update.active} == {8: a, 210: b}


def test_tracks_are_reported_only_after_min_hits():
    tracker = IouTracker(min_hits=3)
    assert tracker.update([det(0, 0)], t=0.0).active == []
    assert tracker.update([det(2, 0)], t=0.1).active == []
    confirmed = tracker.update([det(4, 0)], t=0.2).active
    assert len(confirmed) == 1 and confirmed[0].hits == 3 and confirmed[0].first_seen == 0.0


def test_a_face_missing_longer_than_max_missed_ends_once_and_returns_with_a_new_id():
    tracker = IouTracker(max_missed_s=0.5, min_hits=1)
    old_id = tracker.update([det(0, 0)], t=0.0).active[0].track_id
    assert tracker.update([], t=0.4).ended == [], "still within max_missed_s"
    assert tracker.update([], t=0.6).ended == [old_id]
    assert tracker.update([], t=0.7).ended == [], "an end is reported once"
    back = tracker.update([det(0, 0)], t=0.8).active
    assert back[0].track_id != old_id


def test_a_short_gap_keeps_the_id():
    tracker = IouTracker(max_missed_s=1.0, min_hits=1)
    face_id = tracker.update([det(0, 0)], t=0.0).active[0].track_id
    tracker.update([], t=0.5)
    assert tracker.update([det(3, 3)], t=0.9).active[0].track_id == face_id


def test_unconfirmed_tracks_end_silently():
    tracker = IouTracker(max_missed_s=0.2, min_hits=2)
    tracker.update([det(0, 0)], t=0.0)
    assert tracker.update([], t=1.0).ended == []


def test_a_walking_face_keeps_its_id_through_half_a_second_behind_a_pillar():
    """100 px wide, 100 px/s to the right, 10 fps: it reappears 60 px on, where IoU with its last box is only 0.25."""
    tracker = IouTracker(iou_threshold=0.3, max_missed_s=1.0, min_hits=2)
    ids = set()
    for frame in range(30):
        t = frame / 10
        hidden = 10 <= frame < 15  # 0.5 s occlusion
        detections = [] if hidden else [Detection((round(100 + 100 * t), 50, 100, 100), 0.9)]
        update = tracker.update(detections, t)
        ids |= {track.track_id for track in update.active}
        assert update.ended == []
    assert len(ids) == 1, f"the face came back as {sorted(ids)}"


def test_coasting_carries_a_moving_face_between_detections_without_sighting_it():
    """Detection every 3rd frame: in between, the track is where its motion puts it, and its last sighting stays put."""
    tracker = IouTracker(iou_threshold=0.3, max_missed_s=1.0, min_hits=2)
    landmarks = ((120.0, 70.0), (160.0, 70.0), (140.0, 90.0))
    for frame in range(30):
        t = frame / 10
        x = round(100 + 100 * t)
        if frame % 3 == 0:
            update = tracker.update([Detection((x, 50, 100, 100), 0.9, landmarks)], t)
        else:
            update = tracker.coast(t, (640, 360))
        if frame >= 3:
            [track] = update.active
            # The velocity estimate converges over the first sightings; a tenth of the box width behind at worst.
            tolerance = 2 if frame >= 12 else 10
            assert abs(track.box[0] - x) <= tolerance, f"frame {frame}: the box is at {track.box[0]}, the face at {x}"
            shift = track.box[0] - round(100 + 100 * (frame - frame % 3) / 10)
            assert track.landmarks[0][0] == pytest.approx(120.0 + shift, abs=2)
        assert update.ended == []
    [live] = tracker.tracks
    assert live.last_seen == pytest.approx(2.7) and live.hits == 10


def test_coasting_ends_a_face_no_detection_has_seen_for_max_missed():
    tracker = IouTracker(max_missed_s=1.0, min_hits=1)
    tracker.update([det(10, 10)], 0.0)
    assert [t.track_id for t in tracker.coast(0.9, (640, 360)).active] == [1]
    update = tracker.coast(1.1, (640, 360))
    assert update.active == [] and update.ended == [1]


def test_a_face_carried_out_of_the_frame_is_clipped_then_left_out_and_ends_like_a_missed_one():
    """A 480x272 frame and a face rushing up and to the right: between detections its prediction leaves the frame."""
    tracker = IouTracker(max_missed_s=1.0, min_hits=2)
    tracker.update([Detection((300, 60, 146, 193), 0.9)], 0.0)
    [track] = tracker.update([Detection((334, 0, 146, 193), 0.9)], 0.1).active
    assert track.velocity == (170.0, -300.0)
    [partly] = tracker.coast(0.2, (480, 272)).active  # predicted at (351, -30): three quarters still inside
    assert partly.box == (351, 0, 129, 163)
    assert tracker.coast(0.5, (480, 272)).active == [], "predicted at (402, -120): a fifth inside, the face has left"
    assert tracker.coast(1.0, (480, 272)).active == [] and tracker.tracks, "not reported, but not ended before max_missed_s"
    assert tracker.coast(1.2, (480, 272)).ended == [track.track_id]


@settings(max_examples=300, deadline=None)
@given(
    frame=st.tuples(st.integers(16, 1920), st.integers(16, 1080)),
    corner=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    size=st.tuples(st.floats(0.01, 1), st.floats(0.01, 1)),
    velocity=st.tuples(st.floats(-5000, 5000), st.floats(-5000, 5000)),
    dt=st.floats(0, 2),
)
def test_a_carried_box_is_always_inside_the_frame_and_can_be_cropped(frame, corner, size, velocity, dt):
    width, height = frame
    x, y = int(corner[0] * (width - 1)), int(corner[1] * (height - 1))
    w, h = max(1, int(size[0] * (width - x))), max(1, int(size[1] * (height - y)))
    track = Track(1, (x, y, w, h), 0.9, first_seen=0.0, last_seen=0.0, hits=2, velocity=velocity)
    carried = track.coasted(dt, (width, height))
    px, py, _, _ = track.predicted(dt)
    visible = max(min(px + w, width) - max(px, 0), 0) * max(min(py + h, height) - max(py, 0), 0)
    if carried is None:
        assert visible < MIN_VISIBLE_SHARE * w * h
        return
    cx, cy, cw, ch = carried.box
    assert 0 <= cx and 0 <= cy and cw > 0 and ch > 0 and cx + cw <= width and cy + ch <= height
    assert cw * ch == visible >= MIN_VISIBLE_SHARE * w * h
    assert crop_face(np.zeros((height, width, 3), np.uint8), carried.box).size > 0

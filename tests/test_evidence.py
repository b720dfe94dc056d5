"""Alert pictures: made on the frame the event was read from, kept under a size cap for a retention time."""

from __future__ import annotations

import os
import uuid

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fer_stream.alerts.message import Alert
from fer_stream.evidence.recorder import EvidenceRecorder
from fer_stream.evidence.store import SnapshotStore
from fer_stream.messages import AlertPictures
from tests.alerts_fixtures import make_alert

T0 = 1_790_000_000.0


def pictures(size: int, event: str = "start", face: int | None = None) -> AlertPictures:
    return AlertPictures(name=f"{uuid.uuid4().hex}-{event}", frame_jpeg=b"x" * size, face_jpeg=None if face is None else b"y" * face)


def on_disk(store: SnapshotStore) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(store.directory))


def test_the_cap_removes_the_oldest_first(tmp_path) -> None:
    now = [T0]
    store = SnapshotStore(tmp_path, max_bytes=1000, retention_s=3600, clock=lambda: now[0])
    kept = []
    for _ in range(6):
        p = pictures(300)
        store.put(p)
        kept.append(p.name)
        now[0] += 1
        assert on_disk(store) == store.bytes <= 1000
    assert [store.path(f"{n}.jpg") is not None for n in kept] == [False, False, False, True, True, True]
    assert store.path("../../etc/passwd") is None and store.path(f"{kept[-1]}.png") is None


def test_pictures_expire_and_are_never_served_after_their_retention(tmp_path) -> None:
    now = [T0]
    store = SnapshotStore(tmp_path, max_bytes=10_000, retention_s=60, clock=lambda: now[0])
    old, new = pictures(100, face=50), pictures(100)
    store.put(old)
    now[0] += 30
    store.put(new)
    now[0] += 31
    assert store.path(f"{old.name}.jpg") is None, "expired, even before a sweep"
    assert store.sweep() == 2 and not (tmp_path / f"{old.name}-face.jpg").exists()
    assert store.path(f"{new.name}.jpg") is not None and store.bytes == 100 == on_disk(store)


def test_a_restart_picks_up_the_pictures_and_still_keeps_the_cap(tmp_path) -> None:
    store = SnapshotStore(tmp_path, max_bytes=1000, retention_s=3600)
    first = pictures(400)
    store.put(first)
    (tmp_path / f".tmp-{first.name}.jpg").write_bytes(b"half")  # an interrupted write
    again = SnapshotStore(tmp_path, max_bytes=500, retention_s=3600)
    assert again.bytes == 400 and again.path(f"{first.name}.jpg") is not None
    assert not (tmp_path / f".tmp-{first.name}.jpg").exists()
    again.put(pictures(300))
    assert again.bytes == 300 == on_disk(again)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=30), cap=st.integers(100, 2000))
def test_storage_never_exceeds_its_cap(tmp_path_factory, sizes, cap) -> None:
    store = SnapshotStore(tmp_path_factory.mktemp("snaps"), max_bytes=cap, retention_s=3600)
    for size in sizes:
        store.put(pictures(size, face=size // 3))
        assert on_disk(store) == store.bytes <= cap


def frame(value: int) -> np.ndarray:
    image = np.full((360, 640, 3), value, np.uint8)
    cv2.rectangle(image, (100, 100), (200, 220), (255, 255, 255), -1)
    return image


def start_at(t: float) -> Alert:
    alert = make_alert(camera="lobby")
    return Alert.model_validate({**alert.model_dump(), "event_at": T0 + t, "started_at": T0 + t - 1,
                                 "box": {"x": 100, "y": 100, "w": 100, "h": 120}})


def test_an_event_is_pictured_on_the_frame_it_was_read_from() -> None:
    recorder = EvidenceRecorder(blur=False)
    for i in range(10):
        recorder.remember(frame(i * 20), T0 + i * 0.1, ((100, 100, 100, 120),))
    alert, pics = recorder.picture(start_at(0.3))
    assert alert.snapshot is not None and alert.snapshot.frame == f"/snapshots/{alert.episode_id}-start.jpg"
    assert alert.snapshot.face == f"/snapshots/{alert.episode_id}-start-face.jpg"
    image = cv2.imdecode(np.frombuffer(pics.frame_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 640, 3)
    assert abs(int(image[10, 600].mean()) - 60) <= 3, "the frame of 0.3 s, not the latest"
    face = cv2.imdecode(np.frombuffer(pics.face_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert face.shape[0] == 192 and face[96, face.shape[1] // 2].mean() > 200
    update = make_alert(camera="lobby").model_copy(update={"event": "update"})
    assert recorder.picture(update) is None, "updates carry no pictures"


def test_blurred_evidence_has_no_face_picture_and_no_recognisable_face() -> None:
    recorder = EvidenceRecorder(blur=True)
    image = frame(0)
    image[100:220, 100:200] = np.random.default_rng(0).integers(0, 255, (120, 100, 3), dtype=np.uint8)
    recorder.remember(image, T0, ((100, 100, 100, 120),))
    alert, pics = recorder.picture(start_at(0))
    assert pics.face_jpeg is None and alert.snapshot is not None and alert.snapshot.face is None
    pictured = cv2.imdecode(np.frombuffer(pics.frame_jpeg, np.uint8), cv2.IMREAD_COLOR)
    inner = pictured[130:190, 125:175].astype(float)
    assert cv2.Laplacian(inner, cv2.CV_64F).var() < cv2.Laplacian(image[130:190, 125:175].astype(float), cv2.CV_64F).var() / 10


def test_frames_older_than_the_window_are_let_go() -> None:
    recorder = EvidenceRecorder(blur=False, window_s=2.0)
    for i in range(100):
        recorder.remember(frame(0), T0 + i * 0.1, ())
    assert len(recorder._frames) <= 21


def test_pictures_are_kept_and_served_whatever_the_config_file_is_called(tmp_path, monkeypatch) -> None:
    """The default directory does not depend on the config's path, and a daemon serves what another one wrote there."""
    from fer_stream.alerts.config import SnapshotSettings

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    directory = SnapshotSettings().path()
    assert directory == tmp_path / "state" / "fer-stream" / "snapshots"
    serving = SnapshotStore(directory, max_bytes=10_000, retention_s=3600)
    other = SnapshotStore(directory, max_bytes=10_000, retention_s=3600)  # a renamed config, another shard
    kept = pictures(100)
    other.put(kept)
    assert serving.path(f"{kept.name}.jpg") == directory / f"{kept.name}.jpg"
    assert serving.path(f"{uuid.uuid4().hex}-start.jpg") is None
    os.utime(directory / f"{kept.name}.jpg", (0, 0))
    assert serving.path(f"{kept.name}.jpg") is None, "past the retention it is not served"

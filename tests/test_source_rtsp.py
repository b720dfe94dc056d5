"""FrameSource against a real RTSP server (GStreamer, loopback): frames, outages, reconnects, credentials."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from rtsp_fixtures import free_port

from fer_stream.camera import FrameSource, SourceState
from fer_stream.config import parse_config
from fer_stream.config.models import CameraConfig

pytestmark = pytest.mark.timeout(180)


def metric(name: str, camera: str) -> float:
    return REGISTRY.get_sample_value(name, {"camera": camera}) or 0.0


def wait_for(predicate, timeout: float = 45.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def frames_flow(source: FrameSource, count: int = 5, timeout: float = 45.0) -> bool:
    got = 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        got += source.latest(timeout=1.0) is not None
    return got >= count


def test_rtsp_stream_goes_down_when_the_server_stops_and_comes_back_by_itself(rtsp_server, media_dir: Path):
    server = rtsp_server({"calm": media_dir / "calm_woman.mp4"})
    camera = CameraConfig(
        name="rtsp-outage", source=server.url("calm"), stall_timeout_s=2, reconnect_initial_s=0.2, reconnect_max_s=1
    )
    with FrameSource(camera) as source:
        assert frames_flow(source), f"no frames over RTSP (state {source.state})"
        assert source.state is SourceState.UP and metric("fer_camera_up", "rtsp-outage") == 1
        frame = source.latest(timeout=5)
        assert frame is not None and frame.image.shape == (336, 596, 3)

        server.stop()
        assert wait_for(lambda: source.state is SourceState.DOWN), "camera not reported down after the server stopped"
        assert metric("fer_camera_up", "rtsp-outage") == 0
        assert metric("fer_camera_stalls_total", "rtsp-outage") >= 1
        assert wait_for(lambda: metric("fer_camera_reconnects_total", "rtsp-outage") >= 2), "no retries while down"

        server.start()
        assert wait_for(lambda: source.state is SourceState.UP), "camera did not come back after the server restarted"
        assert frames_flow(source)
        assert metric("fer_camera_up", "rtsp-outage") == 1


def test_unreachable_rtsp_camera_is_down_and_retries_without_raising():
    camera = CameraConfig(
        name="rtsp-nowhere", source=f"rtsp://127.0.0.1:{free_port()}/none", open_timeout_s=2,
        reconnect_initial_s=0.2, reconnect_max_s=0.5,
    )  # fmt: skip
    with FrameSource(camera) as source:
        assert wait_for(lambda: metric("fer_camera_reconnects_total", "rtsp-nowhere") >= 2, timeout=30)
        assert source.state is SourceState.DOWN
        assert source.latest(timeout=0.1) is None
        assert metric("fer_camera_up", "rtsp-nowhere") == 0


def test_credentials_come_from_the_environment_and_never_reach_the_logs(
    rtsp_server, media_dir: Path, monkeypatch, caplog, tmp_path: Path
):
    secret = "s3cr3t-pw"
    server = rtsp_server({"cam": media_dir / "smiling_woman_phone.mp4"}, user="viewer", password=secret)
    monkeypatch.setenv("CAM_PASSWORD", secret)
    config = parse_config(
        f"cameras:\n  - name: rtsp-auth\n    source: rtsp://viewer:${{CAM_PASSWORD}}@127.0.0.1:{server.port}/cam\n"
        f"  - name: rtsp-badauth\n    source: rtsp://viewer:wrong@127.0.0.1:{server.port}/cam\n"
        "    reconnect_initial_s: 0.2\n    open_timeout_s: 3\n",
        base_dir=tmp_path,
    )
    caplog.set_level(logging.DEBUG, logger="fer_stream")
    with FrameSource(config.camera("rtsp-auth")) as good, FrameSource(config.camera("rtsp-badauth")) as bad:
        assert frames_flow(good), f"authenticated stream gave no frames (state {good.state})"
        assert wait_for(lambda: bad.state is SourceState.DOWN), "a wrong password must leave the camera down"
        assert bad.latest(timeout=0.1) is None
    assert "viewer:***@" in caplog.text
    assert secret not in caplog.text and "wrong" not in caplog.text
    assert secret not in repr(config) and secret not in str(config.camera("rtsp-auth"))


def test_test_server_loops_its_file_so_the_stream_outlives_the_clip(rtsp_server, media_dir: Path):
    server = rtsp_server({"short": media_dir / "smiling_woman_phone.mp4"})  # a 4.7 s clip
    camera = CameraConfig(name="rtsp-loop", source=server.url("short"), stall_timeout_s=3)
    with FrameSource(camera) as source:
        assert frames_flow(source, count=1)
        first = time.monotonic()
        assert wait_for(lambda: time.monotonic() - first > 8.0 and source.latest(timeout=1.0) is not None, timeout=30)
        assert metric("fer_camera_stalls_total", "rtsp-loop") == 0, "the stream ended at the end of the clip"
        assert source.state is SourceState.UP


def test_a_failed_open_names_its_cause(rtsp_server, media_dir: Path):
    from fer_stream.camera.diagnosis import diagnose

    secret = "s3/cr#t?@x"
    server = rtsp_server({"cam": media_dir / "smiling_woman_phone.mp4"}, user="viewer", password=secret)
    host = server.url("cam").split("://", 1)[1].split("/", 1)[0]

    def cause(source: str) -> str:
        return diagnose(CameraConfig(name="door", source=source, open_timeout_s=2))

    assert "refused the credentials (401)" in cause(f"rtsp://viewer:wrong@{host}/cam")
    assert "refused the credentials (401)" in cause(f"rtsp://{host}/cam"), "no credentials at all"
    assert "no stream at /nope (404)" in cause(f"rtsp://viewer:{secret}@{host}/nope")
    assert "describes the stream" in cause(f"rtsp://viewer:{secret}@{host}/cam"), "right credentials and path"
    assert "connection refused by 127.0.0.1" in cause(f"rtsp://viewer:{secret}@127.0.0.1:{free_port()}/cam")
    source = FrameSource(CameraConfig(name="door", source=f"rtsp://viewer:wrong@{host}/cam", open_timeout_s=2))
    try:
        assert wait_for(lambda: "401" in source.reason, timeout=30), source.reason
        assert source.state is SourceState.DOWN and "wrong" not in source.reason and secret not in source.reason
    finally:
        source.close()


def test_a_stalled_stream_is_down_stall_timeout_after_its_last_frame(rtsp_server, media_dir: Path):
    """The server stops sending but keeps the connection (SIGSTOP): FFmpeg's own read would block 3x longer."""
    import os
    import signal

    server = rtsp_server({"cam": media_dir / "calm_woman.mp4"})
    source = FrameSource(CameraConfig(name="stall", source=server.url("cam"), stall_timeout_s=2))
    try:
        assert frames_flow(source, count=10)
        os.kill(server.process.pid, signal.SIGSTOP)
        last = time.monotonic()
        while source.state is SourceState.UP and time.monotonic() - last < 20:
            if source.latest(timeout=0.05) is not None:
                last = time.monotonic()  # frames already buffered still arrive for a while
        silent = time.monotonic() - last
        assert source.state is SourceState.DOWN and 1.9 <= silent <= 3.0, f"down after {silent:.1f} s without frames"
        assert "no frame for 2 s" in source.reason
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        source.close()

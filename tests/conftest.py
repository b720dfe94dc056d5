"""Fixtures every area's tests share: the ../shared data and a real RTSP server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rtsp_fixtures import MISSING_GST, RtspServer, gstreamer_available

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Daemons started by the tests keep their alert journals here, not in the home directory."""
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (override with FER_STREAM_SHARED). Missing data is a failure, not a skip."""
    path = Path(os.environ.get("FER_STREAM_SHARED", REPO.parent / "shared")).resolve()
    if not (path / "media").is_dir():
        pytest.fail(f"shared data not found at {path}: put ../shared beside the checkout or set FER_STREAM_SHARED")
    return path


@pytest.fixture(scope="session")
def media_dir(shared_dir: Path) -> Path:
    return shared_dir / "media"


@pytest.fixture(scope="session")
def yunet_model(shared_dir: Path) -> Path:
    return shared_dir / "models" / "face_detection_yunet.onnx"


@pytest.fixture(scope="session")
def _gstreamer() -> None:
    if not gstreamer_available():
        pytest.fail(MISSING_GST)


@pytest.fixture
def rtsp_server(_gstreamer: None) -> Iterator[Callable[..., RtspServer]]:
    """Factory: ``rtsp_server({"cam": path}, user=..., password=..., loop=True)`` -> a started server.

    Use ``server.stop()`` / ``server.start()`` to take it away and bring it back on the same port;
    every server is stopped at teardown.
    """
    servers: list[RtspServer] = []

    def start(mounts: dict[str, Path], **options) -> RtspServer:
        server = RtspServer(mounts, **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()

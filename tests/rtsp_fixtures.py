"""Start and stop the GStreamer RTSP test server (tests/rtsp_server.py) as a separate process.

GStreamer's Python bindings load only under Debian's interpreter, so the server
runs as ``/usr/bin/python3 tests/rtsp_server.py``. A server can be stopped and
started again on the same port, which is how tests make a camera disappear and
come back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

SYSTEM_PYTHON = os.environ.get("FER_STREAM_GST_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
MISSING_GST = (
    "the RTSP test server needs GStreamer's RTSP server for Debian's python3: "
    "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad (or point FER_STREAM_GST_PYTHON at an interpreter that has them)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gstreamer_available() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RtspServer:
    """One server process serving ``mounts`` (name -> mp4) at rtsp://127.0.0.1:port/name."""

    def __init__(self, mounts: dict[str, Path], *, port: int | None = None, user: str | None = None,
                 password: str | None = None, loop: bool = True):  # fmt: skip
        self.mounts = mounts
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.loop = loop
        self.process: subprocess.Popen[str] | None = None
        # stderr goes to a file: a pipe nobody drains would block GStreamer once full.
        fd, log = tempfile.mkstemp(prefix=f"rtsp-server-{self.port}-", suffix=".log")
        os.close(fd)
        self.log = Path(log)

    def url(self, name: str, *, with_credentials: bool = False) -> str:
        auth = ""
        if with_credentials and self.user:
            auth = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@"
        return f"rtsp://{auth}127.0.0.1:{self.port}/{name}"

    def start(self, timeout: float = 30.0) -> RtspServer:
        env = {**os.environ}
        if self.user:
            env.update(RTSP_TEST_USER=self.user, RTSP_TEST_PASSWORD=self.password or "")
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port)]
        command += [] if self.loop else ["--no-loop"]
        command += [f"{name}={path}" for name, path in self.mounts.items()]
        deadline = time.monotonic() + timeout
        while True:  # the port may linger briefly after a stop
            with open(self.log, "a") as log:
                self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
            line = self.process.stdout.readline()
            if line.strip() == "READY":
                break
            self.process.wait(5)
            port_busy = "cannot listen" in self.log.read_text()
            if not port_busy or time.monotonic() > deadline:
                raise RuntimeError(f"RTSP test server did not start on port {self.port}: {self.log.read_text()[-2000:]}")
            time.sleep(0.5)
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"RTSP test server on port {self.port} printed READY but accepts no connection")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process.stdout.close()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

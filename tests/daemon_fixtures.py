"""Helpers for end-to-end daemon tests: polling, HTTP, /metrics parsing, process checks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from redis_fixtures import RedisServer, free_port, subprocess_env

REPO = Path(__file__).resolve().parents[1]
FER_STREAM = str(Path(sys.executable).with_name("fer-stream"))


def wait_for(what: str, condition: Callable[[], object], timeout: float = 60.0, every: float = 0.5):
    """Poll until ``condition()`` is truthy; fail naming ``what``. Generous timeouts: CI has 2 busy cores."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def http_get(url: str, timeout: float = 10.0, token: str | None = None) -> tuple[int, bytes]:
    """GET, with the console's token as a bearer token when given; (0, b"") when nothing answers."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


class Metrics:
    """One scrape of /metrics, by sample name and labels."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(v for n, lab, v in self.samples if n == name and all(lab.get(k) == w for k, w in labels.items()))

    def by_label(self, name: str, label: str, **labels: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for n, lab, v in self.samples:
            if n == name and label in lab and all(lab.get(k) == w for k, w in labels.items()):
                out[lab[label]] = out.get(lab[label], 0.0) + v
        return out


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def process_title(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return fh.read().replace(b"\0", b" ").decode().strip()


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (the daemon's clean shutdown), then SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def camera(name: str, path: Path, loop: bool = False) -> str:
    return f"  - name: {name}\n    source: {path}\n    loop: {str(loop).lower()}\n    fps: 10\n"


class Daemon:
    """``fer-stream run`` on a generated YAML (``extra``: more top-level sections), started and ready for HTTP."""

    def __init__(self, tmp: Path, redis: RedisServer, cameras: str, yunet: Path, extra: str = "", env: dict | None = None,
                 host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "cameras.yaml"
        config.write_text(f"""
detector:
  backend: yunet
  model_path: {yunet}
http:
  host: {host}
  port: {self.port}
redis:
  url: {redis.url}
{extra}
cameras:
{cameras}
""")
        self.log = tmp / "daemon.log"
        env = {**subprocess_env(), **(env or {})}
        for name in ("FER_STREAM_REDIS_URL", "FER_STREAM_REDIS_PASSWORD", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        with open(self.log, "w") as out:
            self.process = subprocess.Popen([FER_STREAM, "run", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_for("/healthz", lambda: self.process.poll() is not None or http_get(self.url + "/healthz")[0] == 200, timeout=90)
        assert self.process.poll() is None, f"daemon exited with {self.process.returncode}: {self.log.read_text()[-3000:]}"

    def metrics(self) -> Metrics:
        code, body = http_get(self.url + "/metrics")
        assert code == 200, f"/metrics answered {code}; daemon log: {self.log}"
        return Metrics(body.decode())

    def stream_start(self, camera: str) -> float:
        """A lower bound of when the camera's first frame was read: the last scrape that saw none."""
        before = time.time()
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()[-3000:]}")
            if self.metrics().value("fer_camera_frames_read_total", camera=camera) > 0:
                return before
            before = time.time()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def refused(config_text: str, tmp_path: Path, key: str, **env: str) -> None:
    """check-config and run both exit 2 within 5 s, naming ``key``."""
    config = tmp_path / "cameras.yaml"
    config.write_text(config_text)
    environment = {**subprocess_env(), **env}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for command in (["check-config", str(config)], ["run", "--config", str(config)]):
        started = time.monotonic()
        done = subprocess.run([FER_STREAM, *command], capture_output=True, text=True, timeout=60, env=environment)
        elapsed = time.monotonic() - started
        assert done.returncode == 2, f"{command[0]} exited {done.returncode}: {done.stderr[-1500:]}"
        assert key in done.stderr, f"{command[0]} does not name {key!r}: {done.stderr[-1500:]}"
        assert elapsed < 5.0, f"{command[0]} took {elapsed:.1f} s"


def camera_yaml(media_dir: Path, extra: str = "", camera_extra: str = "") -> str:
    return f"{extra}\ncameras:\n  - name: door\n    source: {media_dir / 'angry_man.mp4'}\n{camera_extra}"

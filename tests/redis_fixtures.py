"""A real ``redis-server`` per test, on a free loopback port, that can be stopped and restarted.

Tests never touch the shared 127.0.0.1:6379: each gets its own server in a temp
dir (no persistence), so outage tests can stop it without disturbing anyone.
Import the fixtures into a test module with
``from redis_fixtures import redis_server, redis_server_with_password``
(pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PASSWORD_ENV = "FER_STREAM_REDIS_PASSWORD"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process; stop() and start() keep the same port, like a real Redis restart."""

    def __init__(self, directory: Path, password: str | None = None, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.password = password
        self.host = host
        self.port = free_port()
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The URL without the password: the password travels through the environment, as in production."""
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password, socket_timeout=5)

    def start(self) -> None:
        config = self.directory / "redis.conf"
        lines = [
            f"port {self.port}",
            f"bind {self.host}",
            # A test server on a bridge address for other network namespaces: it lives only as long as the test.
            f"protected-mode {'yes' if self.host.startswith('127.') else 'no'}",
            f"dir {self.directory}",
            'save ""',
            "appendonly no",
            "daemonize no",
            f"logfile {self.directory / 'redis.log'}",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        self._process = subprocess.Popen([REDIS_SERVER, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited: {log}")
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING within 15 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


def _serve(directory: Path, password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(directory, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A fresh passwordless redis-server; the URL/password environment of the test is cleared."""
    monkeypatch.delenv("FER_STREAM_REDIS_URL", raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    yield from _serve(tmp_path)


@pytest.fixture
def redis_server_with_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A redis-server with ``requirepass``; the right password is in FER_STREAM_REDIS_PASSWORD."""
    password = secrets.token_hex(16)
    monkeypatch.delenv("FER_STREAM_REDIS_URL", raising=False)
    monkeypatch.setenv(PASSWORD_ENV, password)
    yield from _serve(tmp_path, password=password)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ``fer-stream`` child process: this one's, with PYTHONUNBUFFERED and extras."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}

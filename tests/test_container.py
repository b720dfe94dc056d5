"""The container image and the compose stack, built and run with podman, with no container registry.

The base image is a Debian 12 root file system made here by ``mmdebstrap`` from Debian's packages
(Python 3.11, its venv module, useradd), imported into podman once and kept between runs under a
tag named after its recipe. The fer-stream image is built from the repository's Containerfile
FROM that base, with pip reaching its index through this machine's CA bundle (a build secret) and
podman's layer cache keeping unchanged layers. Then the image is run as a user runs it:

- ``--version``, and ``check-config`` on a mounted YAML (refused without the console token);
- the daemon on the three demo videos (the shared data at ``/data``, the journal on a named volume,
  the StatefulSet's restrictions: read-only root, no capabilities, a tmpfs ``/tmp``): ``/healthz``,
  ``/readyz`` and ``/metrics`` on the published port, the image's HEALTHCHECK passing, every process
  running as uid 10001, ``podman stop`` ending it within 5 s; with Redis absent its alerts wait in
  the journal, and a restart on the same volume delivers them to a Redis on the host;
- ``deploy/compose/compose.yaml`` with ``podman-compose``, through ``tests/container/compose.override.yaml``
  and local stand-ins for the images that come from registries (``tests/container/standins.Containerfile``):
  alerts reach the stack's Redis, Prometheus scrapes fer-stream and evaluates the shipped rules.

The image's size, its start time to ``/readyz`` 200 and its memory with three demo cameras are
printed (``pytest tests/test_container.py -s``); docs/operations.md quotes them.

podman needs ``default_ulimits = []`` on machines where it may not raise the open-files limit; the
tests write that ``containers.conf`` and point ``CONTAINERS_CONF`` at it for their own commands.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from daemon_fixtures import REPO, Metrics, http_get, wait_for
from redis_fixtures import RedisServer, free_port

import fer_stream

pytestmark = pytest.mark.slow

HERE = Path(__file__).with_name("container")
CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"
OVERRIDE = HERE / "compose.override.yaml"
STANDINS = HERE / "standins.Containerfile"
ALERTS_YML = REPO / "deploy" / "prometheus" / "alerts.yml"

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "passwd")
BASE_RECIPE = f"mmdebstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {SUITE}"
BASE_TAG = f"localhost/fer-stream-test-base:{SUITE}-{hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:12]}"
IMAGE_TAG = "localhost/fer-stream:test"
TOOLS = ("podman", "mmdebstrap", "podman-compose")
# From inside a container on slirp4netns with allow_host_loopback, this address is the host's 127.0.0.1.
HOST_LOOPBACK = "10.0.2.2"
TOKEN = "a-console-token-for-the-container-test"
DEMO_CAMERAS = {"angry-man": "angry_man.mp4", "calm-woman": "calm_woman.mp4", "smiling-woman": "smiling_woman_phone.mp4"}

#: What the tests measured, printed at the end of each test that adds to it.
FIGURES: dict[str, str] = {}


def _installable(package: str) -> bool:
    """True when apt knows a candidate for ``package`` (so ``make setup`` can install it)."""
    if not shutil.which("apt-cache"):
        return False
    done = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and "Candidate:" in done.stdout and "Candidate: (none)" not in done.stdout


class Podman:
    """podman (and podman-compose) with this test's containers.conf; every call checked unless told not to."""

    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def run(self, *args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None,
            tool: str = "podman") -> subprocess.CompletedProcess[str]:  # fmt: skip
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout, env={**self.env, **(env or {})},
                              stdin=subprocess.DEVNULL)  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def __call__(self, *args: str, **options) -> subprocess.CompletedProcess[str]:
        return self.run(*args, **options)

    def exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0

    def size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).stdout)

    def logs(self, container: str) -> str:
        done = self.run("logs", container, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def remove(self, *containers: str) -> None:
        for container in containers:
            self.run("rm", "--force", "--time", "2", container, check=False)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        if all(_installable(tool) for tool in missing):
            pytest.fail(f"{', '.join(missing)} missing: `make setup` installs them (Debian packages podman, buildah, "
                        "mmdebstrap, podman-compose)")  # fmt: skip
        pytest.skip(f"{', '.join(missing)} cannot be installed on this machine (no Debian package candidate): "
                    "the container image and the compose stack are not built here")  # fmt: skip
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text("[containers]\n# podman's default open-files limit is above what some machines let it set\ndefault_ulimits = []\n")
    return Podman(conf)


@pytest.fixture(scope="module")
def base_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Debian 12 base with Python 3.11, made from Debian's packages once and kept under its recipe's tag."""
    if podman.exists(BASE_TAG):
        return BASE_TAG
    started = time.monotonic()
    tar = tmp_path_factory.mktemp("base") / "base.tar"
    done = subprocess.run([*BASE_RECIPE.split(), str(tar)], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{BASE_RECIPE}: exit {done.returncode}\n{done.stderr[-3000:]}"
    podman("import", str(tar), BASE_TAG, timeout=300)
    tar.unlink()
    FIGURES["base image made (cold)"] = f"{time.monotonic() - started:.0f} s"
    return BASE_TAG


def _pip_setting(name: str) -> str | None:
    """This machine's pip setting ``name`` (environment first, then pip's configuration files)."""
    value = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
    if value:
        return value
    done = subprocess.run([sys.executable, "-m", "pip", "config", "get", f"global.{name}"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def build_arguments() -> list[str]:
    """The index and CA bundle pip uses here, for the image build: a build secret and a build argument, never in the image."""
    arguments = []
    cert = _pip_setting("cert") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    if Path(cert).is_file():
        arguments += ["--secret", f"id=pip-ca,src={cert}"]
    index = _pip_setting("index-url")
    if index and index.startswith(("http://", "https://")):
        arguments += ["--build-arg", f"PIP_INDEX={index}"]
    return arguments


@pytest.fixture(scope="module")
def image(podman: Podman, base_image: str) -> str:
    """The fer-stream image built from the repository on the local base (a warm layer cache makes this seconds)."""
    started = time.monotonic()
    podman("build", "--format", "docker", "--file", str(CONTAINERFILE), "--build-arg", f"BASE_IMAGE={base_image}",
           *build_arguments(), "--tag", IMAGE_TAG, str(REPO), timeout=1200)  # fmt: skip
    FIGURES["image build"] = f"{time.monotonic() - started:.0f} s"
    return IMAGE_TAG


@pytest.fixture(scope="module")
def standins(podman: Podman, base_image: str) -> str:
    """Redis, Prometheus and GStreamer's RTSP server from Debian's packages, on the same base."""
    tag = f"localhost/fer-stream-test-standins:{base_image.rsplit(':', 1)[1]}"
    started = time.monotonic()
    podman("build", "--format", "docker", "--file", str(STANDINS), "--build-arg", f"BASE_IMAGE={base_image}",
           "--tag", tag, str(HERE), timeout=1200)  # fmt: skip
    FIGURES["stand-ins build"] = f"{time.monotonic() - started:.0f} s"
    return tag


def print_figures() -> None:
    print("\ncontainer figures: " + "; ".join(f"{k}: {v}" for k, v in FIGURES.items()))


def cameras_yaml(shared: str = "/data", host: str = "0.0.0.0") -> str:
    cameras = "".join(f"  - name: {name}\n    source: {shared}/media/{file}\n    loop: true\n    fps: 10\n"
                      for name, file in DEMO_CAMERAS.items())  # fmt: skip
    return (f"detector:\n  model_path: {shared}/models/face_detection_yunet.onnx\n"
            f"http:\n  host: {host}\n  port: 9101\ncameras:\n{cameras}")  # fmt: skip


@pytest.mark.timeout(1500)
def test_the_image_is_lean_reports_its_version_and_checks_a_mounted_config(podman: Podman, image: str, base_image: str,
                                                                             shared_dir: Path, tmp_path: Path) -> None:  # fmt: skip
    done = podman("run", "--rm", image, "--version")
    assert done.stdout.strip() == f"fer-stream {fer_stream.__version__}"

    [config] = json.loads(podman("image", "inspect", image).stdout)
    settings = config["Config"]
    assert settings["User"] == "10001:10001", settings["User"]
    assert not [e for e in settings["Env"] if e.startswith(("PIP_", "SSL_", "REQUESTS_CA"))], "no build-time pip setting in the image"
    assert "/var/lib/fer-stream" in settings["Volumes"] and "9101/tcp" in settings["ExposedPorts"]
    assert (config.get("Healthcheck") or {}).get("Test", [None])[0] == "CMD", "the HEALTHCHECK is in the image (docker format)"
    probe = ("import importlib.util as u, shutil; "
             "print([m for m in ('tensorflow', 'keras', 'pip', 'setuptools') if u.find_spec(m)], shutil.which('gcc'))")  # fmt: skip
    done = podman("run", "--rm", "--entrypoint", "python", image, "-c", probe)
    assert done.stdout.split() == ["[]", "None"], f"the runtime carries no TensorFlow, pip or compiler: {done.stdout}"

    size, base = podman.size(image), podman.size(base_image)
    FIGURES["image size"] = f"{size / 1e6:.0f} MB ({base / 1e6:.0f} MB base + {(size - base) / 1e6:.0f} MB fer-stream and dependencies)"
    assert size - base < 450e6, "fer-stream's layers grew past 450 MB: a heavy dependency came in"

    config_file = tmp_path / "cameras.yaml"
    config_file.write_text(cameras_yaml())
    config_file.chmod(0o644)
    mounts = ["-v", f"{config_file}:/etc/fer-stream/cameras.yaml:ro", "-v", f"{shared_dir}:/data:ro"]
    refused = podman("run", "--rm", *mounts, image, "check-config", "/etc/fer-stream/cameras.yaml", check=False)
    assert refused.returncode == 2 and "FER_STREAM_CONSOLE_TOKEN" in refused.stderr, refused.stderr[-2000:]
    checked = podman("run", "--rm", *mounts, "-e", f"FER_STREAM_CONSOLE_TOKEN={TOKEN}", image,
                     "check-config", "/etc/fer-stream/cameras.yaml")  # fmt: skip
    assert "OK" in checked.stdout and "model: shipped default" in checked.stdout, checked.stdout
    for name in DEMO_CAMERAS:
        assert name in checked.stdout
    print_figures()


def cgroup_memory(podman: Podman, container: str) -> int:
    """The container's memory as a limit sees it: cgroup usage less the inactive file cache (what `podman stats` shows)."""
    path = podman("inspect", "--format", "{{.State.CgroupPath}}", container).stdout.strip()
    v1 = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    if v1.is_dir():
        usage = int((v1 / "memory.usage_in_bytes").read_text())
        stat = dict(line.split() for line in (v1 / "memory.stat").read_text().splitlines())
        return usage - int(stat.get("total_inactive_file", 0))
    v2 = Path("/sys/fs/cgroup") / path.lstrip("/")
    stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
    return int((v2 / "memory.current").read_text()) - int(stat.get("inactive_file", 0))


def proportional_memory(podman: Podman, container: str) -> dict[str, int]:
    """Each of the container's processes' PSS (a page shared between processes counted once), by process title."""
    out: dict[str, int] = {}
    for line in podman("top", container, "hpid", "args").stdout.splitlines()[1:]:
        pid, title = line.split(None, 1)
        title = title.strip().removeprefix("fer-stream: ")
        for entry in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if entry.startswith("Pss:"):
                out[title if len(title) < 40 else "resource tracker"] = int(entry.split()[1]) * 1024
    return out


class Container:
    """One ``podman run -d`` of the image: the daemon on a config, published on a loopback port of the host."""

    def __init__(self, podman: Podman, image: str, config: Path, shared: Path, volume: str, redis_url: str) -> None:
        self.podman = podman
        self.name = f"fer-stream-test-{secrets.token_hex(4)}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.monotonic()
        podman("run", "--detach", "--name", self.name,
               "--network", "slirp4netns:allow_host_loopback=true", "--publish", f"127.0.0.1:{self.port}:9101",
               # as the Kubernetes StatefulSet runs it
               "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "-v", f"{config}:/etc/fer-stream/cameras.yaml:ro", "-v", f"{shared}:/data:ro", "-v", f"{volume}:/var/lib/fer-stream",
               "-e", f"FER_STREAM_REDIS_URL={redis_url}", "-e", f"FER_STREAM_CONSOLE_TOKEN={TOKEN}", image)  # fmt: skip

    def running(self) -> bool:
        state = self.podman("inspect", "--format", "{{.State.Running}}", self.name, check=False).stdout.strip()
        if state != "true":
            raise AssertionError(f"container {self.name} is not running:\n{self.podman.logs(self.name)}")
        return True

    def ready(self, timeout: float = 120) -> float:
        """Seconds from ``podman run`` to the first ``/readyz`` 200 on the published port."""
        wait_for(f"/readyz 200 from {self.name}", lambda: self.running() and http_get(self.url + "/readyz", timeout=2)[0] == 200,
                 timeout=timeout, every=0.1)  # fmt: skip
        return time.monotonic() - self.started

    def metrics(self) -> Metrics:
        code, body = http_get(self.url + "/metrics")
        assert code == 200, f"/metrics answered {code}:\n{self.podman.logs(self.name)}"
        return Metrics(body.decode())

    def stop(self) -> float:
        """``podman stop`` (SIGTERM, SIGKILL after 10 s): seconds until it returned; the daemon must have exited 0."""
        started = time.monotonic()
        self.podman("stop", "--time", "10", self.name, timeout=60)
        elapsed = time.monotonic() - started
        code = self.podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip()
        assert code == "0", f"exit code {code} after podman stop:\n{self.podman.logs(self.name)}"
        return elapsed


def journal(volume_dir: Path) -> list[str]:
    """The alert ids waiting in the outbox journal on the volume, oldest first."""
    [path] = glob.glob(str(volume_dir / "fer-stream" / "outbox-*.sqlite3"))
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as db:
        return [json.loads(row[0])["alert_id"] for row in db.execute("SELECT alert FROM outbox ORDER BY seq")]


def delivered(redis: RedisServer) -> list[dict]:
    return [json.loads(fields[b"alert"]) for _, fields in redis.client().xrange("fer:alerts:log")]


@pytest.fixture
def state_volume(podman: Podman) -> Iterator[str]:
    name = f"fer-stream-test-state-{secrets.token_hex(4)}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


@pytest.mark.timeout(1500)
def test_the_image_runs_the_daemon_as_its_user_and_keeps_its_journal_on_a_volume(podman: Podman, image: str, shared_dir: Path,
                                                                                   tmp_path: Path, state_volume: str) -> None:  # fmt: skip
    config = tmp_path / "cameras.yaml"
    config.write_text(cameras_yaml())
    config.chmod(0o644)
    redis = RedisServer(tmp_path)  # its port is chosen; the server starts only for the second run
    redis_url = f"redis://{HOST_LOOPBACK}:{redis.port}/0"
    containers: list[Container] = []
    try:
        first = Container(podman, image, config, shared_dir, state_volume, redis_url)
        containers.append(first)
        FIGURES["start to /readyz 200"] = f"{first.ready():.1f} s"
        assert http_get(first.url + "/healthz")[0] == 200
        for page in ("/", "/static/console.js", "/static/console.css"):  # the console's files came with the package
            assert http_get(first.url + page, token=TOKEN)[0] == 200, page
        assert http_get(first.url + "/")[0] == 401, "beyond loopback the console needs its token"
        wait_for("the three cameras up", lambda: first.running() and first.metrics().by_label("fer_camera_up", "camera")
                 == dict.fromkeys(DEMO_CAMERAS, 1.0), timeout=60)  # fmt: skip
        check = podman("healthcheck", "run", first.name, check=False)
        assert check.returncode == 0, f"the image's HEALTHCHECK failed: {check.stdout} {check.stderr}"
        users = [line.split() for line in podman("top", first.name, "huser", "user").stdout.splitlines()[1:]]
        assert len(users) >= 5 and all(u == ["10001", "fer-stream"] for u in users), users  # supervisor, inference, 3 cameras

        # Redis is not there: the angry camera's alert waits in the journal on the volume.
        wait_for("an alert waiting in the outbox", lambda: first.running() and first.metrics().value("fer_alert_outbox_depth") >= 1,
                 timeout=120)  # fmt: skip
        time.sleep(max(0.0, 30 - (time.monotonic() - first.started)))  # at rest: 30 s after the start
        pss, cgroup = proportional_memory(podman, first.name), cgroup_memory(podman, first.name)
        parts = ", ".join(f"{k} {v / 2**20:.0f}" for k, v in sorted(pss.items()))
        FIGURES["memory, 3 demo cameras"] = (f"{sum(pss.values()) / 2**20:.0f} MiB PSS ({parts}), "
                                             f"{cgroup / 2**20:.0f} MiB cgroup less inactive file cache")  # fmt: skip
        elapsed = first.stop()
        FIGURES["podman stop"] = f"{elapsed:.1f} s"
        assert elapsed < 5, f"podman stop took {elapsed:.1f} s"
        volume_dir = Path(podman("volume", "inspect", "--format", "{{.Mountpoint}}", state_volume).stdout.strip())
        waiting = journal(volume_dir)
        assert waiting, "the stopped daemon's journal on the volume is empty"

        # Redis is back, the daemon restarts on the same volume: what the journal held is delivered.
        redis.start()
        second = Container(podman, image, config, shared_dir, state_volume, redis_url)
        containers.append(second)
        second.ready()
        wait_for("the journal's alerts in Redis", lambda: second.running() and set(waiting) <= {a["alert_id"] for a in delivered(redis)},
                 timeout=60)  # fmt: skip
        assert "angry-man" in {a["camera"] for a in delivered(redis)}
        assert second.stop() < 5
        assert journal(volume_dir) == [], "delivered alerts leave the journal"
    finally:
        podman.remove(*(c.name for c in containers))
        redis.stop()
        print_figures()


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> dict:
        code, body = http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        return json.loads(body) if code == 200 else {}

    def up(self) -> list[str]:
        return [r["value"][1] for r in self.api("query", query='up{job="fer-stream"}').get("data", {}).get("result", [])]

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules").get("data", {}).get("groups", []) for rule in group["rules"]]


@pytest.mark.timeout(1500)
def test_the_compose_stack_runs_with_local_stand_ins_for_the_registry_images(podman: Podman, image: str, standins: str,
                                                                             shared_dir: Path) -> None:  # fmt: skip
    project = f"ferstreamtest{secrets.token_hex(4)}"
    fer_port, prometheus_port = free_port(), free_port()
    env = {
        "FER_STREAM_SHARED": str(shared_dir),
        "FER_STREAM_CONSOLE_TOKEN": TOKEN,
        "FER_STREAM_TEST_IMAGE": image,
        "FER_STREAM_TEST_STANDINS": standins,
        "FER_STREAM_PUBLISH": f"127.0.0.1:{fer_port}",
        "PROMETHEUS_PUBLISH": f"127.0.0.1:{prometheus_port}",
    }
    compose = ["-p", project, "-f", str(COMPOSE), "-f", str(OVERRIDE)]
    # Grafana is left out: it is not a Debian package, so there is no local stand-in for its image;
    # its dashboard and provisioning are checked against a real Prometheus by tests/test_dashboard.py.
    # demo-camera is left out too: GStreamer's server serves the shared video itself.
    started = time.monotonic()
    try:
        podman(*compose, "up", "-d", "--no-build", "fer-stream", "prometheus", tool="podman-compose", env=env, timeout=300)
        fer = f"http://127.0.0.1:{fer_port}"
        container = f"{project}_fer-stream_1"
        wait_for("fer-stream /readyz 200 in the stack", lambda: http_get(fer + "/readyz", timeout=2)[0] == 200 or
                 podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip() != "true", timeout=120)  # fmt: skip
        assert http_get(fer + "/readyz")[0] == 200, podman.logs(container)
        FIGURES["compose stack up to /readyz 200"] = f"{time.monotonic() - started:.0f} s"

        def alerts_in_redis() -> list[dict]:
            done = podman("exec", f"{project}_redis_1", "redis-cli", "--raw", "XRANGE", "fer:alerts:log", "-", "+")
            return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]

        alerts = wait_for("an alert from the RTSP demo camera in the stack's Redis", alerts_in_redis, timeout=120)
        assert {a["camera"] for a in alerts} == {"demo"} and alerts[0]["emotion"] == "angry", alerts

        prometheus = Prometheus(f"http://127.0.0.1:{prometheus_port}")
        wait_for("Prometheus scraping fer-stream (up == 1)", lambda: prometheus.up() == ["1"], timeout=120)
        shipped = {r["alert"] for g in yaml.safe_load(ALERTS_YML.read_text())["groups"] for r in g["rules"]}

        def evaluated() -> list[dict]:
            rules = prometheus.rules()
            done = {r["name"] for r in rules if not r.get("lastEvaluation", "0001").startswith("0001")}
            return rules if done >= shipped else []

        rules = wait_for("every shipped rule evaluated", evaluated, timeout=120)
        assert {r["name"] for r in rules} == shipped
        assert all(r["health"] == "ok" and not r.get("lastError") for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        FIGURES["compose stack checked"] = f"{time.monotonic() - started:.0f} s"
    finally:
        podman(*compose, "down", "-v", "-t", "5", tool="podman-compose", env=env, timeout=300, check=False)
        podman("network", "rm", "--force", f"{project}_default", check=False)
        print_figures()

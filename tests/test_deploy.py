"""Deployment files: the container image's shape, the compose stack, the Kubernetes manifests.

The Containerfile is checked here for what the image must do; tests/test_container.py builds the
image on a local Debian base and runs it, and brings the compose stack up with podman-compose. The
compose file is checked by ``docker-compose config`` and for files it mounts; the Kubernetes
manifests by ``kubernetes-validate`` against a pinned Kubernetes version.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
KUBERNETES_VERSION = "1.30.0"


def test_the_containerfile_builds_a_slim_non_root_image_with_the_model_and_a_healthcheck():
    text = (DEPLOY / "container" / "Containerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE), "the base is an argument, slim Python by default"
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert stages[0] == "${BASE_IMAGE}" and stages[-1] == "${BASE_IMAGE}", "the runtime stage is on the same base"
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
    assert "COPY models models" in text, "the shipped model goes into the package, and so into the image"
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0")), "runs as a non-root user"
    assert re.search(r"^HEALTHCHECK .*\n?.*127\.0\.0\.1:9101/healthz", text, re.MULTILINE)
    assert '"/etc/fer-stream/cameras.yaml"' in text and "/var/lib/fer-stream" in text
    runtime = text[text.rindex("\nFROM "):]
    assert "RUN pip" not in runtime and "pip install" not in runtime, "the runtime stage installs nothing from an index"
    assert "--mount=type=secret,id=pip-ca" in text and "ca-certificates" not in text, "pip's CA bundle is a build secret only"


def test_the_compose_stack_is_valid_and_every_file_it_mounts_exists(shared_dir: Path):
    compose = DEPLOY / "compose" / "compose.yaml"
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is missing: the Makefile installs it (Debian package docker-compose)"
    env = {**os.environ, "FER_STREAM_SHARED": str(shared_dir)}
    env.pop("FER_STREAM_CONSOLE_TOKEN", None)
    done = subprocess.run([docker_compose, "-f", str(compose), "config", "-q"], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert done.returncode != 0 and "FER_STREAM_CONSOLE_TOKEN" in done.stderr, "the console beyond loopback needs its token"
    env["FER_STREAM_CONSOLE_TOKEN"] = "a-console-token-for-the-check"
    done = subprocess.run([docker_compose, "-f", str(compose), "config", "-q"], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(compose.read_text())["services"]
    assert {"fer-stream", "redis", "prometheus", "grafana", "rtsp", "demo-camera"} <= set(services)
    assert "--appendonly" in services["redis"]["command"], "Redis persists"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = re.sub(r"\$\{FER_STREAM_SHARED:-[^}]*\}", str(shared_dir), volume).split(":", 1)[0]
            if not source.startswith((".", "/")):
                continue  # a named volume
            assert (compose.parent / source).exists(), f"{name} mounts {source}, which does not exist"
    cameras = yaml.safe_load((compose.parent / "cameras.yaml").read_text())
    assert cameras["http"]["host"] == "0.0.0.0", "reachable from Prometheus inside the compose network"


def kubernetes(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def validate(resource: dict) -> None:
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def merged(base: dict, patch: dict) -> dict:
    """A strategic-merge patch the way kustomize applies this overlay's: maps merge, containers merge by name."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if key == "containers":
            by_name = {c["name"]: c for c in out[key]}
            for container in value:
                by_name[container["name"]] = merged(by_name.get(container["name"], {}), container)
            out[key] = list(by_name.values())
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def test_the_kubernetes_base_validates_and_shards_by_pod_ordinal():
    base = DEPLOY / "kubernetes" / "base"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    resources = {name: kubernetes(base / name) for name in kustomization["resources"]}
    for docs in resources.values():
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com"):
                continue  # a CRD of the Prometheus Operator, checked below
            validate(doc)
    for doc in kubernetes(base / "secret.example.yaml"):
        validate(doc)
    [statefulset] = resources["statefulset.yaml"]
    spec = statefulset["spec"]
    [container] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["FER_STREAM_SHARDS"]["value"] == str(spec["replicas"]), "one shard per replica"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert spec["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    [monitor] = resources["podmonitor.yaml"]
    assert monitor["kind"] == "PodMonitor"
    assert monitor["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in container["ports"]}
    assert kubernetes(base / "pdb.yaml")[0]["spec"]["selector"] == spec["selector"]
    cameras = yaml.safe_load(resources["configmap.yaml"][0]["data"]["cameras.yaml"])
    assert cameras["http"]["host"] == "0.0.0.0"


@pytest.mark.parametrize("overlay", ["gpu"])
def test_the_gpu_overlay_asks_for_a_gpu_and_still_validates(overlay: str):
    folder = DEPLOY / "kubernetes" / "overlays" / overlay
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert (folder / kustomization["resources"][0]).resolve() == (DEPLOY / "kubernetes" / "base").resolve()
    [statefulset] = kubernetes(DEPLOY / "kubernetes" / "base" / "statefulset.yaml")
    for patch in kustomization["patches"]:
        [change] = kubernetes(folder / patch["path"])
        statefulset = merged(statefulset, change)
    validate(statefulset)
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1 and container["resources"]["requests"]

"""The Grafana dashboard and the Prometheus files in deploy/, checked against a real Prometheus.

A real daemon runs one file camera (the shared angry_man.mp4, looped) and a
real Prometheus (the shipped prometheus.yml and alerts.yml, with a 1 s scrape
interval and a temp TSDB) scrapes it. Every PromQL expression of the dashboard
must then parse, the ones that a camera with a face feeds must return data, and
every alerting rule must evaluate without error. The fast tests check the
files themselves with promtool and the dashboard's structure.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml
from daemon_fixtures import FER_STREAM, REPO, http_get, stop_process, wait_for
from prometheus_client.metrics import MetricWrapperBase
from redis_fixtures import RedisServer, free_port, subprocess_env

import fer_stream.metrics

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "fer-stream-dashboard.json"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
UNIT = DEPLOY / "systemd" / "fer-stream.service"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
PROMTOOL = shutil.which("promtool")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
PROMETHEUS = shutil.which("prometheus")
RATE_INTERVAL = "15s"  # what Grafana's $__rate_interval becomes at a 1 s scrape interval (and more)

# Metrics a running camera that sees a face must feed; an expression over any of them must return data.
MUST_HAVE_DATA = (
    "fer_camera_up",
    "fer_camera_frames_read_total",
    "fer_camera_frames_processed_total",
    "fer_faces_detected_total",
    "fer_faces_classified_total",
    "fer_predictions_total",
    "fer_inference_batch_size",
    "fer_inference_batch_seconds",
    "fer_inference_faces_total",
    "fer_end_to_end_latency_seconds",
    "fer_detection_seconds",
    "fer_model_loaded",
    "fer_redis_up",
)

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    """Every panel, rows included, with the panels nested in collapsed rows."""
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def expressions(board: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query target of the dashboard."""
    return [(p["title"], t["expr"]) for p in panels(board) for t in p.get("targets", [])]


def substitute(expr: str, board: dict) -> str:
    """Replace template variables as Grafana does with "All" selected on every variable."""
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            expr = expr.replace(f"${var['name']}", var["allValue"])
    return expr.replace("$__rate_interval", RATE_INTERVAL)


def defined_metrics() -> set[str]:
    return {m.describe()[0].name for m in vars(fer_stream.metrics).values() if isinstance(m, MetricWrapperBase)}


# --- the files themselves --------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules() -> None:
    for args in (["check", "config", str(PROMETHEUS_YML)], ["check", "rules", str(ALERTS_YML)]):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


@needs_promtool
def test_alert_rules_fire_as_documented() -> None:
    """promtool's rule unit tests: each alert fires after its `for`, on the right labels, and not on blips."""
    done = subprocess.run([PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=ALERTS_YML.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_is_wired_to_the_datasource_variable_and_camera_filter() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    camera = variables["camera"]
    assert "label_values(fer_camera_up" in camera["definition"] and camera["definition"].endswith(", camera)")
    assert camera["includeAll"] and camera["multi"]

    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"panel {panel['title']!r} has no unit"
        assert panel.get("description"), f"panel {panel['title']!r} has no description"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        # Per-camera metrics follow the camera filter.
        for _, expr in [(panel["title"], t["expr"]) for t in panel["targets"]]:
            if re.search(r"fer_(camera|faces|predictions|tracks|detection|end_to_end|alerts_published)", expr):
                assert 'camera=~"$camera"' in expr, f"{panel['title']}: {expr}"


def test_dashboard_shows_every_defined_metric_and_no_other() -> None:
    exprs = " ".join(e for _, e in expressions(dashboard()))
    defined = defined_metrics()
    missing = sorted(name for name in defined if not re.search(rf"\b{name}(_total|_bucket|_sum|_count)?\b", exprs))
    assert not missing, f"metrics in fer_stream/metrics.py without a dashboard panel: {missing}"
    used = set(re.findall(r"\bfer_\w+", exprs))
    unknown = sorted(u for u in used if re.sub(r"_(total|bucket|sum|count)$", "", u) not in defined)
    assert not unknown, f"dashboard queries name metrics fer_stream/metrics.py does not define: {unknown}"


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze checks keys and sections; the install path is pointed at this venv's fer-stream."""
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/fer-stream/.venv/bin/fer-stream", FER_STREAM))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stdout + done.stderr
    text = UNIT.read_text()
    for line in ("User=fer-stream", "EnvironmentFile=/etc/fer-stream/fer-stream.env", "Restart=on-failure",
                 "KillSignal=SIGTERM", "TimeoutStopSec=", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert line in text, line


def test_grafana_provisioning_serves_the_dashboard_from_prometheus() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "fer-stream.yml").read_text())["datasources"]
    assert [d["type"] for d in datasources] == ["prometheus"] and datasources[0]["isDefault"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "fer-stream.yml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"].startswith("/")


# --- against a real Prometheus scraping a real daemon ------------------------------------


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        code, body = http_get(f"{self.url}/api/v1/{path}{query}")
        assert body, f"Prometheus at {self.url} did not answer /api/v1/{path} (HTTP {code})"
        return json.loads(body)

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)


def _has_value(result: dict) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result["data"]["result"])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, media_dir: Path, yunet_model: Path):
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package prometheus)")
    if not (os.environ.get("FER_STREAM_MODEL") or (REPO / "models" / "DEFAULT").is_file()):
        pytest.skip("no model: ship one into models/ (models/DEFAULT) or set FER_STREAM_MODEL")
    tmp = tmp_path_factory.mktemp("dashboard")
    redis = RedisServer(tmp)
    redis.start()
    daemon_port, prom_port = free_port(), free_port()
    config = tmp / "cameras.yaml"
    config.write_text(f"""
detector:
  backend: yunet
  model_path: {yunet_model}
http:
  host: 127.0.0.1
  port: {daemon_port}
redis:
  url: {redis.url}
cameras:
  - name: angry
    source: {media_dir / "angry_man.mp4"}
    loop: true
    fps: 8
""")
    # The shipped scrape config, pointed at this daemon, scraping every second.
    prom_config = yaml.safe_load(PROMETHEUS_YML.read_text())
    prom_config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    prom_config["rule_files"] = [str(ALERTS_YML)]
    job = prom_config["scrape_configs"][0]
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{daemon_port}"]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_config))

    env = subprocess_env()
    env.pop("FER_STREAM_REDIS_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    daemon_log, prom_log = tmp / "daemon.log", tmp / "prometheus.log"
    processes: list[subprocess.Popen] = []
    try:
        with open(daemon_log, "w") as out:
            processes.append(subprocess.Popen([FER_STREAM, "run", "--config", str(config)],
                                              stdout=out, stderr=subprocess.STDOUT, env=env))
        with open(prom_log, "w") as out:
            processes.append(subprocess.Popen([
                PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
            ], stdout=out, stderr=subprocess.STDOUT))
        prom = Prometheus(f"http://127.0.0.1:{prom_port}")
        ready_urls = (f"http://127.0.0.1:{daemon_port}/healthz", prom.url + "/-/ready")
        for process, log, ready in zip(processes, (daemon_log, prom_log), ready_urls, strict=True):
            wait_for(f"{ready}", lambda p=process, u=ready: p.poll() is not None or http_get(u)[0] == 200, timeout=90)
            assert process.poll() is None, f"{log.stem} exited with {process.returncode}: {log.read_text()[-3000:]}"
        yield prom
    finally:
        for process in reversed(processes):
            stop_process(process)
        redis.stop()


@pytest.mark.slow
def test_every_dashboard_query_runs_and_the_face_panels_have_data(prometheus: Prometheus) -> None:
    board = dashboard()
    queries = [(title, substitute(expr, board)) for title, expr in expressions(board)]
    required = [(t, e) for t, e in queries if any(re.search(rf"\b{m}", e) for m in MUST_HAVE_DATA)]
    for metric in MUST_HAVE_DATA:
        assert any(re.search(rf"\b{metric}", e) for _, e in required), f"no dashboard query reads {metric}"

    # Scraped several times, with faces classified: every required query has a value.
    def no_data() -> list[str]:
        return [f"{t}: {e}" for t, e in required if not _has_value(prometheus.query(e))]

    wait_for("every camera/face/inference panel to have data", lambda: not no_data(), timeout=150, every=2)
    assert not no_data()

    for title, expr in queries:
        answer = prometheus.query(expr)
        assert answer["status"] == "success", f"panel {title!r}: {expr}: {answer.get('error')}"
        assert not answer.get("warnings"), f"panel {title!r}: {answer['warnings']}"

    # The template variables' queries find the camera; the unfiltered selectors are what Grafana sends.
    cameras = prometheus.api("label/camera/values", **{"match[]": "fer_camera_up"})["data"]
    assert cameras == ["angry"]
    instances = prometheus.api("label/instance/values", **{"match[]": "fer_camera_up"})["data"]
    assert len(instances) == 1

    # The up/loaded gauges read 1 while everything works, and nothing alerts.
    for gauge in ("fer_camera_up", "fer_model_loaded", "fer_redis_up"):
        values = [float(s["value"][1]) for s in prometheus.query(gauge)["data"]["result"]]
        assert values and all(v == 1 for v in values), f"{gauge}: {values}"


@pytest.mark.slow
def test_every_alert_rule_evaluates_cleanly_and_stays_quiet(prometheus: Prometheus) -> None:
    expected = {r["alert"] for g in yaml.safe_load(ALERTS_YML.read_text())["groups"] for r in g["rules"]}

    def evaluated():
        rules = [r for g in prometheus.api("rules")["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None

    rules = wait_for("Prometheus to evaluate the alert rules", evaluated, timeout=60)
    assert {r["name"] for r in rules} == expected
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
    firing = [a for a in prometheus.api("alerts")["data"]["alerts"] if a["state"] == "firing"]
    assert not firing, f"alerts firing on a healthy daemon: {firing}"


def test_panels_keep_hosts_apart_and_alert_starts_are_annotations() -> None:
    board = dashboard()
    for title, expr in expressions(board):
        for labels in re.findall(r"\b(?:sum|max|min|avg) by \(([^)]*)\)", expr):
            assert "instance" in labels, f"{title!r} merges daemons: {expr}"
        assert not re.search(r"\b(?:sum|max|min|avg)\(", expr), f"{title!r} aggregates over every daemon: {expr}"
    assert any("up{job=\"fer-stream\"" in expr for _, expr in expressions(board)), "a panel shows which daemons are up"
    [annotation] = board["annotations"]["list"]
    assert "fer_alerts_published_total" in annotation["expr"] and 'event="start"' in annotation["expr"]

"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against the running daemon.

The daemon runs the three demo videos with real Redis. Nobody watches at first,
so no live-view frame may be encoded; then the browser opens the console and
checks what an operator sees: every tile's video moves, the angry-man alert
appears with its picture, the camera page's chart updates, and stopping the
daemon shows "connection lost". Screenshots go to ``$FER_STREAM_ARTIFACTS``
(default ``test-artifacts/`` in the checkout) for a human to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import jsonschema
import pytest
from daemon_fixtures import REPO, Daemon, camera, http_get, wait_for
from redis_fixtures import RedisServer, redis_server  # noqa: F401 (a fixture)

from fer_stream.alerts.message import json_schema

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CAMERAS = ("angry-man", "calm-woman", "smiling-woman")


@pytest.fixture
def artifacts() -> Path:
    path = Path(os.environ.get("FER_STREAM_ARTIFACTS", REPO / "test-artifacts")) / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path



@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.fail("chromium not found: install Debian's chromium (make setup does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def stream_alerts(redis: RedisServer) -> list[dict]:
    return [json.loads(fields[b"alert"]) for _, fields in redis.client().xrange("fer:alerts:log")]


def test_the_console_shows_live_video_alerts_with_pictures_a_live_chart_and_a_lost_connection(
    tmp_path, redis_server, media_dir, yunet_model, browser, artifacts
):
    redis = redis_server
    cameras = "".join(camera(name, media_dir / f"{file}.mp4", loop=True)
                      for name, file in zip(CAMERAS, ("angry_man", "calm_woman", "smiling_woman_phone"), strict=True))
    extra = f"""alerts:
  rules:
    update_every_s: 2
  snapshots:
    directory: {tmp_path / "snapshots"}
    max_mb: 5
"""
    daemon = Daemon(tmp_path, redis, cameras, yunet_model, extra=extra)
    try:
        wait_for("the daemon to be ready", lambda: http_get(daemon.url + "/readyz")[0] == 200, timeout=90)
        wait_for("every camera to process frames", lambda: all(
            daemon.metrics().value("fer_camera_frames_processed_total", camera=c) > 10 for c in CAMERAS), timeout=60)
        encoded = daemon.metrics().by_label("fer_console_frames_encoded_total", "camera")
        assert sum(encoded.values()) == 0, f"frames were encoded for the console with nobody watching: {encoded}"

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(daemon.url + "/")
        tiles = page.locator("figure.tile img.live")
        assert tiles.count() == len(CAMERAS)
        for i in range(len(CAMERAS)):
            page.wait_for_function("img => img.naturalWidth > 0", arg=tiles.nth(i).element_handle(), timeout=30_000)
        first = [tiles.nth(i).screenshot() for i in range(len(CAMERAS))]
        time.sleep(2.5)
        second = [tiles.nth(i).screenshot() for i in range(len(CAMERAS))]
        still = [name for name, a, b in zip(CAMERAS, first, second, strict=True) if a == b]
        assert not still, f"tiles whose picture did not move in 2.5 s: {still}"
        assert all(v > 0 for v in daemon.metrics().by_label("fer_console_frames_encoded_total", "camera").values())

        entry = page.locator('li.alert[data-camera="angry-man"]').first
        entry.wait_for(timeout=60_000)
        picture = entry.locator("img.snapshot")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle(), timeout=30_000)
        assert "angry" in entry.inner_text()
        page.screenshot(path=str(artifacts / "console.png"), full_page=True)
        assert page.locator('li.alert[data-camera="calm-woman"], li.alert[data-camera="smiling-woman"]').count() == 0

        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(daemon.url + "/")
        phone.locator("figure.tile img.live").first.wait_for()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the console is {width} px wide on a 390 px phone screen"
        phone.screenshot(path=str(artifacts / "console-phone.png"), full_page=True)
        phone.close()

        camera_page = browser.new_page(viewport={"width": 1280, "height": 1000})
        camera_page.goto(daemon.url + "/cameras/angry-man")
        chart = camera_page.locator("canvas#chart")
        camera_page.wait_for_function("c => Number(c.dataset.points) > 0", arg=chart.element_handle(), timeout=30_000)
        updates = int(chart.get_attribute("data-updates"))
        points = int(chart.get_attribute("data-points"))
        camera_page.wait_for_function(f"c => Number(c.dataset.updates) > {updates} + 1", arg=chart.element_handle(), timeout=10_000)
        camera_page.wait_for_function(f"c => Number(c.dataset.points) != {points}", arg=chart.element_handle(), timeout=10_000)
        camera_page.screenshot(path=str(artifacts / "camera.png"), full_page=True)

        # The angry-man alert's pictures are served to scripts as they are to the page.
        start = next(a for a in stream_alerts(redis) if a["camera"] == "angry-man" and a["event"] == "start")
        code, body = http_get(daemon.url + start["snapshot"]["frame"])
        assert code == 200 and body[:2] == b"\xff\xd8"
        assert http_get(daemon.url + start["snapshot"]["face"])[0] == 200
    finally:
        daemon.stop()
    assert daemon.process.returncode == 0, daemon.log.read_text()[-3000:]

    banner = page.locator("#connection")
    banner.wait_for(state="visible", timeout=15_000)
    assert "lost" in banner.inner_text()
    camera_page.locator("#connection").wait_for(state="visible", timeout=15_000)
    page.screenshot(path=str(artifacts / "console-connection-lost.png"), full_page=True)

    # Schema v2 on the wire: every event validates, and an episode's start, updates and end share its id.
    events = stream_alerts(redis)
    for event in events:
        jsonschema.validate(event, json_schema())
    episodes: dict[str, list[str]] = {}
    for event in events:
        episodes.setdefault(event["episode_id"], []).append(event["event"])
    angry = [e["episode_id"] for e in events if e["camera"] == "angry-man" and e["event"] == "start"]
    assert angry and all(episodes[episode][0] == "start" and episodes[episode][-1] == "end" for episode in angry), episodes
    assert any("update" in episodes[episode] for episode in angry), f"no update event in a long episode: {episodes}"
    ends = [e for e in events if e["event"] == "end"]
    assert {e["end_reason"] for e in ends} <= {"calm", "face_lost", "daemon_stopped"} and ends[-1]["end_reason"]
    assert sum(f.stat().st_size for f in (tmp_path / "snapshots").iterdir()) <= 5_000_000

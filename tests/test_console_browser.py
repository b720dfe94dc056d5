"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against the running daemon.

The daemon runs the three demo videos with real Redis. Nobody watches at first,
so no live-view frame may be encoded; then the browser opens the console and
checks what an operator sees: every tile's video moves, the angry-man alert
appears with its picture and date, a reviewer dismisses it with a reason and
the filters show it, the calm camera is snoozed and says so, a viewer sees no
review or snooze buttons and gets 403 from the API, the camera page's chart
updates with its threshold lines, and stopping the daemon shows "connection
lost" with tiles that say they are not live. Screenshots go to ``$FER_STREAM_ARTIFACTS``
(default ``test-artifacts/`` in the checkout) for a human to look at.
"""

from __future__ import annotations

import json
import os
import re
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
ADMIN, VIEWER = "console-admin-token-0123456789", "console-viewer-token-0123456789"


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


def log_in(context, url: str, token: str):
    """A page of ``context`` logged in with ``token`` through the login form, on the console."""
    page = context.new_page()
    page.goto(url + "/login?next=/")
    page.fill('input[name="token"]', token)
    page.click("form[action='/login'] button")
    page.wait_for_url(url + "/")
    return page


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
    daemon = Daemon(tmp_path, redis, cameras, yunet_model, extra=extra,
                    env={"FER_STREAM_CONSOLE_TOKEN": ADMIN, "FER_STREAM_VIEWER_TOKEN": VIEWER})
    try:
        wait_for("the daemon to be ready", lambda: http_get(daemon.url + "/readyz")[0] == 200, timeout=90)
        wait_for("every camera to process frames", lambda: all(
            daemon.metrics().value("fer_camera_frames_processed_total", camera=c) > 10 for c in CAMERAS), timeout=60)
        encoded = daemon.metrics().by_label("fer_console_frames_encoded_total", "camera")
        assert sum(encoded.values()) == 0, f"frames were encoded for the console with nobody watching: {encoded}"

        operator = browser.new_context(viewport={"width": 1280, "height": 900})
        page = log_in(operator, daemon.url, ADMIN)
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
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", entry.locator(".meta").first.inner_text()), "a date"
        page.screenshot(path=str(artifacts / "console.png"), full_page=True)
        assert page.locator('li.alert[data-camera="calm-woman"], li.alert[data-camera="smiling-woman"]').count() == 0

        # The reviewer's loop: dismiss with a reason, filter on it, snooze the calm camera.
        episode = entry.get_attribute("data-episode")
        page.fill("#reviewer-name", "ana")
        page.dispatch_event("#reviewer-name", "change")
        entry.locator("select.reason").select_option("talking")
        entry.locator("button.dismiss").click()
        page.wait_for_selector(f'li.alert[data-episode="{episode}"][data-review="dismissed"]', timeout=10_000)
        assert "dismissed (talking) by ana" in entry.locator(".verdict").inner_text()
        page.select_option('#filters select[name="review"]', "dismissed")
        page.wait_for_selector(f'li.alert[data-episode="{episode}"][data-review="dismissed"]', timeout=10_000)
        assert page.locator('li.alert:not([data-review="dismissed"])').count() == 0
        page.screenshot(path=str(artifacts / "console-reviewed.png"), full_page=True)
        page.select_option('#filters select[name="review"]', "confirmed")
        page.wait_for_function(f'() => !document.querySelector(\'li.alert[data-episode="{episode}"]\')', timeout=10_000)
        page.select_option('#filters select[name="review"]', "")
        calm = page.locator('.tile[data-camera="calm-woman"]')
        calm.locator("select.snooze-for").select_option("60")
        calm.locator("button.snooze").click()
        page.wait_for_selector('#flood li[data-camera="calm-woman"]', timeout=10_000)
        assert "snoozed until" in page.locator('#flood li[data-camera="calm-woman"]').inner_text()
        assert "snoozed until" in calm.locator(".flood").inner_text()
        assert daemon.metrics().value("fer_camera_snoozed", camera="calm-woman") == 1
        page.screenshot(path=str(artifacts / "console-snoozed.png"), full_page=True)
        reviews = [json.loads(f[b"review"]) for _, f in redis.client().xrange("fer:reviews:log")]
        assert [(r["episode_id"], r["verdict"], r["reason"]) for r in reviews] == [(episode, "dismissed", "talking")]

        # A viewer watches: no review or snooze buttons, and the API refuses both.
        viewer = browser.new_context(viewport={"width": 1280, "height": 900})
        watching = log_in(viewer, daemon.url, VIEWER)
        watching.locator(f'li.alert[data-episode="{episode}"]').wait_for(timeout=30_000)
        watching.locator('#flood li[data-camera="calm-woman"]').wait_for(timeout=10_000)
        assert watching.locator("button.dismiss, button.confirm, button.snooze, button.unsnooze, #reviewer-name").count() == 0
        statuses = watching.evaluate("""async episode => [
            (await fetch(`/api/episodes/${episode}/review`, {method: "POST", headers: {"Content-Type": "application/json"},
                                                              body: JSON.stringify({verdict: "confirmed"})})).status,
            (await fetch("/api/cameras/calm-woman/snooze", {method: "POST", headers: {"Content-Type": "application/json"},
                                                            body: JSON.stringify({minutes: 0})})).status]""", episode)
        assert statuses == [403, 403]
        watching.screenshot(path=str(artifacts / "console-viewer.png"), full_page=True)
        viewer.close()

        phone = operator.new_page()
        phone.set_viewport_size({"width": 390, "height": 844})
        # The operator's page still holds its live streams: a browser opens at most six connections to
        # one host over HTTP/1.1, so this page's own streams may wait; its layout is what is checked here.
        phone.goto(daemon.url + "/", wait_until="domcontentloaded")
        phone.locator("figure.tile img.live").first.wait_for()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the console is {width} px wide on a 390 px phone screen"
        phone.screenshot(path=str(artifacts / "console-phone.png"), full_page=True)
        phone.close()

        camera_page = operator.new_page()
        camera_page.set_viewport_size({"width": 1280, "height": 1000})
        camera_page.goto(daemon.url + "/cameras/angry-man")
        chart = camera_page.locator("canvas#chart")
        camera_page.wait_for_function("c => Number(c.dataset.points) > 0", arg=chart.element_handle(), timeout=30_000)
        updates = int(chart.get_attribute("data-updates"))
        points = int(chart.get_attribute("data-points"))
        camera_page.wait_for_function(f"c => Number(c.dataset.updates) > {updates} + 1", arg=chart.element_handle(), timeout=10_000)
        camera_page.wait_for_function(f"c => Number(c.dataset.points) != {points}", arg=chart.element_handle(), timeout=10_000)
        assert chart.get_attribute("data-thresholds") == "2", "the angry and fear enter thresholds are drawn"
        camera_page.screenshot(path=str(artifacts / "camera.png"), full_page=True)

        # The angry-man alert's pictures are served to scripts as they are to the page.
        start = next(a for a in stream_alerts(redis) if a["camera"] == "angry-man" and a["event"] == "start")
        code, body = http_get(daemon.url + start["snapshot"]["frame"], token=VIEWER)
        assert code == 200 and body[:2] == b"\xff\xd8"
        assert http_get(daemon.url + start["snapshot"]["face"], token=VIEWER)[0] == 200
    finally:
        daemon.stop()
    assert daemon.process.returncode == 0, daemon.log.read_text()[-3000:]

    banner = page.locator("#connection")
    banner.wait_for(state="visible", timeout=15_000)
    assert "lost" in banner.inner_text()
    camera_page.locator("#connection").wait_for(state="visible", timeout=15_000)
    page.wait_for_function("() => [...document.querySelectorAll('.tile .camstate')].every(n => n.textContent.startsWith('not live'))",
                           timeout=15_000)
    assert "ALERT" not in page.locator("#grid").inner_text() and "fps" not in page.locator("#grid").inner_text()
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

"""The console's three pages: small HTML shells; the behaviour is in static/console.js, with no outside assets."""

from __future__ import annotations

import json
from html import escape

from fer_stream.reviews.message import REASONS


def _page(title: str, body: str, *, script: str = "", data: dict | None = None, logout: bool = False) -> bytes:
    config = escape(json.dumps(data or {}))
    logout_form = '<form method="post" action="/logout"><button>log out</button></form>' if logout else ""
    scripts = f'<script src="/static/{script}"></script>' if script else ""
    health = '<span id="health" class="health">connecting...</span>' if script else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/console.css"></head>
<body data-config="{config}">
<header><a class="brand" href="/">fer-stream</a>{health}{logout_form}</header>
<div id="connection" class="connection" hidden>Connection to the daemon lost; retrying...</div>
{body}
{scripts}
</body></html>""".encode()


def index(cameras: list[str], *, logout: bool, role: str, can: list[str]) -> bytes:
    """``can``: what this role may do (the script offers review and snooze buttons only when allowed)."""
    tiles = "".join(
        f'<figure class="tile" data-camera="{escape(c)}"><a href="/cameras/{escape(c)}">'
        f'<img class="live" alt="live view of {escape(c)}" data-src="/cameras/{escape(c)}/live.mjpeg"></a>'
        f'<figcaption><a href="/cameras/{escape(c)}">{escape(c)}</a> <span class="camstate">starting</span>'
        f' <span class="flood"></span></figcaption></figure>'
        for c in cameras
    )
    options = "".join(f'<option value="{escape(c)}">{escape(c)}</option>' for c in cameras)
    body = f"""<main class="console">
<section class="grid" id="grid">{tiles}</section>
<section class="alerts"><h2>Alerts</h2>
<form id="filters" class="filters">
<label>camera <select name="camera"><option value="">all</option>{options}</select></label>
<label>emotion <input name="emotion" size="8" placeholder="all"></label>
<label>review <select name="review"><option value="">all</option><option value="unreviewed">unreviewed</option>
<option value="confirmed">confirmed</option><option value="dismissed">dismissed</option></select></label>
<label>from <input type="date" name="since"></label><label>to <input type="date" name="until"></label>
</form>
<ul id="flood" class="note"></ul>
<ol id="alerts"></ol><button id="older" hidden>older</button>
<p id="alerts-note" class="note"></p></section>
</main>"""
    data = {"page": "index", "cameras": cameras, "role": role, "can": can, "reasons": list(REASONS)}
    return _page("fer-stream", body, script="console.js", data=data, logout=logout)


def camera(name: str, *, logout: bool, role: str, can: list[str]) -> bytes:
    body = f"""<main class="camera-page">
<h1>{escape(name)} <span class="camstate" id="camstate">starting</span> <span class="flood"></span></h1>
<img class="live large" alt="live view of {escape(name)}" data-src="/cameras/{escape(name)}/live.mjpeg">
<h2>Smoothed scores of each face, last minute</h2>
<div id="legend" class="legend"></div>
<canvas id="chart" width="960" height="260" data-updates="0"></canvas>
<p id="chart-note" class="note">no face yet</p>
</main>"""
    data = {"page": "camera", "camera": name, "role": role, "can": can}
    return _page(f"fer-stream: {name}", body, script="console.js", data=data, logout=logout)


#: Why the login form is shown again.
LOGIN_FAILURES = {
    "wrong": "That token is not the console's.",
    "busy": "A wrong token from this address is still being answered; try again in a second.",
}


def login(target: str, failed: str | None = None) -> bytes:
    """The login form; ``failed`` (a key of LOGIN_FAILURES) says why it is back."""
    message = f'<p class="error">{escape(LOGIN_FAILURES[failed])}</p>' if failed else ""
    body = f"""<main class="login"><h1>Log in</h1>
<p>This console shows people's faces; it needs an access token its operator set: the console's
($FER_STREAM_CONSOLE_TOKEN), a reviewer's or a viewer's.</p>{message}
<form method="post" action="/login"><input type="hidden" name="next" value="{escape(target)}">
<label>Access token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button>Log in</button></form></main>"""
    return _page("fer-stream: log in", body)

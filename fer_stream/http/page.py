"""The live view: one page, one periodically refreshed JPEG per camera, no JavaScript libraries."""

from __future__ import annotations

from html import escape

REFRESH_MS = 500

_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>fer-stream</title>
<style>
body {{ font-family: sans-serif; background: #111; color: #ddd; margin: 1em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; background: #222; padding: .5em; }}
img {{ width: 480px; min-height: 270px; display: block; background: #000; }}
.down {{ color: #e66; }} .up {{ color: #6e6; }} .alert {{ color: #f44; font-weight: bold; }}
</style></head>
<body><h1>fer-stream</h1><p id="summary">loading...</p>
<div class="grid">{figures}</div>
<script>
const cams = {names};
function tick() {{
  const t = Date.now();
  for (const c of cams) document.getElementById("img-" + c).src = "cameras/" + c + ".jpg?t=" + t;
  fetch("status").then(r => r.json()).then(s => {{
    document.getElementById("summary").textContent =
      "model: " + (s.model ? s.model.model_id + " " + s.model.version + " (" + s.model.backend + ")" : "loading")
      + " | alerts: " + s.alerts_forwarded;
    for (const c of cams) {{
      const cam = s.cameras[c], el = document.getElementById("cap-" + c);
      const faces = cam.tracks.map(t => "#" + t.track_id + " " + (t.emotion || "?") + (t.alerting ? " ALERT" : "")).join(", ");
      el.className = cam.tracks.some(t => t.alerting) ? "alert" : (cam.up ? "up" : "down");
      el.textContent = c + ": " + cam.state + ", " + cam.processed_fps + " fps" + (faces ? " | " + faces : "");
    }}
  }}).catch(() => {{}});
}}
setInterval(tick, {refresh}); tick();
</script></body></html>
"""


def render(cameras: list[str]) -> bytes:
    figures = "".join(
        f'<figure><img id="img-{escape(c)}" alt="{escape(c)}"><figcaption id="cap-{escape(c)}">{escape(c)}</figcaption></figure>'
        for c in cameras
    )
    names = "[" + ",".join(f'"{escape(c)}"' for c in cameras) + "]"  # names are [A-Za-z0-9_-] (config check)
    return _TEMPLATE.format(figures=figures, names=names, refresh=REFRESH_MS).encode()

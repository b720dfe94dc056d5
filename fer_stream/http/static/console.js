// The console's behaviour: live video, the daemon's health, the alert list (server-sent events) with reviews,
// filters and snoozes, and the score chart. Plain browser JavaScript, nothing fetched from outside the daemon.
"use strict";

const config = JSON.parse(document.body.dataset.config || "{}");
const can = new Set(config.can || []);  // what this credential may do; the API refuses the rest (403)
let lastStatusAt = null;
const COLORS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"];
const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];
let statusOk = true, eventsOk = true;

function setConnection() {
  const connected = statusOk && eventsOk;
  document.getElementById("connection").hidden = connected;
  const health = document.getElementById("health");
  if (health) health.classList.toggle("stale", !connected);  // the last health seen, no longer current
  if (!statusOk) markTilesStale();
}

// A frozen frame must not look live: without word from the daemon every tile says since when it has none.
function markTilesStale() {
  const since = lastStatusAt ? ` since ${when(lastStatusAt)}` : "";
  for (const node of document.querySelectorAll(".tile, .camera-page")) node.classList.add("stale");
  for (const node of document.querySelectorAll(".camstate")) {
    node.textContent = `not live: no word from the daemon${since}`;
    node.className = "camstate stale";
  }
}

function pad2(n) { return String(n).padStart(2, "0"); }

// Local date and time, to the second: alerts of other days are told apart.
function when(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

async function post(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

// --- live video: MJPEG in an <img>; reattached after an error (daemon restart, lost connection) ---
function startLive(img) {
  const attach = () => { img.src = img.dataset.src + "?t=" + Date.now(); };
  img.addEventListener("error", () => setTimeout(attach, 2000));
  attach();
}
document.querySelectorAll("img.live").forEach(startLive);

// --- polling: the health bar and the chart; a failed poll is what "connection lost" means ---
async function poll(url, show) {
  try {
    const response = await fetch(url, {cache: "no-store"});
    if (!response.ok) throw new Error(response.status);
    show(await response.json());
    statusOk = true;
  } catch (e) {
    statusOk = false;
  }
  setConnection();
}

// --- health ---
const pollStatus = () => poll("/status", showStatus);

function showStatus(s) {
  lastStatusAt = Date.now();
  document.querySelectorAll(".stale").forEach(node => node.classList.remove("stale"));
  const names = Object.keys(s.cameras);
  const up = names.filter(n => s.cameras[n].up).length;
  const finished = names.filter(n => s.cameras[n].state === "finished").length;  // a file camera played its file
  const health = document.getElementById("health");
  health.replaceChildren();
  const part = (text, good) => health.append(el("span", {class: good ? "good" : "bad"}, text), " · ");
  part(`cameras up ${up}/${names.length}` + (finished ? `, ${finished} finished` : ""), up + finished === names.length);
  part(s.model ? `model ${s.model.model_id} ${s.model.version} (${s.model.backend})` : "model loading", !!s.model);
  if (s.delivery) {
    part(s.delivery.redis_up ? "Redis up" : "Redis down", s.delivery.redis_up);
    part(`outbox ${s.delivery.outbox}`, s.delivery.outbox === 0);
  } else {
    part("alerts not published", true);
  }
  health.lastChild.remove();
  for (const name of names) {
    const cam = s.cameras[name];
    const alerting = cam.tracks.some(t => t.alerting);
    const text = cam.up ? `${cam.state}, ${cam.processed_fps} fps` + (cam.tracks.length ? `, ${cam.tracks.length} face(s)` : "")
                        : cam.state + (cam.reason ? `: ${cam.reason}` : "");
    for (const node of document.querySelectorAll(`[data-camera="${name}"] .camstate, #camstate`)) {
      if (node.id === "camstate" && config.camera !== name) continue;
      node.textContent = alerting ? text + ", ALERT" : text;
      node.className = "camstate " + (alerting ? "alerting" : cam.up ? "up" : cam.state);
    }
    showFlood(name, cam.flood);
  }
  const flood = document.getElementById("flood");
  if (flood) {
    flood.replaceChildren(...names.filter(n => floodText(s.cameras[n].flood))
      .map(n => el("li", {"data-camera": n}, `${n}: ${floodText(s.cameras[n].flood)}`)));
  }
}

// --- flood control: a camera's snooze and its starts-per-hour cap ---
function floodText(f) {
  if (!f) return "";
  const held = f.held_back.snoozed + f.held_back.cap;
  const parts = [];
  if (f.snoozed_until) parts.push(`snoozed until ${when(f.snoozed_until * 1000)} by ${f.snoozed_by}`);
  if (f.max_starts_per_hour && f.starts_last_hour >= f.max_starts_per_hour)
    parts.push(`at its cap of ${f.max_starts_per_hour} alerts an hour`);
  if (held) parts.push(`${held} alert(s) held back`);
  return parts.join(", ");
}

function showFlood(name, f) {
  const tile = document.querySelector(`.tile[data-camera="${name}"]`) || (config.camera === name ? document.querySelector("main") : null);
  if (!tile || !f) return;
  const span = tile.querySelector(".flood");
  span.replaceChildren();
  if (f.snoozed_until) span.append(el("span", {class: "snoozed"}, `snoozed until ${when(f.snoozed_until * 1000)}`));
  else if (f.max_starts_per_hour && f.starts_last_hour >= f.max_starts_per_hour) span.append(el("span", {class: "snoozed"}, "at its cap"));
  if (!can.has("snooze") || config.page !== "index") return;
  if (f.snoozed_until) {
    const button = el("button", {class: "unsnooze"}, "unsnooze");
    button.addEventListener("click", () => snooze(name, 0));
    span.append(" ", button);
  } else {
    const choice = el("select", {class: "snooze-for", "aria-label": `snooze ${name} for`},
                      ...[[15, "15 min"], [60, "1 h"], [240, "4 h"], [720, "12 h"]].map(([m, t]) => el("option", {value: m}, t)));
    const button = el("button", {class: "snooze"}, "snooze");
    button.addEventListener("click", () => snooze(name, Number(choice.value)));
    span.append(" ", choice, button);
  }
}

async function snooze(name, minutes) {
  try {
    await post(`/api/cameras/${encodeURIComponent(name)}/snooze`, {minutes, name: reviewerName()});
  } catch (e) {
    document.getElementById("alerts-note").textContent = `snooze failed: ${e.message}`;
  }
  pollStatus();
}
pollStatus();
setInterval(pollStatus, 2000);

// --- the alert list: one entry per episode, from history pages and live events ---
const episodes = new Map();

function duration(seconds) {
  seconds = Math.max(0, seconds);
  return seconds < 60 ? seconds.toFixed(1) + " s" : Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
}

const GONE = "picture gone: past its retention or the size cap, or kept on another host";

function addEvent(alert, live, review) {
  if (!filter.matches(alert, review === undefined ? episodes.get(alert.episode_id)?.review : review)) return;
  let entry = episodes.get(alert.episode_id);
  if (!entry) {
    const img = el("img", {alt: `${alert.emotion} on ${alert.camera}`, class: "snapshot"});
    img.addEventListener("error", () => img.replaceWith(el("span", {class: "snapshot gone"}, GONE)));
    const what = el("div", {class: "what"});
    const meta = el("div", {class: "meta"});
    const state = el("div", {class: "meta state"});
    const verdict = el("div", {class: "meta verdict"});
    const body = el("div", {}, what, meta, state, verdict);
    const node = el("li", {class: "alert", "data-episode": alert.episode_id, "data-camera": alert.camera, "data-review": "unreviewed"},
                    img, body);
    entry = {node, img, what, meta, state, verdict, alert: null, ended: false, started: Date.parse(alert.started_at), review: null};
    if (can.has("review")) body.append(reviewControls(entry));
    episodes.set(alert.episode_id, entry);
    const list = document.getElementById("alerts");
    // Live events go on top; history pages arrive newest first and go below.
    if (live) list.prepend(node); else list.append(node);
  }
  const snapshot = alert.snapshot;
  const local = path => typeof path === "string" && /^\/snapshots\/[0-9a-f]{32}-(start|end)(-face)?\.jpg$/.test(path);
  if (snapshot && local(snapshot.frame) && entry.img.isConnected && (alert.event === "start" || !entry.img.getAttribute("src"))) {
    entry.img.src = local(snapshot.face) ? snapshot.face : snapshot.frame;
    entry.img.onclick = () => window.open(snapshot.frame, "_blank", "noopener");
  }
  if (alert.event === "end") entry.ended = true;
  if (!entry.alert || alert.event_at >= entry.alert.event_at || alert.event === "end") entry.alert = alert;
  if (review) entry.review = review;
  renderEntry(entry);
}

function reviewControls(entry) {
  const reason = el("select", {class: "reason", "aria-label": "reason"}, el("option", {value: ""}, "no reason"),
                    ...(config.reasons || []).map(r => el("option", {value: r}, r)), el("option", {value: "other"}, "other..."));
  const other = el("input", {class: "reason-text", placeholder: "why", maxlength: "200", hidden: ""});
  reason.addEventListener("change", () => { other.hidden = reason.value !== "other"; });
  const confirm = el("button", {class: "confirm"}, "confirm");
  const dismiss = el("button", {class: "dismiss"}, "dismiss");
  const send = async verdict => {
    const why = reason.value === "other" ? other.value : reason.value;
    try {
      const review = await post(`/api/episodes/${entry.alert.episode_id}/review`, {verdict, reason: why || null, name: reviewerName()});
      entry.review = review;
      renderEntry(entry);
    } catch (e) {
      entry.verdict.textContent = `review failed: ${e.message}`;
    }
  };
  confirm.addEventListener("click", () => send("confirmed"));
  dismiss.addEventListener("click", () => send("dismissed"));
  return el("div", {class: "review"}, confirm, dismiss, reason, other);
}

function reviewerName() {
  const input = document.getElementById("reviewer-name");
  return input && input.value.trim() ? input.value.trim() : null;
}

function renderEntry(entry) {
  const a = entry.alert;
  entry.what.textContent = `${a.emotion} on ${a.camera}`;
  entry.meta.textContent = `face #${a.track_id} · peak ${a.peak_score.toFixed(2)} · ${when(entry.started)}`;
  const seconds = entry.ended ? a.duration_s : (Date.now() - entry.started) / 1000;
  entry.state.textContent = entry.ended
    ? `ended (${a.end_reason.replace("_", " ")}) after ${duration(seconds)}`
    : `open for ${duration(seconds)}`;
  entry.node.classList.toggle("ended", entry.ended);
  entry.node.dataset.state = entry.ended ? "ended" : "open";
  const r = entry.review;
  entry.node.dataset.review = r ? r.verdict : "unreviewed";
  entry.verdict.textContent = r
    ? `${r.verdict}${r.reason ? ` (${r.reason})` : ""} by ${r.reviewer.name || r.reviewer.role}, ${when(Date.parse(r.reviewed_at))}`
    : "not reviewed";
}

// --- filters: the same ones the API takes, applied to history pages by the daemon and to live events here ---
const filter = {
  params() {
    const form = document.getElementById("filters");
    const query = new URLSearchParams();
    if (!form) return query;
    const data = new FormData(form);
    for (const key of ["camera", "emotion", "review"]) {
      const value = String(data.get(key) || "").trim();
      if (value) query.set(key, value);
    }
    // Dates are the operator's local days: from the start of "from" to the end of "to".
    if (data.get("since")) query.set("since", new Date(data.get("since") + "T00:00:00").toISOString());
    if (data.get("until")) { const end = new Date(data.get("until") + "T00:00:00"); end.setDate(end.getDate() + 1); query.set("until", end.toISOString()); }
    return query;
  },
  matches(alert, review) {
    const q = this.params();
    const state = review ? review.verdict : "unreviewed";
    return (!q.get("camera") || alert.camera === q.get("camera")) && (!q.get("emotion") || alert.emotion === q.get("emotion").toLowerCase())
      && (!q.get("review") || state === q.get("review"))
      && (!q.get("since") || Date.parse(alert.event_at) >= Date.parse(q.get("since")))
      && (!q.get("until") || Date.parse(alert.event_at) < Date.parse(q.get("until")));
  },
};

function onReview(review) {
  const entry = episodes.get(review.episode_id);
  if (!entry) return;
  entry.review = review;
  if (!filter.matches(entry.alert, review)) { entry.node.remove(); episodes.delete(review.episode_id); return; }
  renderEntry(entry);
}

let nextPage = null;
async function loadHistory(before) {
  const query = filter.params();
  query.set("limit", "50");
  if (before) query.set("before", before);
  try {
    const response = await fetch("/api/alerts?" + query, {cache: "no-store"});
    const page = await response.json();
    if (!response.ok) throw new Error(page.error);
    // Oldest first, so an episode's end lands on its start.
    for (const event of page.events.slice().reverse()) addEvent(event.alert, false, event.review);
    nextPage = page.next;
    document.getElementById("older").hidden = !nextPage;
    document.getElementById("alerts-note").textContent = page.source === "memory"
      ? `history from memory only: ${page.reason}` : "";
  } catch (e) {
    statusOk = false;
    setConnection();
  }
}

function reloadAlerts() {
  episodes.clear();
  document.getElementById("alerts").replaceChildren();
  loadHistory(null);
}

function startAlerts() {
  loadHistory(null);
  document.getElementById("older").addEventListener("click", () => loadHistory(nextPage));
  document.getElementById("filters").addEventListener("change", reloadAlerts);
  if (can.has("review")) {
    const name = el("input", {id: "reviewer-name", placeholder: "your name (for reviews)", maxlength: "64"});
    name.value = localStorage.getItem("fer-reviewer") || "";
    name.addEventListener("change", () => localStorage.setItem("fer-reviewer", name.value.trim()));
    document.getElementById("filters").after(el("label", {class: "filters"}, "reviewer ", name));  // not a filter: outside the form
  }
  const source = new EventSource("/api/alerts/live");
  source.addEventListener("alert", event => addEvent(JSON.parse(event.data), true));
  source.addEventListener("review", event => onReview(JSON.parse(event.data)));
  source.addEventListener("open", () => { if (!eventsOk) loadHistory(null); eventsOk = true; setConnection(); });
  source.addEventListener("error", () => { eventsOk = false; setConnection(); });
  setInterval(() => episodes.forEach(entry => { if (!entry.ended) renderEntry(entry); }), 1000);
}

// --- the camera page's chart: seven smoothed scores of each track over the last minute ---
const WINDOW_S = 60;

const pollScores = () => poll(`/api/cameras/${encodeURIComponent(config.camera)}/scores`, drawChart);

function drawChart(data) {
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  const now = Date.now() / 1000;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#444"; ctx.fillStyle = "#888"; ctx.font = "12px sans-serif"; ctx.lineWidth = 1;
  for (const y of [0, 0.25, 0.5, 0.75, 1]) {
    const py = h - pad - y * (h - 2 * pad);
    ctx.beginPath(); ctx.moveTo(pad, py); ctx.lineTo(w - 5, py); ctx.stroke();
    ctx.fillText(y.toFixed(2), 0, py + 4);
  }
  ctx.fillText("-60 s", pad, h - 8); ctx.fillText("now", w - 30, h - 8);
  const x = t => pad + (1 - (now - t) / WINDOW_S) * (w - pad - 5);
  const y = p => h - pad - p * (h - 2 * pad);
  const tracks = Object.keys(data.tracks);
  tracks.forEach((track, i) => {
    const points = data.tracks[track];
    ctx.setLineDash(DASHES[i % DASHES.length]);
    data.labels.forEach((label, k) => {
      ctx.strokeStyle = COLORS[k % COLORS.length]; ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach(([t, scores], j) => { if (j) ctx.lineTo(x(t), y(scores[k])); else ctx.moveTo(x(t), y(scores[k])); });
      ctx.stroke();
    });
  });
  // Each watched emotion's enter threshold: where its line must stay for an alert to start.
  const thresholds = Object.entries(data.thresholds || {});
  ctx.setLineDash([8, 4]); ctx.lineWidth = 1; ctx.font = "13px sans-serif";
  for (const [emotion, value] of thresholds) {
    const k = data.labels.indexOf(emotion);
    ctx.strokeStyle = ctx.fillStyle = COLORS[(k < 0 ? 0 : k) % COLORS.length];
    ctx.beginPath(); ctx.moveTo(pad, y(value)); ctx.lineTo(w - 5, y(value)); ctx.stroke();
    ctx.fillText(`${emotion} alert ${value.toFixed(2)}`, w - 150, y(value) - 4);
  }
  canvas.dataset.thresholds = String(thresholds.length);
  ctx.setLineDash([]);
  const legend = document.getElementById("legend");
  if (!legend.childElementCount && data.labels.length) {
    data.labels.forEach((label, k) => {
      const swatch = el("i", {});
      swatch.style.background = COLORS[k % COLORS.length];  // CSSOM: allowed by the page's style-src 'self'
      legend.append(el("span", {}, swatch, label));
    });
  }
  canvas.dataset.updates = String(Number(canvas.dataset.updates) + 1);
  canvas.dataset.points = String(tracks.reduce((n, t) => n + data.tracks[t].length, 0));
  document.getElementById("chart-note").textContent = tracks.length
    ? `faces: ${tracks.map((t, i) => "#" + t + (i ? " (line style " + (i % DASHES.length + 1) + ")" : " (solid)")).join(", ")}`
    : "no face in the last minute";
}

if (config.page === "index") startAlerts();
if (config.page === "camera") { pollScores(); setInterval(pollScores, 1000); }

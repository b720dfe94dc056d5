// The console's behaviour: live video, the daemon's health, the alert list (server-sent events) and the score chart.
// Plain browser JavaScript, nothing fetched from outside the daemon.
"use strict";

const config = JSON.parse(document.body.dataset.config || "{}");
const COLORS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"];
const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];
let statusOk = true, eventsOk = true;

function setConnection() {
  const connected = statusOk && eventsOk;
  document.getElementById("connection").hidden = connected;
  const health = document.getElementById("health");
  if (health) health.classList.toggle("stale", !connected);  // the last health seen, no longer current
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
  }
}
pollStatus();
setInterval(pollStatus, 2000);

// --- the alert list: one entry per episode, from history pages and live events ---
const episodes = new Map();

function duration(seconds) {
  seconds = Math.max(0, seconds);
  return seconds < 60 ? seconds.toFixed(1) + " s" : Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
}

function addEvent(alert, live) {
  let entry = episodes.get(alert.episode_id);
  if (!entry) {
    const img = el("img", {alt: `${alert.emotion} on ${alert.camera}`, class: "snapshot"});
    const what = el("div", {class: "what"});
    const meta = el("div", {class: "meta"});
    const state = el("div", {class: "meta state"});
    const node = el("li", {class: "alert", "data-episode": alert.episode_id, "data-camera": alert.camera},
                    img, el("div", {}, what, meta, state));
    entry = {node, img, what, meta, state, alert: null, ended: false, started: Date.parse(alert.started_at)};
    episodes.set(alert.episode_id, entry);
    const list = document.getElementById("alerts");
    // Live events go on top; history pages arrive newest first and go below.
    if (live) list.prepend(node); else list.append(node);
  }
  const snapshot = alert.snapshot;
  const local = path => typeof path === "string" && /^\/snapshots\/[0-9a-f]{32}-(start|end)(-face)?\.jpg$/.test(path);
  if (snapshot && local(snapshot.frame) && (alert.event === "start" || !entry.img.getAttribute("src"))) {
    entry.img.src = local(snapshot.face) ? snapshot.face : snapshot.frame;
    entry.img.onclick = () => window.open(snapshot.frame, "_blank", "noopener");
  }
  if (alert.event === "end") entry.ended = true;
  if (!entry.alert || alert.event_at >= entry.alert.event_at || alert.event === "end") entry.alert = alert;
  renderEntry(entry);
}

function renderEntry(entry) {
  const a = entry.alert;
  entry.what.textContent = `${a.emotion} on ${a.camera}`;
  entry.meta.textContent = `face #${a.track_id} · peak ${a.peak_score.toFixed(2)} · ${new Date(entry.started).toLocaleTimeString()}`;
  const seconds = entry.ended ? a.duration_s : (Date.now() - entry.started) / 1000;
  entry.state.textContent = entry.ended
    ? `ended (${a.end_reason.replace("_", " ")}) after ${duration(seconds)}`
    : `open for ${duration(seconds)}`;
  entry.node.classList.toggle("ended", entry.ended);
  entry.node.dataset.state = entry.ended ? "ended" : "open";
}

let nextPage = null;
async function loadHistory(before) {
  const query = new URLSearchParams({limit: "50"});
  if (before) query.set("before", before);
  try {
    const response = await fetch("/api/alerts?" + query, {cache: "no-store"});
    const page = await response.json();
    // Oldest first, so an episode's end lands on its start.
    for (const event of page.events.slice().reverse()) addEvent(event.alert, false);
    nextPage = page.next;
    document.getElementById("older").hidden = !nextPage;
    document.getElementById("alerts-note").textContent = page.source === "memory"
      ? `history from memory only: ${page.reason}` : "";
  } catch (e) {
    statusOk = false;
    setConnection();
  }
}

function startAlerts() {
  loadHistory(null);
  document.getElementById("older").addEventListener("click", () => loadHistory(nextPage));
  const source = new EventSource("/api/alerts/live");
  source.addEventListener("alert", event => addEvent(JSON.parse(event.data), true));
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

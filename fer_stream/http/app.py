"""The console and the probes, as one Starlette application over the daemon's state.

Starlette on uvicorn: an ASGI stack holds many long-lived streams (live video,
the alert list's server-sent events) on one thread's event loop, where a
thread per connection would not scale, and it is small (the console needs
routing, streaming and static files, not FastAPI's schema layer). Everything
it shows comes from ``DaemonState``, the snapshot store and the Redis stream;
no request reaches a child process. Camera URLs never appear: cameras are
shown by name.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fer_stream.alerts.message import Alert, utc_from_epoch
from fer_stream.daemon_state import DaemonState
from fer_stream.evidence.store import SnapshotStore
from fer_stream.http import pages
from fer_stream.http.access import COOKIE, PERMISSIONS, SESSION_S, Access, RequireToken, client_address, may, role_of
from fer_stream.http.history import MAX_PAGE, AlertFilter, AlertHistory, HistoryUnavailableError
from fer_stream.metrics import SettledCollector
from fer_stream.reviews.flood import FloodControl
from fer_stream.reviews.message import MAX_NAME, Review, Reviewer
from fer_stream.reviews.store import EpisodeRef, ReviewStore

#: How often a live stream looks for a newer frame, and an idle event stream sends a keep-alive comment.
FRAME_POLL_S = 0.05
KEEPALIVE_S = 15.0
MAX_LOGIN_BYTES = 4096
MAX_API_BYTES = 4096
#: The longest snooze the console offers or accepts.
MAX_SNOOZE_MIN = 24 * 60
MJPEG_BOUNDARY = "fer-frame"


class Console:
    """The routes, and the state they share; ``closing`` ends every open stream at shutdown."""

    def __init__(
        self, state: DaemonState, *, metrics_dir: str, metrics_lock: threading.Lock, access: Access,
        snapshots: SnapshotStore | None = None, history: AlertHistory | None = None,
        reviews: ReviewStore | None = None, flood: FloodControl | None = None, on_review: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        """``reviews``: where verdicts are kept (None: reviewing is off); ``flood``: camera snoozes (None: off);
        ``on_review``: called after a verdict was kept (the review publisher delivers it)."""
        self.state = state
        self.metrics_lock = metrics_lock
        self.access = access
        self.snapshots = snapshots
        self.history = history
        self.reviews = reviews
        self.flood = flood
        self.on_review = on_review
        self.registry = CollectorRegistry()
        SettledCollector(self.registry, path=metrics_dir)
        self.closing = threading.Event()
        self._listeners: set[asyncio.Queue[str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        state.alert_listeners.append(self._on_alert)

    def app(self) -> Any:
        static = resources.files("fer_stream.http").joinpath("static")
        routes = [
            Route("/", self.index),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
            Route("/status", self.status),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/cameras/{name}.jpg", self.camera_jpeg),
            Route("/cameras/{name}/live.mjpeg", self.camera_stream),
            Route("/cameras/{name}", self.camera_page),
            Route("/api/alerts", self.alert_history),
            Route("/api/alerts/live", self.alert_events),
            Route("/api/cameras/{name}/scores", self.camera_scores),
            Route("/api/episodes/{episode_id}/review", self.review, methods=["POST"]),
            Route("/api/cameras/{name}/snooze", self.snooze, methods=["POST"]),
            Route("/favicon.ico", self.favicon),
            Route("/snapshots/{file}", self.snapshot),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ]
        app = Starlette(routes=routes, exception_handlers={404: self.no_such_page})
        return RequireToken(app, self.access, pages.login)

    async def no_such_page(self, request: Request, exc: Exception) -> Response:
        return _not_found(f"no such page {request.url.path!r}; try /, /cameras/<name>, /api/alerts, /metrics, /healthz, "
                          "/readyz, /status")

    # --- probes and scrapes ------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        ready, reason = self.state.readiness()
        return JSONResponse({"ready": ready, "reason": reason}, status_code=200 if ready else 503)

    def metrics(self, request: Request) -> Response:  # sync: Starlette runs it in a worker thread
        with self.metrics_lock:
            body = generate_latest(self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def status(self, request: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    # --- pages ---------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return _page(pages.index(self.state.cameras, logout=self.access.required, role=role_of(request.scope),
                                 can=self._can(request)))

    async def camera_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.state.cameras:
            return _not_found(f"no camera named {name!r}")
        return _page(pages.camera(name, logout=self.access.required, role=role_of(request.scope), can=self._can(request)))

    def _can(self, request: Request) -> list[str]:
        """What the page may offer this role: only what the API would also accept."""
        allowed = PERMISSIONS[role_of(request.scope)]
        return sorted(p for p in allowed if (p != "review" or self.reviews is not None) and (p != "snooze" or self.flood is not None))

    async def favicon(self, request: Request) -> Response:
        static = resources.files("fer_stream.http").joinpath("static", "favicon.svg")
        return Response(static.read_bytes(), media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    async def login_form(self, request: Request) -> Response:
        return _page(pages.login(request.query_params.get("next", "/")))

    async def login(self, request: Request) -> Response:
        body = b""
        async for chunk in request.stream():  # read in pieces: a chunked body has no Content-Length to check
            body += chunk
            if len(body) > MAX_LOGIN_BYTES:
                return JSONResponse({"error": "the login form is larger than a login form"}, status_code=413)
        form = parse_qs(body.decode("utf-8", "replace"))
        token, target = form.get("token", [""])[0], _local_path(form.get("next", ["/"])[0])
        if not self.access.required:
            return RedirectResponse(target, status_code=303)
        address, wrong_tokens = client_address(request.scope), self.access.wrong_tokens  # a wrong token costs a second
        if not wrong_tokens.may_try(address):
            return _page(pages.login(target, failed="busy"), status_code=429)
        role = self.access.role_of(token)
        if role is None:
            await wrong_tokens.answer_later(address)
            return _page(pages.login(target, failed="wrong"), status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, self.access.session_cookie(role), max_age=SESSION_S, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # --- live video ----------------------------------------------------------------
    async def camera_jpeg(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.state.cameras:
            return _not_found(f"no camera named {name!r}")
        jpeg = self.state.view_jpeg(name)
        if jpeg is None:
            return JSONResponse({"error": "no frame yet; the camera starts sending while someone watches"}, status_code=503)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def camera_stream(self, request: Request) -> Response:
        """MJPEG: each new live-view frame as one part; the camera encodes only while such a stream is open."""
        name = request.path_params["name"]
        if name not in self.state.cameras:
            return _not_found(f"no camera named {name!r}")

        async def parts():
            with self.state.watching(name):
                sent_at = None
                while not self.closing.is_set() and not await request.is_disconnected():
                    view = self.state.view(name)
                    if view is not None and view.at != sent_at:
                        sent_at = view.at
                        head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(view.jpeg)}\r\n\r\n"
                        yield head.encode() + view.jpeg + b"\r\n"
                    await asyncio.sleep(FRAME_POLL_S)

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    # --- alerts ----------------------------------------------------------------------
    def _on_alert(self, alert: Alert) -> None:
        """From the supervisor's thread: hand the alert to the event loop, which passes it to every open stream."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, alert.to_json())
        except RuntimeError:
            pass  # the loop closed meanwhile: the console is stopping

    def _fan_out(self, data: str) -> None:
        """On the event loop, the only thread that touches the listeners."""
        self._fan_out_event("alert", data)

    def _fan_out_event(self, event: str, data: str) -> None:
        for queue in self._listeners:
            _offer(queue, f"event: {event}\ndata: {data}\n\n")

    async def alert_events(self, request: Request) -> Response:
        """Server-sent events: every alert as it leaves the supervisor, and every verdict given here (the browser's
        EventSource reconnects)."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)

        async def events():
            self._listeners.add(queue)  # here, so the finally below always takes it out again
            try:
                yield "retry: 2000\n\n"
                idle = 0.0
                while not self.closing.is_set() and not await request.is_disconnected():
                    try:
                        data = await asyncio.wait_for(queue.get(), timeout=0.5)
                    except TimeoutError:
                        idle += 0.5
                        if idle >= KEEPALIVE_S:
                            idle = 0.0
                            yield ": keep-alive\n\n"
                        continue
                    idle = 0.0
                    yield data
            finally:
                self._listeners.discard(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def alert_history(self, request: Request) -> Response:
        """A page of past alert events, each with its episode's verdict: from the Redis stream, or (alerts not
        published, Redis away) the recent ones here. Filters: camera, emotion, review, since, until."""
        try:
            limit = int(request.query_params.get("limit", "50"))
            where = AlertFilter.from_query(request.query_params)
        except ValueError as exc:
            return JSONResponse({"error": str(exc) if "limit" not in str(exc) else "limit must be a whole number"},
                                status_code=400)  # fmt: skip
        before = request.query_params.get("before")
        verdicts = self._verdicts
        if self.history is not None:
            try:
                page = await run_in_threadpool(self.history.page, before=before, limit=limit, where=where, verdicts=verdicts)
                return JSONResponse({**page, "source": "redis"})
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except HistoryUnavailableError as exc:
                reason = str(exc)
        else:
            reason = "alerts are not published (alerts.enabled: false)"
        if before is not None:
            return JSONResponse({"events": [], "next": None, "source": "memory", "reason": reason})
        limit = max(1, min(limit, MAX_PAGE))
        recent = list(reversed(self.state.alerts()))
        known = await run_in_threadpool(verdicts, [a.episode_id for a in recent])
        events = [{"id": None, "alert": json.loads(a.to_json()), "review": _review_json(known.get(a.episode_id))}
                  for a in recent if where.matches(a, known.get(a.episode_id))][:limit]  # fmt: skip
        return JSONResponse({"events": events, "next": None, "source": "memory", "reason": reason})

    def _verdicts(self, episode_ids: list[str]) -> dict[str, Review]:
        return {} if self.reviews is None else self.reviews.verdicts(episode_ids)

    async def review(self, request: Request) -> Response:
        """A reviewer confirms or dismisses an episode: kept on disk before the answer, then published."""
        if self.reviews is None:
            return JSONResponse({"error": "reviews are off on this daemon"}, status_code=404)
        if not may(request.scope, "review"):
            return _forbidden("review")
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        verdict, reason, name = body.get("verdict"), body.get("reason"), body.get("name")
        if verdict not in ("confirmed", "dismissed"):
            return JSONResponse({"error": "verdict must be confirmed or dismissed"}, status_code=400)
        episode_id = request.path_params["episode_id"]
        episode = await run_in_threadpool(self._episode, episode_id)
        if episode is None:
            return _not_found(f"no episode {episode_id!r} here or in the alert stream")
        try:
            review = Review(
                episode_id=episode.episode_id, camera=episode.camera, emotion=episode.emotion, started_at=episode.started_at,
                verdict=verdict, reason=reason, reviewer=Reviewer(role=role_of(request.scope), name=_name(name)),
                reviewed_at=utc_from_epoch(time.time()), host=socket.gethostname(),
            )  # fmt: skip
        except ValueError as exc:
            return JSONResponse({"error": f"not a review: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}"},
                                status_code=400)  # fmt: skip
        await run_in_threadpool(self.reviews.add, review)
        self.on_review()
        self._fan_out_event("review", review.to_json())
        return JSONResponse(json.loads(review.to_json()))

    def _episode(self, episode_id: str) -> EpisodeRef | None:
        """The episode a review names: seen starting here, recent in memory, or found in the alert stream."""
        assert self.reviews is not None
        known = self.reviews.episode(episode_id)
        if known is not None:
            return known
        alert = next((a for a in self.state.alerts() if a.episode_id == episode_id), None)
        if alert is None and self.history is not None:
            try:
                alert = self.history.find(episode_id)
            except (ValueError, HistoryUnavailableError):
                return None
        return None if alert is None else EpisodeRef(alert.episode_id, alert.camera, alert.emotion, alert.started_at)

    async def snooze(self, request: Request) -> Response:
        """Snooze a camera's new alerts for ``minutes`` (0 ends the snooze)."""
        name = request.path_params["name"]
        if name not in self.state.cameras:
            return _not_found(f"no camera named {name!r}")
        if self.flood is None:
            return JSONResponse({"error": "alerts are off on this daemon: nothing to snooze"}, status_code=404)
        if not may(request.scope, "snooze"):
            return _forbidden("snooze")
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        minutes = body.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 <= minutes <= MAX_SNOOZE_MIN:
            return JSONResponse({"error": f"minutes must be a number from 0 (end the snooze) to {MAX_SNOOZE_MIN}"},
                                status_code=400)  # fmt: skip
        by = role_of(request.scope) + (f" ({who})" if (who := _name(body.get("name"))) else "")
        until = await run_in_threadpool(self.flood.snooze, name, float(minutes) * 60, by)
        return JSONResponse({"camera": name, "snoozed_until": until if minutes > 0 else None, "by": by})

    async def camera_scores(self, request: Request) -> Response:
        """The smoothed scores of each track of the last minute, for the camera page's chart."""
        name = request.path_params["name"]
        if name not in self.state.cameras:
            return _not_found(f"no camera named {name!r}")
        tracks: dict[str, list] = {}
        for t, track_id, scores in self.state.score_history(name):
            tracks.setdefault(str(track_id), []).append([round(t, 2), [round(s, 3) for s in scores]])
        model = self.state.model
        return JSONResponse({"labels": list(model.labels) if model else [], "tracks": tracks,
                             "thresholds": self.state.thresholds.get(name, {})})

    async def snapshot(self, request: Request) -> Response:
        name = request.path_params["file"]
        path = None if self.snapshots is None else self.snapshots.path(name)
        try:
            data = None if path is None else await run_in_threadpool(path.read_bytes)
        except OSError:
            data = None  # removed between the check and the read (expiry, the cap)
        if data is None:
            return _not_found("no such snapshot (expired, removed for the size cap, or never kept)")
        # A face: no copy stays in the browser's cache after logout.
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


#: The pages load their script and style from the daemon only, and may not be framed by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def _page(body: bytes, status_code: int = 200) -> Response:
    return HTMLResponse(body, status_code=status_code, headers={
        "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
    })  # fmt: skip


def _offer(queue: asyncio.Queue[str], data: str) -> None:
    """A browser too slow to take its events loses the oldest; the history page still has them."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(data)


def _not_found(why: str) -> Response:
    return JSONResponse({"error": why}, status_code=404)


def _forbidden(permission: str) -> Response:
    return JSONResponse({"error": f"this console credential may not {permission}: it needs the reviewer's token"},
                        status_code=403)  # fmt: skip


async def _json_body(request: Request) -> dict[str, Any] | Response:
    """A small JSON object. Asking for application/json also keeps other sites' forms out (no simple request)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"error": "send a JSON object (Content-Type: application/json)"}, status_code=415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_API_BYTES:
            return JSONResponse({"error": "the request body is too large"}, status_code=413)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    return data if isinstance(data, dict) else JSONResponse({"error": "send a JSON object"}, status_code=400)


def _name(value: Any) -> str | None:
    """The name a reviewer typed, trimmed; anything else is no name."""
    return value.strip()[:MAX_NAME] or None if isinstance(value, str) else None


def _review_json(review: Review | None) -> dict[str, Any] | None:
    return None if review is None else json.loads(review.to_json())


def _local_path(target: str) -> str:
    """Only a path on this server is a place to return to after login (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return quote(target, safe="/?=&-_.~%")

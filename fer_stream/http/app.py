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
import threading
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

from fer_stream.alerts.message import Alert
from fer_stream.daemon_state import DaemonState
from fer_stream.evidence.store import SnapshotStore
from fer_stream.http import pages
from fer_stream.http.access import COOKIE, SESSION_S, Access, RequireToken, client_address
from fer_stream.http.history import MAX_PAGE, AlertHistory, HistoryUnavailableError
from fer_stream.metrics import SettledCollector

#: How often a live stream looks for a newer frame, and an idle event stream sends a keep-alive comment.
FRAME_POLL_S = 0.05
KEEPALIVE_S = 15.0
MAX_LOGIN_BYTES = 4096
MJPEG_BOUNDARY = "fer-frame"


class Console:
    """The routes, and the state they share; ``closing`` ends every open stream at shutdown."""

    def __init__(
        self, state: DaemonState, *, metrics_dir: str, metrics_lock: threading.Lock, access: Access,
        snapshots: SnapshotStore | None = None, history: AlertHistory | None = None,
    ) -> None:  # fmt: skip
        self.state = state
        self.metrics_lock = metrics_lock
        self.access = access
        self.snapshots = snapshots
        self.history = history
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
        return _page(pages.index(self.state.cameras, logout=self.access.required))

    async def camera_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.state.cameras:
            return _not_found(f"no camera named {name!r}")
        return _page(pages.camera(name, logout=self.access.required))

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
        if not self.access.token_matches(token):
            await wrong_tokens.answer_later(address)
            return _page(pages.login(target, failed="wrong"), status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, self.access.session_cookie(), max_age=SESSION_S, httponly=True, samesite="strict",
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
        for queue in self._listeners:
            _offer(queue, data)

    async def alert_events(self, request: Request) -> Response:
        """Server-sent events: every alert as it leaves the supervisor (the browser's EventSource reconnects)."""
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
                    yield f"event: alert\ndata: {data}\n\n"
            finally:
                self._listeners.discard(queue)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def alert_history(self, request: Request) -> Response:
        """A page of past alert events: from the Redis stream, or (alerts not published, Redis away) the recent ones here."""
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            return JSONResponse({"error": "limit must be a whole number"}, status_code=400)
        before = request.query_params.get("before")
        if self.history is not None:
            try:
                page = await run_in_threadpool(self.history.page, before=before, limit=limit)
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
        recent = [{"id": None, "alert": json.loads(a.to_json())} for a in reversed(self.state.alerts())][:limit]
        return JSONResponse({"events": recent, "next": None, "source": "memory", "reason": reason})

    async def camera_scores(self, request: Request) -> Response:
        """The smoothed scores of each track of the last minute, for the camera page's chart."""
        name = request.path_params["name"]
        if name not in self.state.cameras:
            return _not_found(f"no camera named {name!r}")
        tracks: dict[str, list] = {}
        for t, track_id, scores in self.state.score_history(name):
            tracks.setdefault(str(track_id), []).append([round(t, 2), [round(s, 3) for s in scores]])
        model = self.state.model
        return JSONResponse({"labels": list(model.labels) if model else [], "tracks": tracks})

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


def _local_path(target: str) -> str:
    """Only a path on this server is a place to return to after login (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return quote(target, safe="/?=&-_.~%")

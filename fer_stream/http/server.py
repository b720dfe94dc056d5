"""A small threaded HTTP server inside the supervisor.

``/metrics`` aggregates every process's samples from the multiprocess
directory; the other routes read ``DaemonState`` only. Camera URLs never
appear here: cameras are shown by name.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from fer_stream.daemon_state import DaemonState
from fer_stream.http import page

log = logging.getLogger(__name__)


class DaemonHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    #: A normal listen backlog: with 5 (the default) 20 concurrent clients already wait for retransmits.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: DaemonState, metrics_dir: str, metrics_lock: threading.Lock) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.metrics_lock = metrics_lock
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=metrics_dir)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: DaemonHTTPServer
    #: Seconds a client may take to send its request: an idle or half-sent one frees its thread after this.
    timeout = 10

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        state = self.server.state
        if path == "/metrics":
            with self.server.metrics_lock:
                body = generate_latest(self.server.registry)
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, body)
        elif path == "/healthz":
            self._json(HTTPStatus.OK, {"status": "alive"})
        elif path == "/readyz":
            ready, reason = state.readiness()
            self._json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready, "reason": reason})
        elif path == "/status":
            self._json(HTTPStatus.OK, state.snapshot())
        elif path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", page.render(state.cameras))
        elif path.startswith("/cameras/") and path.endswith(".jpg"):
            name = path[len("/cameras/") : -len(".jpg")]
            if name not in state.cameras:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no camera named {name!r}"})
                return
            jpeg = state.view_jpeg(name)
            if jpeg is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no frame yet; the camera starts sending while someone watches"})
            else:
                self._send(HTTPStatus.OK, "image/jpeg", jpeg, cache=False)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {path!r}; try /, /metrics, /healthz, /readyz, /status"})

    def _json(self, status: HTTPStatus, body: dict) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes, cache: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if not cache:
            self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


def start_http_server(
    host: str, port: int, state: DaemonState, metrics_dir: str, metrics_lock: threading.Lock
) -> DaemonHTTPServer:
    """Bind (port 0 = any free port) and serve in a daemon thread; stop with ``.shutdown()``.

    ``metrics_lock`` is held while ``/metrics`` reads ``metrics_dir``; whoever removes files there holds it too.
    """
    try:
        server = DaemonHTTPServer((host, port), state, metrics_dir, metrics_lock)
    except OSError as exc:
        raise OSError(f"http: cannot listen on {host}:{port} ({exc.strerror}); change http.port or http.host in the config") from exc
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("HTTP on %s (/, /metrics, /healthz, /readyz, /status)", server.url)
    return server

"""Serves the console (fer_stream/http/app.py) with uvicorn on a thread of the supervisor's process.

The socket is bound here, before the thread starts, so a port in use stops the
daemon's start with a clear message, and port 0 yields the real port at once.
Connections are served by uvicorn's h11 protocol with a request deadline and a
bound on idle connections (fer_stream/http/connections.py).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

import uvicorn

from fer_stream.daemon_state import DaemonState
from fer_stream.evidence.store import SnapshotStore
from fer_stream.http.access import Access
from fer_stream.http.app import Console
from fer_stream.http.connections import WaitingConnections
from fer_stream.http.history import AlertHistory
from fer_stream.reviews.flood import FloodControl
from fer_stream.reviews.store import ReviewStore

log = logging.getLogger(__name__)

#: A normal listen backlog: with a small one, 20 concurrent clients already wait for retransmits.
BACKLOG = 128
#: Requests beyond this many open connections get 503 at once, so the process never runs out of files.
MAX_CONNECTIONS = 512
#: A connection must deliver its whole request within this long of opening or of its previous response.
REQUEST_TIMEOUT_S = 10
#: Connections waiting for their request, from one address and in all, before the longest-waiting is closed.
#: Together with the wrong-token answers that may wait (access.MAX_WRONG_TOKENS_WAITING), well below
#: MAX_CONNECTIONS: what no credential can hold leaves room for probes and operators.
MAX_WAITING_PER_CLIENT = 32
MAX_WAITING = 256
#: Open streams are ended at shutdown; this bounds how long uvicorn waits for them.
SHUTDOWN_GRACE_S = 2


class ConsoleServer:
    """The daemon's HTTP server; ``shutdown()`` ends open streams and stops it."""

    def __init__(self, sock: socket.socket, console: Console) -> None:
        self.sock = sock
        self.console = console
        waiting = WaitingConnections(request_timeout_s=REQUEST_TIMEOUT_S, max_waiting=MAX_WAITING,
                                     max_waiting_per_client=MAX_WAITING_PER_CLIENT)
        config = uvicorn.Config(
            console.app(), http=waiting.protocol(), log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S, timeout_keep_alive=REQUEST_TIMEOUT_S, backlog=BACKLOG,
            limit_concurrency=MAX_CONNECTIONS,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self.console.closing.set()
        self._server.should_exit = True
        self._thread.join(SHUTDOWN_GRACE_S + 2.0)
        self.sock.close()


def start_http_server(
    host: str, port: int, state: DaemonState, metrics_dir: str, metrics_lock: threading.Lock, *,
    access: Access | None = None, snapshots: SnapshotStore | None = None, history: AlertHistory | None = None,
    reviews: ReviewStore | None = None, flood: FloodControl | None = None, on_review: Callable[[], None] = lambda: None,
) -> ConsoleServer:  # fmt: skip
    """Bind (port 0 = any free port) and serve on a daemon thread; stop with ``.shutdown()``.

    ``metrics_lock`` is held while ``/metrics`` reads ``metrics_dir``; whoever removes files there holds it too.
    """
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.set_inheritable(False)
    except OSError as exc:
        raise OSError(f"http: cannot listen on {host}:{port} ({exc.strerror}); change http.port or http.host in the config") from exc
    console = Console(state, metrics_dir=metrics_dir, metrics_lock=metrics_lock, access=access or Access(None, host=host),
                      snapshots=snapshots, history=history, reviews=reviews, flood=flood, on_review=on_review)
    server = ConsoleServer(sock, console)
    server.start()
    protected = "token required" if console.access.required else "open: loopback only"
    log.info("console on %s (%s); also /metrics, /healthz, /readyz, /status", server.url, protected)
    return server

"""Who may use the console: one access token from the environment, or the session cookie its login form sets.

A pure ASGI middleware in front of every route, streams included, so no route
can forget the check. The cookie holds no token: it is an expiry time and an
HMAC of it keyed by the token, so changing the token ends every session, and a
stolen cookie stops working after ``SESSION_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "fer_session"
SESSION_S = 12 * 3600
#: Paths anyone may request: the login form itself and what it needs.
LOGIN_PATHS = ("/login", "/static/console.css")
#: Probe and scrape paths, open unless http.protect_probes.
PROBE_PATHS = ("/healthz", "/readyz", "/metrics")


class Access:
    """The token check. ``token`` None means the console is open (loopback only: preflight refuses otherwise)."""

    def __init__(
        self, token: str | None, *, protect_probes: bool = False, host: str = "127.0.0.1", clock: Callable[[], float] = time.time
    ) -> None:
        """``host``: the address the server is bound to, one of the names an open console answers to."""
        self._token = token
        self.protect_probes = protect_probes
        self._clock = clock
        self.open_hosts = {"localhost", "127.0.0.1", "::1", host.strip("[]").lower()}

    def host_allowed(self, host_header: str) -> bool:
        """An open console answers only to its own names: a web page whose name was rebound to 127.0.0.1
        (DNS rebinding) must not read it. With a token this does not matter, and proxies may use any name."""
        if self._token is not None:
            return True
        name = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else host_header[1:].split("]", 1)[0]
        return name.lower() in self.open_hosts

    @property
    def required(self) -> bool:
        return self._token is not None

    def is_open(self, path: str) -> bool:
        return path in LOGIN_PATHS or (path in PROBE_PATHS and not self.protect_probes)

    def token_matches(self, candidate: str) -> bool:
        return self._token is not None and hmac.compare_digest(candidate.encode(), self._token.encode())

    def session_cookie(self) -> str:
        """A cookie value valid for SESSION_S."""
        expires = int(self._clock()) + SESSION_S
        return f"{expires}.{self._sign(expires)}"

    def cookie_valid(self, value: str) -> bool:
        expires, _, signature = value.partition(".")
        if not re.fullmatch(r"[0-9]{1,12}", expires) or int(expires) < self._clock():
            return False
        return hmac.compare_digest(signature.encode("utf-8", "replace"), self._sign(int(expires)).encode())

    def allows(self, headers: dict[str, str]) -> bool:
        """Whether a request with these (lower-cased) headers may pass."""
        if self._token is None:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:  # a malformed Cookie header is no credential
            return False
        return COOKIE in cookie and self.cookie_valid(cookie[COOKIE].value)

    def _sign(self, expires: int) -> str:
        assert self._token is not None
        return hmac.new(self._token.encode(), f"session:{expires}".encode(), hashlib.sha256).hexdigest()


class RequireToken:
    """ASGI middleware: requests without the token get 401 (a login form for pages, JSON for the rest)."""

    def __init__(self, app: ASGIApp, access: Access, login_page: Callable[[str], bytes]) -> None:
        self.app = app
        self.access = access
        self.login_page = login_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the console has none: nothing may open one past this check
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.access.host_allowed(headers.get("host", "")):
            await _respond(send, 421, b'{"error": "this console answers only to its own address"}', b"application/json")
            return
        if not self.access.required or self.access.is_open(scope["path"]) or self.access.allows(headers):
            await self.app(scope, receive, send)
            return
        if _wants_page(scope["path"], headers):
            body, content_type = self.login_page(scope["path"]), b"text/html; charset=utf-8"
        else:
            body, content_type = b'{"error": "the console needs its access token (Authorization: Bearer, or log in at /login)"}', \
                b"application/json"
        await _respond(send, 401, body, content_type, [(b"www-authenticate", b'Bearer realm="fer-stream"')])


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, extra: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"),
        *(extra or []),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _wants_page(path: str, headers: dict[str, str]) -> bool:
    """A browser navigating to a page gets the login form; scripts, streams and pictures get JSON."""
    if path.startswith(("/api/", "/snapshots/", "/static/")) or path.endswith((".jpg", ".mjpeg")):
        return False
    return "text/html" in headers.get("accept", "")

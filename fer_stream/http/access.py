"""Who may use the console: one access token from the environment, or the session cookie its login form sets.

A pure ASGI middleware in front of every route, streams included, so no route
can forget the check. The cookie holds no token: it is an expiry time and an
HMAC of it keyed by the token, so changing the token ends every session, and a
stolen cookie stops working after ``SESSION_S``.
"""

from __future__ import annotations

import hashlib
import hmac
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

    def __init__(self, token: str | None, *, protect_probes: bool = False, clock: Callable[[], float] = time.time) -> None:
        self._token = token
        self.protect_probes = protect_probes
        self._clock = clock

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
        if not expires.isdigit() or int(expires) < self._clock():
            return False
        return hmac.compare_digest(signature, self._sign(int(expires)))

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
        if scope["type"] != "http" or not self.access.required or self.access.is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.access.allows(headers):
            await self.app(scope, receive, send)
            return
        if _wants_page(scope["path"], headers):
            body, content_type = self.login_page(scope["path"]), b"text/html; charset=utf-8"
        else:
            body, content_type = b'{"error": "the console needs its access token (Authorization: Bearer, or log in at /login)"}', \
                b"application/json"
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="fer-stream"'), (b"cache-control", b"no-store"),
        ]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def _wants_page(path: str, headers: dict[str, str]) -> bool:
    """A browser navigating to a page gets the login form; scripts, streams and pictures get JSON."""
    if path.startswith(("/api/", "/snapshots/", "/static/")) or path.endswith((".jpg", ".mjpeg")):
        return False
    return "text/html" in headers.get("accept", "")

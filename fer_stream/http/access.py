"""Who may use the console, and what they may do: access tokens from the environment, or the session cookie
the login form sets.

Three tokens, each from its own variable: the console's token (role ``admin``:
everything), a reviewer's (``reviewer``: watch, read, review, snooze) and a
viewer's (``viewer``: watch and read only). An open console on loopback has no
token and gives everyone the role ``local``, which may do everything. A pure
ASGI middleware in front of every route, streams included, so no route can
forget the check; it puts the role in the request's scope (``ROLE_KEY``) for
the routes that need a permission. The cookie holds no token: it is an expiry
time, the role and an HMAC of both keyed by that role's token, so changing a
token ends its sessions, and a stolen cookie stops working after ``SESSION_S``.

A wrong token (a bearer token or the login form's) costs its sender a second:
see :class:`WrongTokens`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Role = Literal["viewer", "reviewer", "admin", "local"]
#: What each role may do: watch (pages, video, alerts, pictures, read APIs), review (verdicts), snooze (cameras).
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"watch"}),
    "reviewer": frozenset({"watch", "review", "snooze"}),
    "admin": frozenset({"watch", "review", "snooze"}),
    "local": frozenset({"watch", "review", "snooze"}),
}
#: Where the middleware leaves the request's role in the ASGI scope.
ROLE_KEY = "fer_stream.role"

COOKIE = "fer_session"
SESSION_S = 12 * 3600
#: Paths anyone may request: the login form itself and what it needs.
LOGIN_PATHS = ("/login", "/static/console.css", "/favicon.ico", "/static/favicon.svg")
#: Probe and scrape paths, open unless http.protect_probes.
PROBE_PATHS = ("/healthz", "/readyz", "/metrics")
#: How long the answer to a wrong token waits.
WRONG_TOKEN_DELAY_S = 1.0
#: Wrong-token answers waiting at once, from all addresses: each holds a connection until it leaves.
MAX_WRONG_TOKENS_WAITING = 128


class WrongTokens:
    """Makes a wrong token cost a second, without letting anyone tie up the server with them.

    The answer to a wrong token waits ``delay_s`` (an asyncio sleep: a timer on
    the event loop, no thread). A delay alone would not slow a guesser who sends
    thousands of guesses at once, so while an address has a wrong answer waiting,
    its other token attempts are answered 429 without their token being checked:
    an address learns at most one wrong token a second, and holds at most one
    waiting answer. At most ``max_waiting`` answers wait in all; past that every
    token attempt gets 429 until one leaves. Session cookies are not token
    attempts (an HMAC cannot be guessed), and paths open without a token are
    never affected.
    """

    def __init__(self, delay_s: float = WRONG_TOKEN_DELAY_S, max_waiting: int = MAX_WRONG_TOKENS_WAITING) -> None:
        self.delay_s = delay_s
        self.max_waiting = max_waiting
        self._waiting: set[str] = set()

    def may_try(self, address: str) -> bool:
        """Whether a token from ``address`` may be checked now."""
        return address not in self._waiting and len(self._waiting) < self.max_waiting

    async def answer_later(self, address: str) -> None:
        """Hold the answer to a wrong token from ``address`` for ``delay_s``."""
        self._waiting.add(address)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self._waiting.discard(address)


class Access:
    """The token check. No token at all means the console is open (loopback only: preflight refuses otherwise)."""

    def __init__(
        self, token: str | None, *, reviewer_token: str | None = None, viewer_token: str | None = None,
        protect_probes: bool = False, host: str = "127.0.0.1", clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        """``token``: the console's (admin) token; ``host``: the address the server is bound to, one of the names
        an open console answers to."""
        given: tuple[tuple[Role, str | None], ...] = (("admin", token), ("reviewer", reviewer_token), ("viewer", viewer_token))
        self._tokens: dict[Role, str] = {role: value for role, value in given if value}
        self.protect_probes = protect_probes
        self._clock = clock
        self.open_hosts = {"localhost", "127.0.0.1", "::1", host.strip("[]").lower()}
        self.wrong_tokens = WrongTokens()

    def host_allowed(self, host_header: str) -> bool:
        """An open console answers only to its own names: a web page whose name was rebound to 127.0.0.1
        (DNS rebinding) must not read it. With a token this does not matter, and proxies may use any name."""
        if self.required:
            return True
        name = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else host_header[1:].split("]", 1)[0]
        return name.lower() in self.open_hosts

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def is_open(self, path: str) -> bool:
        return path in LOGIN_PATHS or (path in PROBE_PATHS and not self.protect_probes)

    def role_of(self, candidate: str) -> Role | None:
        """The role whose token this is (every token is compared, in constant time), None for none."""
        found = None
        for role, token in self._tokens.items():
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = role
        return found

    def session_cookie(self, role: Role) -> str:
        """A cookie value for ``role``, valid for SESSION_S."""
        expires = int(self._clock()) + SESSION_S
        return f"{expires}.{role}.{self._sign(expires, role)}"

    def cookie_role(self, value: str) -> Role | None:
        """The role a cookie value carries, None when it is forged, expired or its token changed."""
        expires, _, rest = value.partition(".")
        claimed, _, signature = rest.partition(".")
        role = next((known for known in self._tokens if known == claimed), None)
        if role is None or not re.fullmatch(r"[0-9]{1,12}", expires) or int(expires) < self._clock():
            return None
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), self._sign(int(expires), role).encode()):
            return None
        return role

    def session_role(self, headers: dict[str, str]) -> Role | None:
        """The role of the session cookie these (lower-cased) headers carry, if valid."""
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:  # a malformed Cookie header is no credential
            return None
        return self.cookie_role(cookie[COOKIE].value) if COOKIE in cookie else None

    def _sign(self, expires: int, role: Role) -> str:
        return hmac.new(self._tokens[role].encode(), f"session:{role}:{expires}".encode(), hashlib.sha256).hexdigest()


def role_of(scope: Scope) -> Role:
    """The role the middleware found for this request."""
    return scope.get(ROLE_KEY, "viewer")


def may(scope: Scope, permission: str) -> bool:
    return permission in PERMISSIONS[role_of(scope)]


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
        if not self.access.required:
            scope[ROLE_KEY] = "local"
            await self.app(scope, receive, send)
            return
        role = self.access.session_role(headers)
        if role is not None or self.access.is_open(scope["path"]):
            scope[ROLE_KEY] = role or "viewer"  # an open path shows nobody more than a viewer may see
            await self.app(scope, receive, send)
            return
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            address = client_address(scope)
            wrong_tokens = self.access.wrong_tokens
            if not wrong_tokens.may_try(address):
                await _respond(send, 429, TOO_MANY_WRONG_TOKENS, b"application/json", [(b"retry-after", b"1")])
                return
            role = self.access.role_of(bearer.strip())
            if role is not None:
                scope[ROLE_KEY] = role
                await self.app(scope, receive, send)
                return
            await wrong_tokens.answer_later(address)
        if _wants_page(scope["path"], headers):
            body, content_type = self.login_page(scope["path"]), b"text/html; charset=utf-8"
        else:
            body, content_type = b'{"error": "the console needs its access token (Authorization: Bearer, or log in at /login)"}', \
                b"application/json"
        await _respond(send, 401, body, content_type, [(b"www-authenticate", b'Bearer realm="fer-stream"')])


TOO_MANY_WRONG_TOKENS = b'{"error": "a wrong token from this address is still being answered; try again in a second"}'


def client_address(scope: Scope) -> str:
    """The address a request came from (its key for the wrong-token limit)."""
    client = scope.get("client")
    return client[0] if client else ""


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

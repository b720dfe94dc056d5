"""Credential redaction: the one form of a URL (camera, Redis) allowed into logs, metrics and the UI.

RTSP and Redis URLs may carry ``user:password@`` or a ``?password=`` style
query parameter; everything that prints or exports a URL goes through
:func:`redact_url` so a password never leaves the process.

A password may hold any character, ``/ # ? @ % :`` included, which a standard
URL parser reads as the end of the authority: ``rtsp://viewer:pa/ss@cam/x``
parses with the host ``viewer`` and the path ``/ss@cam/x``. So the userinfo is
taken up to the *last* ``@`` that is followed by something shaped like a host,
and everything between the first ``:`` of the userinfo and that ``@`` is
replaced. Query parameters whose names look like credentials have their values
replaced, whatever they hold, up to the next ``&name=`` pair.
"""

from __future__ import annotations

import re

#: Query parameter names whose values are secrets (case-insensitive; ``auth_token``, ``X-Api-Key`` included).
SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|credential|signature|sig$|session", re.IGNORECASE)
#: What may follow the userinfo's ``@``: a host name, IPv4 or [IPv6], an optional port, then the end or / ? #.
HOST_AFTER_AT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:\d*)?(?=[/?#]|$)")
PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")
MASK = "***"


def redact_url(url: str) -> str:
    """The URL with any password and credential-like query value replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _redact_query(url)
    at = _userinfo_end(rest)
    if at is not None:
        userinfo, rest = rest[:at], rest[at:]
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:{MASK}{rest}" if colon else f"{user}{rest}"
    return f"{scheme}{sep}{_redact_query(rest)}"


def _userinfo_end(rest: str) -> int | None:
    """Index of the ``@`` that ends the userinfo (the last one followed by a host), or None."""
    position = len(rest)
    while (position := rest.rfind("@", 0, position)) != -1:
        if HOST_AFTER_AT.match(rest, position + 1):
            return position
    return None


def _redact_query(text: str) -> str:
    """Mask credential-like query values up to the next ``&name=`` pair (an ``&``, ``#`` or ``?`` inside stays masked)."""
    before, mark, query = text.partition("?")
    if not mark:
        return text
    kept: list[str] = []
    secret = False
    for parameter in query.split("&"):
        name, equals, _ = parameter.partition("=")
        if equals and PARAMETER_NAME.fullmatch(name):
            secret = bool(SECRET_PARAMETER.search(name))
            kept.append(f"{name}={MASK}" if secret else parameter)
        elif not secret:
            kept.append(parameter)
    return f"{before}?{'&'.join(kept)}"

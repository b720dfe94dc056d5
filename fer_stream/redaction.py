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
HOST_AFTER_AT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:[^/?#@]*)?(?=[/?#]|$)")
#: What a user name may hold (RFC 3986 userinfo without ``:``); a host with a path or query does not match.
USER_NAME = re.compile(r"[A-Za-z0-9._~%!$&'()*+,;=-]*")
#: ``554/path?...password=`` after ``host:``: a port, path and query naming a secret, not a password.
PORT_PATH_QUERY = re.compile(r"\d*(/[^?#]*)?\?.*?(pass|pwd|secret|token|key|auth|credential|sig)", re.IGNORECASE)
PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")
MASK = "***"


def redact_url(url: str) -> str:
    """The URL with any password and credential-like query value replaced by ``***``."""
    scheme, user, password, rest = split_userinfo(url)
    if not scheme:
        return _redact_query(url)
    userinfo = "" if user is None else (f"{user}:{MASK}@" if password is not None else f"{user}@")
    return f"{scheme}://{userinfo}{_redact_query(rest)}"


def split_userinfo(url: str) -> tuple[str, str | None, str | None, str]:
    """``(scheme, user, password, host-and-rest)`` of ``scheme://user:password@host...``, whatever the password holds.

    ``scheme`` is empty for a string without ``://``; user and password are None when absent.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", None, None, url
    at = _userinfo_end(rest)
    if at is None:
        return scheme, None, None, rest
    user, colon, password = rest[:at].partition(":")
    return scheme, user, password if colon else None, rest[at + 1:]


def _userinfo_end(rest: str) -> int | None:
    """Index of the ``@`` that ends the userinfo (the last one followed by a host), or None.

    An ``@`` inside a query value (``cam/live?password=a@b``) is not one: the text before it must be a
    user name, optionally followed by ``:`` and a password that is not a port, path and query naming a secret.
    """
    position = len(rest)
    while (position := rest.rfind("@", 0, position)) != -1:
        if HOST_AFTER_AT.match(rest, position + 1):
            user, colon, password = rest[:position].partition(":")
            if USER_NAME.fullmatch(user) and not (colon and PORT_PATH_QUERY.match(password)):
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

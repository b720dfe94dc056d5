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

A parser that refuses such a URL may quote a piece of it in its error
(``urlsplit`` reads ``redis://:S3cret#tail@host`` as the port ``S3cret``), so
text that may hold parser errors goes through :func:`mask_secrets` with the
secrets of the URLs it was about (:func:`url_secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

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
#: The pieces of a secret a parser may quote on their own: runs between URL delimiters, and runs of letters and digits.
SECRET_PIECE = re.compile(r"[A-Za-z0-9._~-]+|[A-Za-z0-9]+")
#: Pieces shorter than this are left in the text: masking them would mask ordinary words and numbers, and they tell
#: little about the secret.
MIN_PIECE = 4


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


def url_secrets(url: str) -> list[str]:
    """The secrets ``url`` carries: its userinfo password and the values of credential-like query parameters."""
    _, _, password, rest = split_userinfo(url)
    values = [value for _, value, secret in _parameters(rest.partition("?")[2]) if secret and value]
    return [password, *values] if password else values


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret, decoded or not, and each of its pieces of ``MIN_PIECE`` or more characters, as ``***``.

    Case is ignored: a parser may lower-case what it quotes (a host name).
    """
    pieces: set[str] = set()
    for secret in secrets:
        for form in {secret, unquote(secret)}:
            pieces.add(form)
            pieces.update(SECRET_PIECE.findall(form))
    for piece in sorted((p for p in pieces if len(p) >= MIN_PIECE), key=len, reverse=True):
        text = re.sub(re.escape(piece), MASK, text, flags=re.IGNORECASE)
    return text


def _parameters(query: str) -> list[tuple[str, str | None, bool]]:
    """``(name, value, secret)`` per ``&``-separated parameter; after a secret, a piece that is no ``name=`` pair
    (an ``&`` inside the secret) belongs to its value. A piece without ``=`` elsewhere has the value None."""
    parameters: list[tuple[str, str | None, bool]] = []
    for parameter in query.split("&") if query else ():
        name, equals, value = parameter.partition("=")
        if equals and PARAMETER_NAME.fullmatch(name):
            parameters.append((name, value, bool(SECRET_PARAMETER.search(name))))
        elif parameters and parameters[-1][2]:
            previous, value_so_far, _ = parameters[-1]
            parameters[-1] = (previous, f"{value_so_far}&{parameter}", True)
        else:
            parameters.append((parameter, None, False))
    return parameters


def _redact_query(text: str) -> str:
    """Mask credential-like query values up to the next ``&name=`` pair (an ``&``, ``#`` or ``?`` inside stays masked)."""
    before, mark, query = text.partition("?")
    if not mark:
        return text
    kept = [name if value is None else f"{name}={MASK if secret else value}" for name, value, secret in _parameters(query)]
    return f"{before}?{'&'.join(kept)}"

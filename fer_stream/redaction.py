"""Credential redaction: the one form of a URL (camera, Redis) allowed into logs, metrics and the UI.

RTSP and Redis URLs may carry ``user:password@``; everything that prints or
exports a URL goes through :func:`redact_url` so a password never leaves the process.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``: the only form that may reach logs or output."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:***@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

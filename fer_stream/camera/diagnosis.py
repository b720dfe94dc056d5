"""Why a camera cannot be opened, in words an operator can act on.

OpenCV only says that opening failed; FFmpeg's reason goes to the process's
stderr without the camera's name. So after a failed open the camera asks the
source itself: for RTSP, whether the host resolves and accepts a connection,
and what the server answers to a ``DESCRIBE`` of the stream with the
configured credentials (401: wrong credentials, 404: wrong path); for a file,
whether it exists and is readable; for a USB camera, whether the device node
exists and may be opened. The answer becomes the camera's ``reason`` in its
log line and in ``/status``; it never contains the password. A file camera's
file is also checked before the daemon starts (:func:`undecodable`), since no
retry makes a file that is not a video play.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
from urllib.parse import unquote

import cv2

from fer_stream.config.models import CameraConfig
from fer_stream.redaction import split_userinfo

PROBE_TIMEOUT_S = 1.5
NOT_A_VIDEO = "not a video, or truncated (e.g. an MP4 without its moov atom)"


def diagnose(camera: CameraConfig, timeout: float = PROBE_TIMEOUT_S) -> str:
    """A one-line cause of a failed open (best effort: the probe itself may fail, and then says so)."""
    if camera.kind == "rtsp":
        return _rtsp(str(camera.source), min(timeout, camera.open_timeout_s))
    if camera.kind == "usb":
        device = f"/dev/video{camera.source}" if isinstance(camera.source, int) else str(camera.source)
        if not os.path.exists(device):
            return f"no device {device}: is the camera plugged in (ls /dev/video*)?"
        if not os.access(device, os.R_OK | os.W_OK):
            return f"no permission to open {device}: add the daemon's user to the 'video' group"
        return f"{device} exists but could not be opened (busy in another program, or not a capture device)"
    path = str(camera.source)
    if not os.path.isfile(path):
        return f"file {path} is gone"
    if not os.access(path, os.R_OK):
        return f"no permission to read {path}"
    return f"FFmpeg cannot read {path}: {NOT_A_VIDEO}"


def undecodable(path: str) -> str | None:
    """Why FFmpeg cannot play the file as the camera would open it, or None when it decodes a first frame."""
    try:
        if os.path.getsize(path) == 0:
            return "the file is empty"
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        decoded = capture.isOpened() and capture.read()[0]
    finally:
        capture.release()
    return None if decoded else NOT_A_VIDEO


def _rtsp(url: str, timeout: float) -> str:
    scheme, user, password, rest = split_userinfo(url)
    match = re.match(r"(\[[^\]]+\]|[^/:?#]+)(?::(\d+))?(.*)", rest)
    if not match:
        return "the URL has no host"
    host = match.group(1).strip("[]")
    port = int(match.group(2) or (322 if scheme == "rtsps" else 554))
    path = match.group(3) or "/"
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]
        endpoint = (str(address[0]), int(address[1]))
    except socket.gaierror:
        return f"cannot resolve the host name {host}: check the address, or DNS"
    try:
        with socket.create_connection(endpoint, timeout=timeout) as sock:
            if scheme == "rtsps":
                return f"{host}:{port} accepts connections; the TLS stream could not be opened (certificate or codec)"
            target = f"rtsp://{match.group(1)}:{port}{path}"
            status, headers = _describe(sock, target, None)
            if status == 401 and user is not None:
                status, headers = _describe(sock, target, _authorization(headers, user, password or "", target))
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port}: no RTSP server listens there (wrong port, or the camera is off)"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s: host down, wrong address, or a firewall"
    except OSError as exc:
        return f"cannot talk to {host}:{port}: {exc.strerror or exc}"
    if status is None:
        return f"{host}:{port} accepts connections but does not answer RTSP"
    if status == 401:
        return "the camera refused the credentials (401): check the user name and the password's environment variable"
    if status == 404:
        return f"the camera has no stream at {path.split('?')[0]} (404): check the path in the URL"
    if status == 200:
        return "the camera describes the stream but FFmpeg could not open it: try rtsp_transport: udp, or check the codec"
    return f"the camera answered RTSP {status} to DESCRIBE"


def _describe(sock: socket.socket, target: str, authorization: str | None) -> tuple[int | None, dict[str, str]]:
    lines = [f"DESCRIBE {target} RTSP/1.0", "CSeq: 1", "Accept: application/sdp", "User-Agent: fer-stream"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = re.match(r"RTSP/1\.\d (\d{3})", head[0]) if head and head[0] else None
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    length = int(headers.get("content-length", "0") or 0)
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    while len(body) < length:  # drain the body, so the next request on this connection starts clean
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return (int(status.group(1)) if status else None), headers


def _authorization(headers: dict[str, str], user: str, password: str, target: str) -> str:
    user, password = unquote(user), unquote(password)
    challenge = headers.get("www-authenticate", "")
    if challenge.lower().startswith("digest"):
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
        ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"DESCRIBE:{target}".encode()).hexdigest()
        response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        return f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{target}", response="{response}"'
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

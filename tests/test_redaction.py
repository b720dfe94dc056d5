"""Redaction cannot miss: any password, whatever it holds, never survives ``redact_url``."""

from __future__ import annotations

import logging
import os
import string
from pathlib import Path
from unittest.mock import patch

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fer_stream.redaction import redact_url

#: Printable characters, the ones a URL parser reads as delimiters among them.
PASSWORD = st.text(alphabet=string.ascii_letters + string.digits + "/#?@%:!$&'()*+,;=~._- ", min_size=4, max_size=24)
USER = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=10)
HOST = st.sampled_from(["cam.local", "10.0.0.2", "[fd00::2]", "camera-7.site.example"])
PORT = st.sampled_from(["", ":554", ":8554"])
PATH = st.sampled_from(["", "/", "/stream1", "/Streaming/Channels/101", "/live.sdp"])


@settings(max_examples=400, deadline=None)
@given(user=USER, password=PASSWORD, host=HOST, port=PORT, path=PATH, scheme=st.sampled_from(["rtsp", "rtsps", "redis"]))
def test_a_password_in_the_userinfo_never_survives(user, password, host, port, path, scheme):
    url = f"{scheme}://{user}:{password}@{host}{port}{path}"
    redacted = redact_url(url)
    assume(password not in f"{scheme}://{user}:***@{host}{port}{path}")  # e.g. a password "stream" also in the path
    assert password not in redacted
    assert redacted.startswith(f"{scheme}://{user}:***@")


@settings(max_examples=300, deadline=None)
@given(password=PASSWORD.filter(lambda p: "&" not in p), host=HOST, path=PATH,
       name=st.sampled_from(["password", "passwd", "pwd", "token", "auth", "api_key", "X-Api-Key", "secret"]))
def test_a_credential_query_parameter_never_survives(password, host, path, name):
    url = f"rtsp://{host}{path}?channel=1&{name}={password}&subtype=0"
    redacted = redact_url(url)
    assume(password not in f"rtsp://{host}{path}?channel=1&{name}=***&subtype=0")
    assert password not in redacted
    assert f"{name}=***" in redacted and "channel=1" in redacted


def test_what_is_not_a_secret_is_left_alone():
    for url in ("rtsp://10.0.0.2/s", "/videos/a.mp4", "0", "redis://127.0.0.1:6379/0", "unix:///run/redis.sock",
                "rtsp://viewer@cam/x?channel=1"):
        assert redact_url(url) == url


def test_the_delimiter_passwords_of_the_fault_report():
    assert redact_url("rtsp://viewer:pa/ss@h/x") == "rtsp://viewer:***@h/x"
    assert redact_url("rtsp://viewer:p#w?d@h:554/x") == "rtsp://viewer:***@h:554/x"
    assert redact_url("rtsp://h/x?password=a/b#c") == "rtsp://h/x?password=***"


# --- secrets in the error text and logs of every parser of a config -------------------------------------------

#: A password's words: consonants without p, so no password spells a credential parameter name (pass, pwd, key,
#: token, ...), which would make ``host:port?key=`` and ``user:password@`` the same text; five letters or more, which
#: no message happens to contain.
WORD = st.text(alphabet="bcdfghjklmnqrstvwxzBCDFGHJKLMNQRSTVWXZ", min_size=5, max_size=10)
DELIMITERS = st.text(alphabet="#?/@:%&=+;,!$*[] ", min_size=1, max_size=3)


@st.composite
def delimited_passwords(draw) -> tuple[str, list[str]]:
    """A password of words between URL delimiters, and its words (what no output may hold)."""
    words = draw(st.lists(WORD, min_size=1, max_size=4))
    separators = draw(st.lists(DELIMITERS, min_size=len(words) + 1, max_size=len(words) + 1))
    if len(words) == 1 and not any(separators[:2]):
        separators[0] = "#"
    lead, *between = separators
    password = draw(st.sampled_from(["", lead])) + "".join(word + sep for word, sep in zip(words, between, strict=True))
    return password.rstrip() if password.rstrip() else password, words


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _outputs(config_text: str, base_dir: Path) -> list[str]:
    """What the config's parsing says (its problems or the check-config summary), and what it logged."""
    from fer_stream.camera.diagnosis import diagnose
    from fer_stream.config import ConfigError, parse_config
    from fer_stream.config import command as check_config

    records = _Records()
    logging.getLogger().addHandler(records)
    try:
        config = parse_config(config_text, name="cameras.yaml", base_dir=base_dir)
    except ConfigError as exc:
        said = [str(exc)]
    else:
        said = [check_config.summary(check_config.overview(config), "cameras.yaml"), config.redis.redacted_url()]
        said += [diagnose(camera, timeout=0.5) for camera in config.cameras] + [repr(c) for c in config.cameras]
    finally:
        logging.getLogger().removeHandler(records)
    return said + records.lines


@settings(max_examples=150, deadline=None)
@given(secret=delimited_passwords(), user=st.sampled_from(["", "viewer"]),
       where=st.sampled_from(["redis.url", "FER_STREAM_REDIS_URL", "rtsp", "rtsp, mistyped", "rtsp query"]))
def test_no_piece_of_a_delimited_password_reaches_config_errors_or_logs(secret, user, where, media_dir, tmp_path_factory):
    """Redis and RTSP URLs, well-formed or not, with a password from the environment: no word of it in any output."""
    password, words = secret
    video = media_dir / "calm_woman.mp4"
    redis_url = f"redis://{user}:{password}@127.0.0.1:6392/0"
    camera = f"  - {{name: door, source: '{video}'}}\n"
    environment = {"PW": password}
    if where == "redis.url":
        text = f"redis: {{url: 'redis://{user}:${{PW}}@127.0.0.1:6392/0'}}\ncameras:\n{camera}"
    elif where == "FER_STREAM_REDIS_URL":
        text, environment["FER_STREAM_REDIS_URL"] = f"cameras:\n{camera}", redis_url
    else:
        source = {"rtsp": "rtsp://{user}:${{PW}}@127.0.0.1:9/live", "rtsp, mistyped": "rtsp:/{user}:${{PW}}@127.0.0.1:9/live",
                  "rtsp query": "rtsp://127.0.0.1:9/live?user={user}&password=${{PW}}"}[where].format(user=user or "viewer")
        text = f"cameras:\n  - {{name: gate, source: '{source}', open_timeout_s: 0.5}}\n{camera}"
    with patch.dict(os.environ, environment):
        if where != "FER_STREAM_REDIS_URL":
            os.environ.pop("FER_STREAM_REDIS_URL", None)
        said = "\n".join(_outputs(text, tmp_path_factory.getbasetemp()))
    for word in words:
        assert word.lower() not in said.lower(), f"{word!r} of {password!r} ({where}) in:\n{said}"

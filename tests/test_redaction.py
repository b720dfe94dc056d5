"""Redaction cannot miss: any password, whatever it holds, never survives ``redact_url``."""

from __future__ import annotations

import string

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

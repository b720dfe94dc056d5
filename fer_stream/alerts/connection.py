"""Redis clients built from :class:`RedisConfig`, and errors turned into messages that say the fix.

The password is taken from the environment here and nowhere else; every URL
that reaches a message is redacted.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fer_stream.alerts.config import RedisConfig


class RedisSetupError(RuntimeError):
    """Redis settings that cannot work (credentials, TLS): retrying will not help, the config must change."""


def connect(config: RedisConfig) -> redis.Redis:
    """A client that fails fast: callers own the retry policy (the publisher backs off, the CLI reports)."""
    options: dict = {
        "socket_connect_timeout": config.connect_timeout_s,
        "socket_timeout": config.socket_timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 15,
    }
    if config.username:
        options["username"] = config.username
    password = config.password()
    if password:
        options["password"] = password
    if config.url.startswith("rediss://"):
        tls = config.tls
        options.update(
            ssl_cert_reqs="required" if tls.verify else "none",
            ssl_check_hostname=tls.verify,
            ssl_ca_certs=str(tls.ca_file) if tls.ca_file else None,
            ssl_certfile=str(tls.cert_file) if tls.cert_file else None,
            ssl_keyfile=str(tls.key_file) if tls.key_file else None,
        )
    return redis.Redis.from_url(config.url, **options)


def is_setup_error(exc: BaseException) -> bool:
    """Errors that mean the settings are wrong rather than Redis being away."""
    text = str(exc).lower()
    return isinstance(exc, redis.AuthenticationError) or "noauth" in text or "wrongpass" in text or "ssl" in text


def explain(exc: BaseException, config: RedisConfig) -> str:
    """One sentence naming what failed, the setting involved and the fix; never the password."""
    where = f"Redis at {config.redacted_url()}"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = reason.lower()
    if isinstance(exc, redis.AuthenticationError) or "noauth" in text or "wrongpass" in text:
        if config.password() is None:
            return (
                f"{where} requires a password ({reason}), but the environment variable {config.password_env} "
                f"(named by redis.password_env) is not set: export {config.password_env}=<password>"
            )
        user = f"user {config.username!r} (redis.username)" if config.username else "the default user"
        return (
            f"{where} refused the credentials of {user} ({reason}): put the right password in the environment "
            f"variable {config.password_env} (named by redis.password_env)"
            + ("" if config.username else ", or set redis.username if the server uses ACL users")
        )
    if "ssl" in text or "certificate" in text:
        return (
            f"TLS with {where} failed ({reason}): check redis.tls.ca_file (the CA that signed the server's "
            "certificate) and redis.tls.cert_file/key_file; redis.tls.verify: false only for tests"
        )
    if isinstance(exc, redis.TimeoutError):
        return f"{where} did not answer within {config.socket_timeout_s} s (redis.socket_timeout_s): is it overloaded?"
    if isinstance(exc, redis.ConnectionError):
        return f"cannot reach {where} ({reason}): is redis-server running there, and is redis.url (or FER_STREAM_REDIS_URL) right?"
    return f"{where}: {reason}"

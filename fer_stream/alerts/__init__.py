"""Alerts: sustained expressions on a tracked face become start/end events delivered to Redis.

``config`` (YAML sections), ``rules`` (per-camera episode detection, pure),
``message`` (the published message, one type), ``connection`` (building and
diagnosing Redis clients), ``publisher`` (outbox + idempotent delivery) and
``subscriber`` (the ``fer-stream alerts`` command).
"""

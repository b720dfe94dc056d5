"""Run the daemon on a camera YAML until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fer_stream.config.shard import Shard

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="camera YAML (see config/cameras.example.yaml)")
    parser.add_argument("--shard", metavar="I/N", help="run only shard I (from 0) of N of the enabled cameras; "
                        "also FER_STREAM_SHARD, or a StatefulSet pod name with FER_STREAM_SHARDS")


def run(args: argparse.Namespace) -> int:
    from fer_stream.config.shard import ShardError, parse_shard, shard_from_environment

    try:
        shard = parse_shard(args.shard) if args.shard else shard_from_environment()
    except ShardError as exc:
        print(f"fer-stream: {exc}", file=sys.stderr)
        return 2
    return serve(args.config, args.log_level.upper(), shard=shard)


def serve(
    config_path: Path,
    log_level: str,
    seconds: float | None = None,
    on_tick: Callable[[object], None] | None = None,
    shard: Shard | None = None,
) -> int:
    """Load the config, start the daemon and supervise until a signal, ``seconds`` or the end of every file camera."""
    from fer_stream.supervisor.metrics_dir import ensure_multiprocess_metrics, remove_if_owned

    # Signals first: a stop asked for while the config, the model or the first workers load is honoured too.
    # SIGHUP (a closed terminal, a reload request) stops cleanly as well: the config is not reloaded in place.
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: stop.set())
    metrics_dir = ensure_multiprocess_metrics()  # before anything below imports prometheus_client
    import setproctitle

    from fer_stream.config import ConfigError, load_config
    from fer_stream.model_card import ModelCardError

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"fer-stream: invalid config:\n{exc}", file=sys.stderr)
        remove_if_owned(metrics_dir)
        return 2
    from fer_stream.preflight import preflight, report

    problems = preflight(config, download=True, config_path=config_path)
    if problems:
        report(f"fer-stream: {config_path}: refused before any worker started:", problems)
        remove_if_owned(metrics_dir)
        return 2
    from fer_stream.supervisor.daemon import Daemon

    try:
        daemon = Daemon(config, metrics_dir, log_level, config_path=config_path, shard=shard)
    except ModelCardError as exc:
        print(f"fer-stream: model: {exc}", file=sys.stderr)
        remove_if_owned(metrics_dir)
        return 2
    setproctitle.setproctitle("fer-stream: supervisor")
    from fer_stream.alerts.connection import RedisSetupError

    try:
        daemon.start(stop)
    except (OSError, ValueError, RedisSetupError) as exc:  # OutboxError is an OSError
        print(f"fer-stream: cannot start: {exc}", file=sys.stderr)
        daemon.shutdown()
        remove_if_owned(metrics_dir)
        return 2
    if not stop.is_set():
        log.info("running %d camera(s): %s; stop with SIGTERM or Ctrl-C", len(daemon.cameras), ", ".join(daemon.cameras))
    try:
        daemon.run(stop, None if seconds is None else time.monotonic() + seconds,
                   on_tick=None if on_tick is None else lambda: on_tick(daemon))
    finally:
        log.info("shutting down")
        daemon.shutdown()
        remove_if_owned(metrics_dir)
    return 0

"""Run the daemon on the built-in demo config (the shared videos, no camera needed) and print what it sees."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fer_stream.resources import shipped

#: The demo config ships in the repository's ``config/`` beside the package.
DEMO_CONFIG = shipped("config") / "demo.yaml"
SUMMARY_EVERY_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long (default 60; Ctrl-C stops earlier)")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help=f"config to run (default {DEMO_CONFIG})")


def run(args: argparse.Namespace) -> int:
    from fer_stream.supervisor.command import serve

    printer = SummaryPrinter()
    return serve(args.config, args.log_level.upper(), seconds=args.seconds, on_tick=printer)


class SummaryPrinter:
    """Every couple of seconds: each camera's state, fps and faces, and the alerts so far."""

    def __init__(self) -> None:
        self._last = 0.0
        self._printed_url = False

    def __call__(self, daemon) -> None:
        now = time.monotonic()
        if now - self._last < SUMMARY_EVERY_S:
            return
        self._last = now
        if not self._printed_url and daemon.http is not None:
            print(f"console: {daemon.http.url}/   metrics: {daemon.http.url}/metrics", flush=True)
            self._printed_url = True
        print(format_summary(daemon.state.snapshot()), flush=True)


def format_summary(snapshot: dict) -> str:
    model = snapshot["model"]
    head = f"[{snapshot['uptime_s']:6.1f}s] model: " + (f"{model['model_id']} ({model['backend']})" if model else "loading")
    episodes, messages = snapshot["episodes_started"], snapshot["alerts_forwarded"]
    lines = [f"{head}   alerts: {episodes} episode{'s' * (episodes != 1)} ({messages} message{'s' * (messages != 1)}: "
             "starts, updates, ends)"]
    for name, cam in snapshot["cameras"].items():
        faces = ", ".join(
            f"#{t['track_id']} {t['emotion'] or '?'} {t['score']:.2f}" + (" ALERT" if t["alerting"] else "") for t in cam["tracks"]
        )
        lines.append(f"  {name:<16} {cam['state']:<10} {cam['processed_fps']:5.1f} fps  {faces or 'no faces'}")
    return "\n".join(lines)

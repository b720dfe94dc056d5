"""Validate a camera YAML without running it: a summary and exit 0, or every problem and exit 2.

With --json the summary, or the problems, are one JSON document on stdout
("ok" says which); the problems still go to stderr as well.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fer_stream.config.loader import ConfigError, load_config
from fer_stream.config.models import FerStreamConfig
from fer_stream.config.shard import ShardError, parse_shard
from fer_stream.preflight import preflight, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="FILE", help="camera YAML to check")
    parser.add_argument("--shard", metavar="I/N", help="also say which cameras shard I (from 0) of N runs")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout: the summary or the problems")


def run(args: argparse.Namespace) -> int:
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ShardError as exc:
        return _refuse(args, "unusable --shard", [str(exc)])
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _refuse(args, "invalid configuration", exc.problems)
    problems = preflight(config, download=False, config_path=Path(args.config))
    if problems:
        return _refuse(args, "the daemon would refuse this configuration", problems)
    facts = overview(config)
    if shard is not None:
        facts["shard"] = {"shard": str(shard), "cameras": shard.cameras(c.name for c in config.enabled_cameras)}
    print(json.dumps({"ok": True, "config": args.config, "problems": [], **facts}, indent=2) if args.json else summary(facts, args.config))
    return 0


def _refuse(args: argparse.Namespace, error: str, problems: list[str]) -> int:
    """Show the problems (stderr, and stdout as JSON with --json); the exit status 2."""
    report(f"{args.config}: {error} ({len(problems)} problem(s)):", problems)
    if args.json:
        print(json.dumps({"ok": False, "config": args.config, "error": error, "problems": problems}, indent=2))
    return 2


def overview(config: FerStreamConfig) -> dict[str, Any]:
    """What the daemon would run, with every source redacted: the JSON document and what :func:`summary` prints."""
    detector = config.detector
    haar = detector.backend == "haar" or (detector.backend == "auto" and not (detector.model_path or detector.model_url))
    return {
        "detector": {
            "backend": "haar" if haar else "yunet",
            "model": None if haar else str(detector.model_path or detector.model_url),
            "score_threshold": detector.score_threshold,
            "min_face_size": detector.min_face_size,
            "detect_width": detector.detect_width,
        },
        "model": {"path": str(config.model.path) if config.model.path else None, "backend": config.model.backend},
        "inference": {"max_batch_size": config.inference.max_batch_size, "max_wait_ms": config.inference.max_wait_ms},
        "http": {"host": config.http.host, "port": config.http.port},
        "redis": {"url": config.redis.redacted_url()},
        "alerts": {"enabled": config.alerts.enabled, "channel": config.alerts.channel, "stream": config.alerts.stream},
        "cameras": [
            {
                "name": camera.name,
                "source": camera.redacted_source,
                "kind": camera.kind,
                "fps": camera.fps,
                "loop": camera.kind == "file" and camera.loop,
                "enabled": camera.enabled,
                "overrides": [key for key in ("detect_width", "detector", "tracking", "alert_rules") if getattr(camera, key) is not None],
            }
            for camera in config.cameras
        ],
    }


def summary(facts: dict[str, Any], name: str) -> str:
    """:func:`overview` (and the shard, when asked) as text."""
    detector, model, inference, alerts = facts["detector"], facts["model"], facts["inference"], facts["alerts"]
    cameras = facts["cameras"]
    detector_text = "Haar cascade (OpenCV bundled)" if detector["backend"] == "haar" else f"YuNet {detector['model']}"
    lines = [
        f"{name}: OK",
        f"detector: {detector_text}, score >= {detector['score_threshold']}, min face {detector['min_face_size']}px, "
        f"detect width {detector['detect_width'] or 'full'}",
        f"model: {model['path'] or 'shipped default'} (backend {model['backend']})",
        f"inference: batch <= {inference['max_batch_size']}, wait <= {inference['max_wait_ms']} ms",
        f"http: {facts['http']['host']}:{facts['http']['port']}",
        f"redis: {facts['redis']['url']}, alerts {'on' if alerts['enabled'] else 'off'} "
        f"(channel {alerts['channel']}, stream {alerts['stream']})",
        f"cameras ({sum(c['enabled'] for c in cameras)} of {len(cameras)} enabled):",
    ]
    for camera in cameras:
        flags = [camera["kind"], f"{camera['fps']:g} fps"]
        if camera["loop"]:
            flags.append("loop")
        if not camera["enabled"]:
            flags.append("disabled")
        if camera["overrides"]:
            flags.append("overrides: " + ", ".join(camera["overrides"]))
        lines.append(f"  {camera['name']}: {camera['source']} ({', '.join(flags)})")
    if "shard" in facts:
        names = facts["shard"]["cameras"]
        lines.append(f"shard {facts['shard']['shard']} runs {len(names)} of {sum(c['enabled'] for c in cameras)} enabled camera(s): "
                     f"{', '.join(names) or 'none'}")  # fmt: skip
    return "\n".join(lines)

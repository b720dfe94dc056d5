"""Validate a camera YAML without running it: a summary and exit 0, or every problem and exit 2."""

from __future__ import annotations

import argparse
import sys

from fer_stream.config.loader import ConfigError, load_config
from fer_stream.config.models import FerStreamConfig
from fer_stream.preflight import preflight, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="FILE", help="camera YAML to check")
    parser.add_argument("--shard", metavar="I/N", help="also say which cameras shard I (from 0) of N runs")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        report(f"{args.config}: invalid configuration ({len(exc.problems)} problem(s)):", exc.problems)
        return 2
    problems = preflight(config, download=False)
    if problems:
        report(f"{args.config}: the daemon would refuse this configuration ({len(problems)} problem(s)):", problems)
        return 2
    print(summary(config, args.config))
    if args.shard:
        from fer_stream.config.shard import ShardError, parse_shard

        try:
            shard = parse_shard(args.shard)
        except ShardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        names = shard.cameras(c.name for c in config.enabled_cameras)
        print(f"shard {shard} runs {len(names)} of {len(config.enabled_cameras)} enabled camera(s): {', '.join(names) or 'none'}")
    return 0


def summary(config: FerStreamConfig, name: str) -> str:
    """What the daemon would run, with every source redacted."""
    detector = config.detector
    if detector.backend == "haar" or (detector.backend == "auto" and not (detector.model_path or detector.model_url)):
        detector_text = "Haar cascade (OpenCV bundled)"
    else:
        detector_text = f"YuNet {detector.model_path or detector.model_url}"
    lines = [
        f"{name}: OK",
        f"detector: {detector_text}, score >= {detector.score_threshold}, min face {detector.min_face_size}px, "
        f"detect width {detector.detect_width or 'full'}",
        f"model: {config.model.path or 'shipped default'} (backend {config.model.backend})",
        f"inference: batch <= {config.inference.max_batch_size}, wait <= {config.inference.max_wait_ms} ms",
        f"http: {config.http.host}:{config.http.port}",
        f"redis: {config.redis.redacted_url()}, alerts {'on' if config.alerts.enabled else 'off'} "
        f"(channel {config.alerts.channel}, stream {config.alerts.stream})",
        f"cameras ({len(config.enabled_cameras)} of {len(config.cameras)} enabled):",
    ]
    for camera in config.cameras:
        flags = [camera.kind, f"{camera.fps:g} fps"]
        if camera.kind == "file" and camera.loop:
            flags.append("loop")
        if not camera.enabled:
            flags.append("disabled")
        overrides = [key for key in ("detect_width", "detector", "tracking", "alert_rules") if getattr(camera, key) is not None]
        if overrides:
            flags.append("overrides: " + ", ".join(overrides))
        lines.append(f"  {camera.name}: {camera.redacted_source} ({', '.join(flags)})")
    return "\n".join(lines)

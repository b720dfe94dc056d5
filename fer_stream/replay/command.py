"""Replay video files through the camera pipeline with a camera's rules, and print the alerts with video times.

Frame-exact and as fast as the CPU allows: frames are sampled at the camera's
fps by the video's clock, then detected, tracked, gated, classified and run
through the alert rules exactly as the daemon does. Use it on your own
recordings before you trust a setting. Exit 0 when every video was replayed,
2 when the setup is wrong, 1 when a video could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fer_stream.replay import settings as replay_settings
from fer_stream.replay.video import Trace, VideoError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files (anything FFmpeg reads)")
    replay_settings.add_arguments(parser)
    parser.add_argument("--loops", type=int, default=1, help="play each video this many times back to back")
    parser.add_argument("--json", action="store_true", help="one JSON object per video on stdout")


def run(args: argparse.Namespace) -> int:
    from fer_stream.faces import DetectorError
    from fer_stream.inference.engine import load_classifier
    from fer_stream.model_card import ModelCardError
    from fer_stream.pipeline import build_pipeline
    from fer_stream.replay.video import replay_video

    if args.loops < 1:
        print("error: --loops must be at least 1", file=sys.stderr)
        return 2
    try:
        setup = replay_settings.resolve(args)
        classifier = load_classifier(setup.model, backend=setup.backend)
        pipelines = {
            video: build_pipeline(setup.settings, labels=classifier.labels, input_size=classifier.input_size,
                                  model_id=classifier.card.model_id, model_version=classifier.card.version, host="replay")
            for video in args.videos
        }  # fmt: skip
    except (replay_settings.SetupError, DetectorError, ModelCardError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = 0
    for video, pipeline in pipelines.items():
        try:
            trace = replay_video(video, pipeline, classifier.predict, fps=setup.fps, loops=args.loops)
        except VideoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        print(json.dumps(as_json(trace)) if args.json else format_trace(trace, setup.fps), flush=True)
    return 1 if failures else 0


def format_trace(trace: Trace, fps: float) -> str:
    starts = sum(timed.alert.event == "start" for timed in trace.alerts)
    gated = ", ".join(f"{n} {reason}" for reason, n in sorted(trace.gated.items())) or "none"
    lines = [
        f"{trace.video}: {trace.duration_s:.1f} s at {fps:g} fps, {trace.frames} frames, {trace.detections} faces detected, "
        f"{trace.classified} classified (not classified: {gated}), {starts} alert episode{'s' if starts != 1 else ''}"
    ]
    lines += [f"  {timed.line()}" for timed in trace.alerts]
    return "\n".join(lines)


def as_json(trace: Trace) -> dict:
    return {
        "video": str(trace.video),
        "duration_s": round(trace.duration_s, 3),
        "frames": trace.frames,
        "faces_detected": trace.detections,
        "faces_classified": trace.classified,
        "faces_gated": dict(trace.gated),
        "alerts": [timed.as_json() for timed in trace.alerts],
    }

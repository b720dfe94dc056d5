"""The settings an offline tool replays with: a camera of a YAML file, or the defaults, and the model."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from fer_stream.alerts.config import AlertRules
from fer_stream.config.loader import ConfigError, load_config
from fer_stream.config.models import CameraConfig, CameraSettings, DetectorSettings, FaceQualitySettings, TrackingSettings
from fer_stream.inference.engine import Backend


class SetupError(ValueError):
    """The replay cannot start; the message names the file or option and the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySetup:
    settings: CameraSettings
    fps: float
    model: Path | None
    backend: Backend


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="YAML",
                        help="camera YAML whose detector, tracking, face_quality and alert rules are used")
    parser.add_argument("--camera", metavar="NAME", help="which camera of --config (default: the first)")
    parser.add_argument("--detector-model", type=Path, metavar="ONNX",
                        help="YuNet ONNX file when no --config is given; without either, the Haar cascade")
    parser.add_argument("--fps", type=float, help="frames per second to process (default: the camera's fps, else 10)")
    parser.add_argument("--model", type=Path, help="exported model with its card (default: --config's, else the shipped one)")
    parser.add_argument("--backend", choices=("auto", "litert", "tensorflow"), default="litert")


def resolve(args: argparse.Namespace) -> ReplaySetup:
    """The camera settings, fps and model these arguments name."""
    if args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            raise SetupError(f"{args.config}: invalid configuration: " + "; ".join(exc.problems)) from None
        name = args.camera or config.cameras[0].name
        try:
            settings = config.camera_settings(name)
        except KeyError as exc:
            raise SetupError(f"--camera: {exc.args[0]}") from None
        fps = args.fps or settings.camera.fps
        return ReplaySetup(settings=settings, fps=fps, model=args.model or config.model.path, backend=args.backend)
    if args.camera:
        raise SetupError("--camera needs --config (the YAML file the camera is in)")
    detector = DetectorSettings(
        backend="yunet" if args.detector_model else "haar",
        model_path=args.detector_model.resolve() if args.detector_model else None,
    )
    settings = CameraSettings(
        camera=CameraConfig(name="replay", source=0),
        detector=detector,
        tracking=TrackingSettings(),
        face_quality=FaceQualitySettings(),
        alert_rules=AlertRules(),
    )
    return ReplaySetup(settings=settings, fps=args.fps or 10.0, model=args.model, backend=args.backend)

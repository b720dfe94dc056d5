"""The camera YAML: models mirroring it, and the loader that turns a file into them."""

from fer_stream.config.loader import ConfigError, load_config, parse_config
from fer_stream.config.models import (
    CameraConfig,
    CameraSettings,
    DetectorSettings,
    FerStreamConfig,
    HttpSettings,
    InferenceSettings,
    ModelSettings,
    TrackingSettings,
)

__all__ = [
    "CameraConfig",
    "CameraSettings",
    "ConfigError",
    "DetectorSettings",
    "FerStreamConfig",
    "HttpSettings",
    "InferenceSettings",
    "ModelSettings",
    "TrackingSettings",
    "load_config",
    "parse_config",
]

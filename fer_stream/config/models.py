"""The camera YAML as pydantic models, one class per section, unknown keys refused.

Relative paths (file cameras, model files, caches) are resolved against the
directory of the YAML file, passed as validation context ``{"base_dir": Path}``
by the loader, so a config works from any working directory.

A camera's effective settings are the global sections with the camera's own
overrides applied, validated again as a whole: :meth:`FerStreamConfig.camera_settings`.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Self, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator, model_validator

from fer_stream.alerts.config import AlertRules, AlertsConfig, RedisConfig
from fer_stream.redaction import redact_url

CAMERA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SOURCE_FORMS = "an rtsp:// or rtsps:// URL, a USB device index (0, 1, ...), /dev/videoN, or a video file path"
#: ``rtsp:/host``, ``rtsp:user:password@host``: a URL with a mistyped ``://``, which would otherwise be read as a file name.
MISTYPED_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:(/(?!/)|.*@)")
DEFAULT_CACHE_DIR = Path("~/.cache/fer-stream").expanduser()
SectionT = TypeVar("SectionT", bound=BaseModel)


def _resolve(path: Path, info: ValidationInfo) -> Path:
    """Expand ``~`` and anchor a relative path at the YAML file's directory (or leave it as given)."""
    path = path.expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(os.path.normpath(Path(base) / path))
    return path


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectorSettings(_Section):
    """Face detection: YuNet (ONNX via cv2.FaceDetectorYN) or OpenCV's bundled Haar cascade."""

    backend: Literal["auto", "yunet", "haar"] = Field(
        "auto", description="auto = YuNet when model_path or model_url is set, the Haar cascade otherwise"
    )
    model_path: Path | None = Field(None, description="YuNet ONNX file")
    model_url: str | None = Field(None, description="where to download the YuNet ONNX once (needs model_sha256)")
    model_sha256: str | None = Field(None, description="expected sha256 of the ONNX file (checked for a path too)")
    cache_dir: Path = Field(DEFAULT_CACHE_DIR, description="where a downloaded model is kept")
    score_threshold: float = Field(0.7, gt=0, le=1, description="YuNet confidence below which a face is dropped")
    nms_threshold: float = Field(0.3, gt=0, le=1, description="YuNet non-maximum suppression IoU")
    min_face_size: int = Field(24, ge=1, description="faces smaller than this many pixels (full frame) are ignored")
    detect_width: int | None = Field(
        640, ge=32, description="frames wider than this are downscaled for detection; null = full resolution"
    )
    detect_every: int = Field(
        2, ge=1, le=30, description="run detection on every k-th sampled frame; tracks move on by their motion in between "
        "(and detection runs at least every tracking.max_missed_s / 2); 1 = every frame",
    )
    track_guided: bool = Field(
        False, description="between full-frame scans, detect each live face only in a window around where it should be "
        "(a fraction of the detection cost; its boxes differ from a full scan's by a few pixels)",
    )
    scan_every_s: float = Field(
        1.0, gt=0, le=60, description="with track_guided: a full-frame scan at least this often (seconds of frame time), "
        "besides one whenever motion appears away from every tracked face; bounds how long a new face can go unseen",
    )

    @field_validator("model_path", "cache_dir")
    @classmethod
    def _anchor(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return None if path is None else _resolve(path, info)

    @field_validator("model_sha256", mode="before")
    @classmethod
    def _digits_digest(cls, digest: Any) -> Any:
        # YAML reads a digest of digits alone as a number (and one with a leading 0 as octal).
        if isinstance(digest, int) and not isinstance(digest, bool):
            if len(str(digest)) == 64:
                return str(digest)
            raise ValueError("read as a number, not 64 hex digits: quote it (model_sha256: '0123...')")
        return digest

    @field_validator("model_sha256")
    @classmethod
    def _hex_digest(cls, digest: str | None) -> str | None:
        if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise ValueError("expected 64 hex digits (the output of `sha256sum FILE`)")
        return None if digest is None else digest.lower()

    @model_validator(mode="after")
    def _yunet_needs_a_model(self) -> Self:
        if self.model_url and not self.model_sha256:
            raise ValueError("model_url needs model_sha256, so a download is verified before it is used")
        if self.backend == "yunet" and not (self.model_path or self.model_url):
            raise ValueError("backend yunet needs model_path or model_url (or use backend: haar / auto)")
        return self


class ModelSettings(_Section):
    """The expression classifier."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    path: Path | None = Field(None, description="exported .tflite or .keras with its .card.json; null = shipped model")
    backend: Literal["auto", "litert", "tensorflow"] = Field(
        "auto", description="auto = TensorFlow when a GPU is visible, LiteRT otherwise"
    )

    @field_validator("path")
    @classmethod
    def _anchor(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return None if path is None else _resolve(path, info)


class InferenceSettings(_Section):
    """The shared inference worker's dynamic batching and queues."""

    max_batch_size: int = Field(32, ge=1, le=1024, description="a batch is run as soon as it has this many faces")
    max_wait_ms: float = Field(10.0, ge=0, description="... or when its oldest face has waited this long")
    request_queue_size: int = Field(
        256, ge=1, le=65_536, description="faces waiting for the inference worker (oldest dropped)"
    )
    result_queue_size: int = Field(256, ge=1, le=65_536, description="results waiting per camera (oldest dropped)")
    num_threads: int | None = Field(None, ge=1, description="LiteRT CPU threads; null = library default")


class TrackingSettings(_Section):
    """IoU face tracking."""

    iou_threshold: float = Field(0.3, gt=0, le=1, description="a detection continues a track when IoU >= this")
    max_missed_s: float = Field(1.0, gt=0, description="a track not seen for this long ends")
    min_hits: int = Field(2, ge=1, description="detections before a track is reported (filters one-frame false faces)")


#: A region of the frame, x, y, width, height as shares of the frame's width and height (0-1).
MaskRect: TypeAlias = tuple[float, float, float, float]


class MotionSettings(_Section):
    """The ``motion:`` gate (fer_stream/faces/motion.py): a camera whose scene is still and holds no face detects nothing."""

    enabled: bool = True
    width: int = Field(160, ge=32, le=1920, description="motion is looked for on a grey copy of the frame this wide")
    threshold: int = Field(
        20, ge=1, le=255, description="grey-level change (0-255) against the scene's running average that counts as motion"
    )
    min_area: float = Field(
        0.0005, ge=0, le=1, description="a changed region smaller than this share of the frame is noise, not motion"
    )
    masks: list[MaskRect] = Field(
        default_factory=list,
        description="regions where change is ignored (a clock, a screen): [x, y, width, height] as shares of the frame",
    )

    @field_validator("masks")
    @classmethod
    def _inside_the_frame(cls, masks: list[MaskRect]) -> list[MaskRect]:
        for x, y, w, h in masks:
            if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x + 1e-9 and 0 < h <= 1 - y + 1e-9):
                raise ValueError(
                    f"mask {[x, y, w, h]}: expected [x, y, width, height] as shares of the frame, inside it (0-1)"
                )
        return masks


class ClassificationSettings(_Section):
    """How often each tracked face is classified: every processed frame near an alert threshold, less often far from all.

    Without alert rules (alerts disabled) no threshold applies, and every face is classified on every processed frame.
    """

    adaptive: bool = Field(
        False, description="classify faces far from every threshold less often (false: every tracked face on every "
        "processed frame); fewer results make the smoothed scores noisier, which moves alerts that sit on a threshold",
    )
    far_below: float = Field(
        0.5, gt=0, lt=1, description="a face whose smoothed score of every watched emotion is below this share of that "
        "emotion's enter threshold (and that is in no episode) is far, and classified once every far_every_s",
    )
    far_every_s: float = Field(
        0.3, gt=0, le=5, description="a face far from every threshold is classified once in this many seconds of frame time"
    )


class FaceQualitySettings(_Section):
    """The ``face_quality:`` section: faces that fail are tracked but not classified (fer_stream/faces/quality.py)."""

    enabled: bool = True
    min_face_px: int = Field(32, ge=1, description="shorter side of the face box, full-frame pixels")
    min_sharpness: float = Field(
        15.0, ge=0, description="variance of the Laplacian of the model-sized grey face; lower = blurred"
    )
    max_yaw: float = Field(
        0.6, gt=0, description="nose-tip offset from the eye midpoint / eye distance (YuNet landmarks only)"
    )


class OverloadSettings(_Section):
    """Past capacity, cameras sample fewer frames instead of dropping detected faces (fer_stream/camera/overload.py)."""

    enabled: bool = True
    min_fps: float = Field(1.0, gt=0, description="a camera never samples fewer frames a second than this")
    max_latency_s: float = Field(
        0.5, gt=0, description="capture-to-result latency above which cameras sample fewer frames"
    )
    cpu_slots: int | None = Field(
        None, ge=1, le=1024, description="at most this many cameras work on a frame at once; null = the CPUs the daemon may use"
    )


class WatchdogSettings(_Section):
    """How long a worker may stop making progress before it is reported and restarted."""

    stall_s: float = Field(
        10.0, ge=1, le=3600, description="a worker whose loop has not advanced for this long is reported and restarted"
    )
    model_load_s: float = Field(
        120.0, ge=1, le=3600, description="how long the inference worker may take to load and warm its model"
    )


#: The smallest console token accepted: a shorter one can be guessed through the login form.
MIN_TOKEN_LENGTH = 16


class HttpSettings(_Section):
    """The daemon's HTTP server: the console, /metrics, /healthz, /readyz, and who may use them."""

    host: str = Field("127.0.0.1", description="bind address; anything but loopback needs the access token")
    port: int = Field(9101, ge=0, le=65535, description="0 = pick a free port")
    token_env: str = Field(
        "FER_STREAM_CONSOLE_TOKEN",
        description=f"environment variable holding the console's access token (at least {MIN_TOKEN_LENGTH} characters); "
        "required when host is not loopback, and enforced whenever it is set",
    )
    reviewer_token_env: str = Field(
        "FER_STREAM_REVIEWER_TOKEN",
        description="environment variable holding a reviewer's token: watch, read, review episodes and snooze cameras",
    )
    viewer_token_env: str = Field(
        "FER_STREAM_VIEWER_TOKEN", description="environment variable holding a viewer's token: watch and read only"
    )
    protect_probes: bool = Field(
        False, description="also require the token for /healthz, /readyz and /metrics (probes and scrapes then need it)"
    )

    @field_validator("token_env", "reviewer_token_env", "viewer_token_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not an environment variable name (e.g. FER_STREAM_CONSOLE_TOKEN)")
        return name

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def token(self) -> str | None:
        """The access token from the environment (read at start; never logged or shown)."""
        return os.environ.get(self.token_env) or None

    def reviewer_token(self) -> str | None:
        return os.environ.get(self.reviewer_token_env) or None

    def viewer_token(self) -> str | None:
        return os.environ.get(self.viewer_token_env) or None


class ConsoleSettings(_Section):
    """What the console shows (served by the daemon's HTTP server, see ``http:``)."""

    blur_faces: bool = Field(
        False, description="pixelate faces in the live view and in alert pictures, and keep no face pictures"
    )
    live_fps: float = Field(2.0, gt=0, le=15, description="live-view frames a second per watched camera")
    live_width: int = Field(640, ge=160, le=1920, description="live-view frames are downscaled to this width")


def _overrides_of(section: type[SectionT]) -> type[BaseModel]:
    """A camera's override of a global section: the same keys, types, limits and field validators, all optional.

    Generated from the section itself, so the two cannot drift apart; a key given as null is refused (leave
    it out to keep the global value), and :func:`_merged` is the one rule that applies an override.
    """
    fields: dict[str, Any] = {}
    for name, info in section.model_fields.items():
        optional = copy.copy(info)
        optional.default, optional.default_factory = None, None
        fields[name] = (Optional[info.annotation], optional)  # noqa: UP045 (the annotation is a runtime value)
    validators = {
        name: field_validator(*decorator.info.fields, mode=decorator.info.mode)(getattr(decorator.func, "__func__", decorator.func))
        for name, decorator in section.__pydantic_decorators__.field_validators.items()
    }
    validators["_no_nulls"] = model_validator(mode="before")(_refuse_nulls)
    return create_model(
        f"{section.__name__}Override", __config__=section.model_config, __validators__=validators,
        __doc__=f"A camera's override of {section.__name__}: any subset of its keys.", **fields,
    )


def _refuse_nulls(cls: type, data: Any) -> Any:
    if isinstance(data, dict):
        nulls = sorted(key for key, value in data.items() if value is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: give a value or leave the key out to use the global setting")
    return data


if TYPE_CHECKING:  # generated at run time; to a type checker they are models of some keys
    DetectorOverride: TypeAlias = BaseModel
    TrackingOverride: TypeAlias = BaseModel
    MotionOverride: TypeAlias = BaseModel
    AlertRulesOverride: TypeAlias = BaseModel
else:
    DetectorOverride = _overrides_of(DetectorSettings)
    TrackingOverride = _overrides_of(TrackingSettings)
    MotionOverride = _overrides_of(MotionSettings)
    AlertRulesOverride = _overrides_of(AlertRules)


class CameraConfig(_Section):
    """One camera. Its ``source`` may carry credentials, so repr/str show it redacted."""

    name: str = Field(description="unique; used in metric labels and process names ([A-Za-z0-9_-], max 64)")
    source: int | str = Field(description=SOURCE_FORMS)
    enabled: bool = True
    fps: float = Field(10.0, gt=0, le=240, description="frames per second run through detection")
    loop: bool = Field(False, description="file sources: start again at the end instead of finishing")
    realtime: bool = Field(
        True,
        description="file sources: pace reading to the file's own fps, like a live camera "
        "(false: hand over every frame, as fast as they are taken)",
    )
    detect_width: int | None = Field(None, ge=32, description="overrides detector.detect_width for this camera")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = Field(10.0, gt=0, description="give up opening the stream after this long")
    stall_timeout_s: float = Field(5.0, gt=0, description="no frame for this long = stream stalled, reconnect")
    reconnect_initial_s: float = Field(0.5, gt=0, description="first reconnect delay; doubles on each failure")
    reconnect_max_s: float = Field(30.0, gt=0, description="reconnect delay cap (jitter is applied below it)")
    detector: DetectorOverride | None = Field(None, description="any detector key, for this camera only")
    tracking: TrackingOverride | None = Field(None, description="any tracking key, for this camera only")
    motion: MotionOverride | None = Field(None, description="any motion key (its masks above all), for this camera only")
    alert_rules: AlertRulesOverride | None = Field(None, description="any alerts.rules key, for this camera only")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not CAMERA_NAME.match(name):
            raise ValueError("expected 1-64 characters from A-Z a-z 0-9 _ - (it becomes a metric label)")
        return name

    @field_validator("source", mode="before")
    @classmethod
    def _source_form(cls, source: Any, info: ValidationInfo) -> Any:
        if isinstance(source, bool) or not isinstance(source, (int, str)):
            raise ValueError(f"expected {SOURCE_FORMS}")
        if isinstance(source, int):
            if source < 0:
                raise ValueError("a USB device index is 0 or more")
            return source
        source = source.strip()
        if not source:
            raise ValueError(f"empty; expected {SOURCE_FORMS}")
        if source.isdigit():
            return int(source)
        scheme = source.split("://", 1)[0].lower() if "://" in source else ""
        if scheme in ("rtsp", "rtsps"):
            return source
        if scheme:
            raise ValueError(f"scheme {scheme}:// is not supported; expected {SOURCE_FORMS}")
        if source.startswith("/dev/"):
            return source
        if MISTYPED_URL.match(source):  # not echoed: what follows the scheme may be user:password@
            raise ValueError(f"looks like a URL whose scheme is not followed by ://; expected {SOURCE_FORMS}")
        path = _resolve(Path(source), info)
        if not path.is_file():
            raise ValueError(f"no such video file: {path}")
        return str(path)

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

    @property
    def kind(self) -> Literal["rtsp", "usb", "file"]:
        if isinstance(self.source, int) or self.source.startswith("/dev/"):
            return "usb"
        return "rtsp" if "://" in self.source else "file"

    @property
    def redacted_source(self) -> str:
        return redact_url(self.source) if isinstance(self.source, str) else str(self.source)

    def __repr_args__(self):
        for key, value in super().__repr_args__():
            yield key, (self.redacted_source if key == "source" else value)


class CameraSettings(BaseModel):
    """Everything one camera worker needs: its camera and the global sections with its overrides applied."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    camera: CameraConfig
    detector: DetectorSettings
    tracking: TrackingSettings
    face_quality: FaceQualitySettings = Field(default_factory=FaceQualitySettings)
    overload: OverloadSettings = Field(default_factory=OverloadSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    classification: ClassificationSettings = Field(default_factory=ClassificationSettings)
    alert_rules: AlertRules


class FerStreamConfig(_Section):
    """The whole camera YAML."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    classification: ClassificationSettings = Field(default_factory=ClassificationSettings)
    face_quality: FaceQualitySettings = Field(default_factory=FaceQualitySettings)
    overload: OverloadSettings = Field(default_factory=OverloadSettings)
    watchdog: WatchdogSettings = Field(default_factory=WatchdogSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    cameras: list[CameraConfig] = Field(min_length=1)

    @field_validator("cameras")
    @classmethod
    def _unique_names(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        first: dict[str, int] = {}
        for index, camera in enumerate(cameras):
            if camera.name in first:
                raise ValueError(
                    f"camera names must be unique: {camera.name!r} is used by cameras[{first[camera.name]}] and cameras[{index}]"
                )
            first[camera.name] = index
        return cameras

    @model_validator(mode="after")
    def _overrides_are_valid(self) -> Self:
        """Merge every camera's overrides now, so a bad combination fails at load, not in a worker."""
        for camera in self.cameras:
            try:
                self.camera_settings(camera.name)
            except ValueError as exc:
                raise ValueError(f"camera {camera.name!r}: its overrides do not combine with the global settings: {exc}") from None
        return self

    @property
    def enabled_cameras(self) -> list[CameraConfig]:
        return [camera for camera in self.cameras if camera.enabled]

    def camera(self, name: str) -> CameraConfig:
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(f"no camera named {name!r}; configured: {', '.join(c.name for c in self.cameras)}")

    def camera_settings(self, name: str) -> CameraSettings:
        """The effective settings of one camera: global sections, then the camera's overrides."""
        camera = self.camera(name)
        detector = _merged(self.detector, camera.detector)
        if camera.detect_width is not None:
            detector = detector.model_copy(update={"detect_width": camera.detect_width})
        return CameraSettings(
            camera=camera,
            detector=detector,
            tracking=_merged(self.tracking, camera.tracking),
            face_quality=self.face_quality,
            overload=self.overload,
            motion=_merged(self.motion, camera.motion),
            classification=self.classification,
            alert_rules=_merged(self.alerts.rules, camera.alert_rules),
        )


def _merged(base: SectionT, override: BaseModel | None) -> SectionT:
    """The one merge rule: the keys the camera gave replace the global ones, and the result is validated whole."""
    if override is None:
        return base
    values = {**base.model_dump(), **override.model_dump(exclude_unset=True)}
    # Paths in both were already anchored at the YAML's directory; no context needed.
    return type(base).model_validate(values)

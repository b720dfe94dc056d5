"""Everything a worker would refuse, checked once before any worker starts.

A camera or inference worker that cannot start is restarted with backoff by the
supervisor, so a setting it refuses would become a crash loop that looks like a
running service. ``check-config`` and ``run`` call :func:`preflight` instead and
exit 2 with the key and the fix: the model file against its card (and, for a
``.tflite``, that LiteRT can load it), the alert rules' emotions against the
model's labels, the detector's file and digest (``run`` also downloads a
``model_url`` here, once, instead of in every camera), that some camera is
enabled, that every file camera's file is a video FFmpeg decodes (opened once
each), and that a console reachable from other machines has an access token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fer_stream.config.models import MIN_TOKEN_LENGTH, CameraConfig, DetectorSettings, FerStreamConfig, HttpSettings


def preflight(config: FerStreamConfig, *, download: bool, config_path: Path | None = None) -> list[str]:
    """Problems that would stop a worker, one ``key: what is wrong; the fix`` line each (empty when none)."""
    problems: list[str] = []
    if not config.enabled_cameras:
        problems.append("cameras: every camera has enabled: false, so the daemon would have nothing to do; enable one")
    problems += _access_problems(config.http)
    problems += _snapshot_problems(config, config_path)
    labels, model_problem = _model_labels(config)
    if model_problem:
        problems.append(model_problem)
    checked: set[str] = set()
    videos: set[str] = set()
    for index, camera in enumerate(config.cameras):
        if not camera.enabled:
            continue
        if camera.kind == "file" and str(camera.source) not in videos:
            videos.add(str(camera.source))
            problems += _video_problems(index, camera)
        settings = config.camera_settings(camera.name)
        if labels is not None:
            problems += _rule_problems(config, index, settings.alert_rules, labels)
        detector_key = settings.detector.model_dump_json()
        if detector_key not in checked:
            checked.add(detector_key)
            where = f"cameras[{index}].detector" if camera.detector is not None else "detector"
            problems += _detector_problems(settings.detector, where, download)
    return problems


def report(header: str, problems: list[str]) -> None:
    """The one way problems are shown: a header naming the file, then one indented line each, on stderr."""
    print(header, file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _access_problems(http: HttpSettings) -> list[str]:
    """The console shows everyone's face: beyond loopback it must not be open to whoever reaches the port."""
    tokens = {http.token_env: http.token(), http.reviewer_token_env: http.reviewer_token(), http.viewer_token_env: http.viewer_token()}
    given = {name: token for name, token in tokens.items() if token is not None}
    if not given and not http.loopback:
        return [
            f"http.host: {http.host} lets other machines reach the console, which shows the faces of everyone on camera, "
            f"and no access token is set; set the environment variable {http.token_env} to a secret of at least "
            f"{MIN_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 24`), or bind http.host: 127.0.0.1"
        ]
    key = {http.token_env: "http.token_env", http.reviewer_token_env: "http.reviewer_token_env",
           http.viewer_token_env: "http.viewer_token_env"}  # fmt: skip
    problems = [f"{key[name]}: the token in {name} has {len(token)} characters; use at least {MIN_TOKEN_LENGTH} "
                "(e.g. `openssl rand -hex 24`)" for name, token in given.items() if len(token) < MIN_TOKEN_LENGTH]  # fmt: skip
    if len(set(given.values())) < len(given):
        problems.append(f"http: {', '.join(given)} hold the same token; each role needs its own, or a viewer could review")
    return problems


def _snapshot_problems(config: FerStreamConfig, config_path: Path | None) -> list[str]:
    """The supervisor writes alert pictures; a directory it cannot write would lose each one with an error."""
    snapshots = config.alerts.snapshots
    if not (config.alerts.enabled and snapshots.enabled):
        return []
    directory = snapshots.path()
    existing = next(p for p in (directory, *directory.parents) if p.exists())  # the daemon creates the rest
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return []
    return [f"alerts.snapshots.directory: cannot write alert pictures to {directory} ({existing} is not a writable "
            "directory); give a writable directory, or set alerts.snapshots.enabled: false to keep none"]


def _model_labels(config: FerStreamConfig) -> tuple[list[str] | None, str | None]:
    from fer_stream.inference.engine import load_classifier
    from fer_stream.model_card import ModelCardError, load_card

    key = "model.path" if config.model.path else "the shipped model (model.path unset)"
    try:
        card, path = load_card(config.model.path) if config.model.path else load_card(_default_model())
        if card.format == "tflite" and config.model.backend != "tensorflow":
            load_classifier(path, backend="litert")  # a corrupt file or a card of another shape fails here
    except (ModelCardError, ValueError, OSError, RuntimeError) as exc:
        return None, f"{key}: {exc}"
    return list(card.labels), None


def _default_model() -> Path:
    from fer_stream.inference.engine import default_model_path

    return default_model_path()


def _rule_problems(config: FerStreamConfig, index: int, rules, labels: list[str]) -> list[str]:
    named = [*rules.watched]
    for threshold in (rules.enter_threshold, rules.release_threshold):
        if isinstance(threshold, dict):
            named += threshold
    unknown = sorted({name for name in named if name not in labels})
    if not unknown:
        return []
    key = f"cameras[{index}].alert_rules" if config.cameras[index].alert_rules is not None else "alerts.rules"
    return [f"{key}: names {', '.join(unknown)}, which the model does not have; its labels are {', '.join(labels)}"]


def _video_problems(index: int, camera: CameraConfig) -> list[str]:
    """A file FFmpeg cannot decode would leave the camera down, retrying for ever; one look at it tells."""
    from fer_stream.camera.diagnosis import undecodable

    why = undecodable(str(camera.source))
    if why is None:
        return []
    return [f"cameras[{index}].source: camera {camera.name}: {camera.source} is not a video FFmpeg can decode ({why}); "
            "point source at a video file (MP4, MKV, AVI, ...), re-encode it (ffmpeg -i FILE -c:v libx264 out.mp4), "
            "or set enabled: false"]


def _detector_problems(settings: DetectorSettings, where: str, download: bool) -> list[str]:
    from fer_stream.faces.detector import DetectorError, create_detector, yunet_model_file

    wants_yunet = settings.backend == "yunet" or (settings.backend == "auto" and (settings.model_path or settings.model_url))
    if not wants_yunet:
        return []
    if settings.model_path is None and not download:
        return []  # check-config does not download; run does, once, here
    try:
        yunet_model_file(settings)
        create_detector(settings)  # OpenCV must accept the file as a YuNet network
    except DetectorError as exc:
        return [f"{where}: {exc}"]
    return []

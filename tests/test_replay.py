"""``fer-stream replay`` and ``fer-stream calibrate`` on the shared videos, and the manifest they read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fer_stream.alerts.config import AlertRules
from fer_stream.cli import main
from fer_stream.config.models import CameraConfig, CameraSettings, DetectorSettings, FaceQualitySettings, TrackingSettings
from fer_stream.inference.engine import load_classifier
from fer_stream.pipeline import build_pipeline
from fer_stream.replay.manifest import ManifestError, load_manifest
from fer_stream.replay.video import replay_video, rerun_rules

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
ALERT_LINE = re.compile(r"^\s+(\d+\.\d\d) s  (start|end)\s+(\w+)\s+track (\d+)", re.MULTILINE)


def test_replay_prints_one_angry_start_with_its_video_time(media_dir, yunet_model, capsys):
    code = main(["replay", str(media_dir / "angry_man.mp4"), "--detector-model", str(yunet_model)])
    out = capsys.readouterr().out
    assert code == 0
    events = ALERT_LINE.findall(out)
    starts = [e for e in events if e[1] == "start"]
    assert len(starts) == 1 and starts[0][2] == "angry"
    assert 1.0 <= float(starts[0][0]) <= 10.0, "the angry clip alerts within 10 s of video"
    assert [e[1] for e in events] == ["start", "end"]


def test_replay_json_and_calm_clips_raise_nothing(media_dir, yunet_model, capsys):
    videos = [media_dir / "calm_woman.mp4", media_dir / "smiling_woman_phone.mp4"]
    code = main(["replay", *map(str, videos), "--detector-model", str(yunet_model), "--json"])
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [r["video"] for r in results] == list(map(str, videos))
    assert all(r["alerts"] == [] and r["faces_classified"] > 40 for r in results)


def test_replay_reports_an_unreadable_video_and_a_bad_setup(media_dir, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["replay", str(broken)]) == 1
    assert f"{broken}: cannot open this video" in capsys.readouterr().err
    assert main(["replay", str(media_dir / "angry_man.mp4"), "--camera", "door"]) == 2
    assert "--camera needs --config" in capsys.readouterr().err


def test_rerunning_the_rules_on_a_trace_gives_the_alerts_of_the_live_run(media_dir, yunet_model):
    classifier = load_classifier(None, backend="litert")
    settings = CameraSettings(
        camera=CameraConfig(name="replay", source=0),
        detector=DetectorSettings(backend="yunet", model_path=yunet_model),
        tracking=TrackingSettings(),
        face_quality=FaceQualitySettings(),
        alert_rules=AlertRules(),
    )
    pipeline = build_pipeline(settings, labels=classifier.labels, input_size=classifier.input_size, model_id="m",
                              model_version="1", host="replay")  # fmt: skip
    trace = replay_video(media_dir / "angry_man.mp4", pipeline, classifier.predict, fps=10)
    live = [(t.t, t.alert.event, t.alert.emotion, t.alert.track_id, t.alert.peak_score) for t in trace.alerts]
    again = [(t.t, t.alert.event, t.alert.emotion, t.alert.track_id, t.alert.peak_score)
             for t in rerun_rules(trace, AlertRules(), classifier.labels)]  # fmt: skip
    assert live and again == live


def write_manifest(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "clips.csv"
    path.write_text("file,label,start_s,end_s,person\n" + rows)
    return path


def test_calibrate_writes_a_rules_block_and_the_tradeoff_plot(media_dir, yunet_model, tmp_path, capsys):
    manifest = write_manifest(tmp_path, f"{media_dir / 'angry_man.mp4'},angry,,,m\n"
                                        f"{media_dir / 'calm_woman.mp4'},neutral,0,12.5,w\n")  # fmt: skip
    out = tmp_path / "out"
    code = main(["calibrate", "--clips", str(manifest), "--detector-model", str(yunet_model), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    block = yaml.safe_load((out / "rules.yaml").read_text())
    rules = AlertRules.model_validate(block["alerts"]["rules"])
    assert rules.watched == ["angry", "fear"] and 0 < rules.enter_for("angry") <= 1
    assert (out / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "calibration.json").read_text())
    [angry] = [o for o in report["recommended"] if o["emotion"] == "angry"]
    assert angry["target_clips"] == 1 and angry["target_clips_alerted"] == 1 and angry["false_alerts"] == 0
    assert "| angry_man.mp4 | angry | angry at" in printed and "| calm_woman.mp4 | neutral | - |" in printed


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("missing.mp4,angry,,,x", "row 2: no such video file"),
        ("{video},contempt,,,x", "row 2: label 'contempt' is not one of the model's labels"),
        ("{video},angry,5,2,x", "row 2: bad time range: end_s 2 is not after start_s 5"),
        ("{video},angry,-1,,x", "row 2: start_s '-1' must be a finite number of seconds"),
        ("{video},angry,soon,,x", "row 2: start_s 'soon' is not a number of seconds"),
        ("{video},angry,0,5,x\n{video},neutral,4,8,x", "row 3: its time range overlaps row 2"),
    ],
)
def test_a_bad_manifest_row_is_named(media_dir, tmp_path, row, message):
    manifest = write_manifest(tmp_path, row.format(video=media_dir / "angry_man.mp4") + "\n")
    with pytest.raises(ManifestError, match=re.escape(message)):
        load_manifest(manifest, LABELS)


def test_calibrate_exits_2_on_a_bad_manifest(media_dir, tmp_path, capsys):
    manifest = write_manifest(tmp_path, f"{media_dir / 'angry_man.mp4'},furious,,,x\n")
    assert main(["calibrate", "--clips", str(manifest), "--out", str(tmp_path / "out")]) == 2
    assert "row 2: label 'furious'" in capsys.readouterr().err
    headless = tmp_path / "headless.csv"
    headless.write_text("angry_man.mp4,angry\n")
    with pytest.raises(ManifestError, match="header row lacks file, label"):
        load_manifest(headless, LABELS)


def test_the_shared_manifest_is_valid(shared_dir):
    segments = load_manifest(shared_dir / "data" / "realworld" / "clips" / "clips.csv", LABELS)
    assert len(segments) == 25 and {s.label for s in segments} >= {"angry", "fear", "neutral"}

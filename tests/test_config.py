"""The camera YAML: validation errors with file, line and key path; ${VAR}; redaction; overrides; check-config."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from fer_stream.alerts.config import AlertRules
from fer_stream.cli import main
from fer_stream.config import ConfigError, FerStreamConfig, load_config, parse_config
from fer_stream.config import command as check_config
from fer_stream.redaction import redact_url

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "cameras.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


@pytest.fixture
def video(media_dir: Path) -> str:
    return str(media_dir / "calm_woman.mp4")


def test_unknown_key_is_reported_with_file_line_path_and_the_accepted_keys(tmp_path, video):
    path = write(tmp_path, f"""\
        detector:
          min_face_size: 30
        cameras:
          - name: door
            source: {video}
            frames_per_second: 5
        """)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6: cameras[0].frames_per_second: unknown key; expected one of: name, source,")
    assert "fps" in problem


def test_unknown_top_level_and_nested_keys(tmp_path, video):
    path = write(tmp_path, f"""\
        detectr: {{}}
        cameras:
          - name: door
            source: {video}
            detector:
              min_size: 3
        """)
    problems = problems_of(path)
    assert f"{path}:1: detectr: unknown key; expected one of: detector, model," in problems[0]
    assert problems[1].startswith(f"{path}:6: cameras[0].detector.min_size: unknown key; expected one of: backend,")


def test_wrong_type_and_out_of_range_values_name_the_key_and_line(tmp_path, video):
    path = write(tmp_path, f"""\
        inference:
          max_batch_size: 0
        cameras:
          - name: door
            source: {video}
          - name: yard
            source: {video}
            fps: fast
        """)
    problems = problems_of(path)
    assert any(p.startswith(f"{path}:2: inference.max_batch_size: input should be greater than or equal to 1") for p in problems)
    assert any(p.startswith(f"{path}:8: cameras[1].fps: input should be a valid number") for p in problems)


def test_missing_source_and_bad_sources(tmp_path):
    path = write(tmp_path, """\
        cameras:
          - name: door
            fps: 5
          - name: web
            source: http://example.org/cam.mjpg
          - name: gone
            source: videos/missing.mp4
          - name: bad name!
            source: 0
        """)
    problems = problems_of(path)
    assert f"{path}:2: cameras[0].source: required key is missing" in problems
    assert any(p.startswith(f"{path}:5: cameras[1].source: scheme http:// is not supported; expected an rtsp://") for p in problems)
    assert f"{path}:7: cameras[2].source: no such video file: {tmp_path / 'videos' / 'missing.mp4'}" in problems
    assert any(p.startswith(f"{path}:8: cameras[3].name: expected 1-64 characters") for p in problems)


def test_cameras_are_required(tmp_path):
    assert problems_of(write(tmp_path, "http:\n  port: 1\n")) == [f"{tmp_path / 'cameras.yaml'}:1: cameras: required key is missing"]


def test_broken_yaml_syntax_gives_line_and_column(tmp_path):
    path = write(tmp_path, "cameras:\n  - name: door\n    source: [unclosed\n  - name: x\n")
    [problem] = problems_of(path)
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: YAML syntax error: ", problem), problem


@pytest.mark.parametrize(("text", "found"), [("", "an empty file"), ("- a\n- b\n", "a list")])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text, found):
    expected = f"{tmp_path / 'cameras.yaml'}:1: expected a mapping with at least a `cameras:` list, found {found}"
    assert problems_of(write(tmp_path, text)) == [expected]


def test_duplicate_camera_names_and_duplicate_keys(tmp_path, video):
    names = write(tmp_path, f"cameras:\n  - name: door\n    source: {video}\n  - name: door\n    source: 0\n", "names.yaml")
    assert problems_of(names) == [f"{names}:1: cameras: camera names must be unique: 'door' is used by cameras[0] and cameras[1]"]
    keys = write(tmp_path, f"cameras:\n  - name: door\n    source: {video}\n    fps: 5\n    fps: 6\n", "keys.yaml")
    assert problems_of(keys) == [f"{keys}:5: cameras[0].fps: duplicate key (first given on line 4); keep one"]


def test_unreadable_file_names_the_path(tmp_path):
    assert problems_of(tmp_path / "nope.yaml")[0].startswith(f"{tmp_path / 'nope.yaml'}: cannot read the config file")


def test_environment_variables_are_substituted(tmp_path, video, monkeypatch):
    monkeypatch.setenv("CAM_PW", "p@ss")
    monkeypatch.setenv("CAM_FPS", "7.5")
    monkeypatch.delenv("UNSET_HOST", raising=False)
    config = parse_config(textwrap.dedent(f"""\
        cameras:
          - name: door
            source: rtsp://viewer:${{CAM_PW}}@${{UNSET_HOST:-10.0.0.7}}:554/live
            fps: ${{CAM_FPS}}
          - name: file
            source: {video}
        alerts:
          channel: literal-$${{NOT_A_VAR}}
        """), base_dir=tmp_path)
    assert config.cameras[0].source == "rtsp://viewer:p@ss@10.0.0.7:554/live"
    assert config.cameras[0].fps == 7.5
    assert config.alerts.channel == "literal-${NOT_A_VAR}"


def test_missing_environment_variable_names_the_key_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_PASSWORD", raising=False)
    path = write(tmp_path, "cameras:\n  - name: door\n    source: rtsp://u:${NO_SUCH_PASSWORD}@cam/1\n")
    assert problems_of(path) == [
        f"{path}:3: cameras[0].source: environment variable NO_SUCH_PASSWORD is not set; "
        "export it, or write ${NO_SUCH_PASSWORD:-default} to give a default"
    ]


def test_secrets_are_redacted_in_repr_str_summary_and_errors(tmp_path, monkeypatch, capsys):
    secret = "hunter2-secret"
    monkeypatch.setenv("CAM_PW", secret)
    path = write(tmp_path, "cameras:\n  - name: door\n    source: rtsp://viewer:${CAM_PW}@cam.local/1\n")
    config = load_config(path)
    camera = config.cameras[0]
    assert camera.source.endswith(f"{secret}@cam.local/1"), "the worker still gets the real URL"
    for text in (repr(camera), str(camera), repr(config), camera.redacted_source):
        assert secret not in text
    assert camera.redacted_source == "rtsp://viewer:***@cam.local/1"
    assert check_config.run(argparse.Namespace(config=str(path), shard=None, json=False)) == 0
    out = capsys.readouterr().out
    assert "door: rtsp://viewer:***@cam.local/1 (rtsp, 10 fps)" in out and secret not in out

    bad = write(tmp_path, "cameras:\n  - name: door\n    source: 0\n    fps: ${CAM_PW}\n", "bad.yaml")
    problems = problems_of(bad)
    assert problems[0].startswith(f"{bad}:4: cameras[0].fps:") and secret not in "\n".join(problems)


def test_redact_url():
    assert redact_url("rtsp://admin:p4ss@10.0.0.2:554/s") == "rtsp://admin:***@10.0.0.2:554/s"
    assert redact_url("rtsp://10.0.0.2/s") == "rtsp://10.0.0.2/s"
    assert redact_url("/videos/a.mp4") == "/videos/a.mp4"


def test_per_camera_overrides_merge_over_the_global_settings(tmp_path, video):
    config = parse_config(textwrap.dedent(f"""\
        detector:
          min_face_size: 30
          detect_width: 480
        tracking:
          max_missed_s: 1.5
        alerts:
          rules:
            enter_threshold: 0.55
        cameras:
          - name: plain
            source: {video}
          - name: tuned
            source: {video}
            detect_width: 1280
            detector: {{score_threshold: 0.5}}
            tracking: {{min_hits: 4}}
            alert_rules: {{watched: [fear], min_duration_s: 1}}
        """), base_dir=tmp_path)
    plain, tuned = config.camera_settings("plain"), config.camera_settings("tuned")
    assert plain.detector == config.detector and plain.tracking == config.tracking
    assert plain.alert_rules == config.alerts.rules
    assert tuned.detector.detect_width == 1280 and tuned.detector.score_threshold == 0.5
    assert tuned.detector.min_face_size == 30, "keys the camera does not override stay global"
    assert tuned.tracking.min_hits == 4 and tuned.tracking.max_missed_s == 1.5
    assert tuned.alert_rules.watched == ["fear"] and tuned.alert_rules.min_duration_s == 1
    assert tuned.alert_rules.enter_threshold == 0.55
    assert tuned.camera.name == "tuned"
    with pytest.raises(KeyError, match="no camera named 'nope'"):
        config.camera_settings("nope")


def test_an_override_that_breaks_the_merged_rules_fails_at_load(tmp_path, video):
    path = write(tmp_path, f"cameras:\n  - name: door\n    source: {video}\n    alert_rules:\n      release_threshold: 0.9\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: (top level): camera 'door': its overrides do not combine")
    assert f"release_threshold (0.9) must be below enter_threshold ({AlertRules().enter_for('angry')})" in problem


def test_relative_paths_are_taken_from_the_config_files_directory(tmp_path, video, yunet_model):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "clip.mp4").symlink_to(video)
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", "detector:\n  model_path: ../det.onnx\ncameras:\n  - name: f\n    source: ../videos/clip.mp4\n")
    config = load_config(path)
    assert config.cameras[0].source == str(videos / "clip.mp4") and config.cameras[0].kind == "file"
    assert config.detector.model_path == tmp_path / "det.onnx"


def test_source_kinds():
    config = parse_config("cameras:\n  - {name: a, source: 0}\n  - {name: b, source: '2'}\n  - {name: c, source: /dev/video1}\n"
                          "  - {name: d, source: 'rtsps://cam/x'}\n")  # fmt: skip
    assert [c.kind for c in config.cameras] == ["usb", "usb", "usb", "rtsp"]
    assert config.cameras[1].source == 2


def test_check_config_command_exit_codes(tmp_path, video):
    good = write(tmp_path, f"cameras:\n  - name: door\n    source: {video}\n", "good.yaml")
    bad = write(tmp_path, "cameras:\n  - name: door\n    sorce: 0\n", "bad.yaml")
    ok = subprocess.run([sys.executable, "-m", "fer_stream.cli", "check-config", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert f"{good}: OK" in ok.stdout and "door:" in ok.stdout
    failed = subprocess.run([sys.executable, "-m", "fer_stream.cli", "check-config", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 2
    assert f"{bad}:3: cameras[0].sorce: unknown key" in failed.stderr
    assert f"{bad}:2: cameras[0].source: required key is missing" in failed.stderr


def test_check_config_json_holds_the_summary_or_the_problems(tmp_path, video, capsys):
    good = write(tmp_path, f"cameras:\n  - {{name: door, source: {video}}}\n  - {{name: hall, source: {video}}}\n", "good.yaml")
    assert main(["check-config", str(good), "--json", "--shard", "0/1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True and document["problems"] == [] and document["config"] == str(good)
    assert {"detector", "model", "inference", "http", "redis", "alerts"} <= document.keys()
    assert [(c["name"], c["kind"], c["enabled"]) for c in document["cameras"]] == [("door", "file", True), ("hall", "file", True)]
    assert document["shard"] == {"shard": "0/1", "cameras": ["door", "hall"]}

    bad = write(tmp_path, "cameras:\n  - name: door\n    sorce: 0\n", "bad.yaml")
    assert main(["check-config", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["ok"] is False and document["error"] == "invalid configuration"
    assert f"{bad}:3: cameras[0].sorce: unknown key" in " ".join(document["problems"])
    assert "cameras[0].sorce: unknown key" in captured.err, "the problems still go to stderr"

    idle = write(tmp_path, f"cameras:\n  - {{name: door, source: {video}, enabled: false}}\n", "idle.yaml")
    assert main(["check-config", str(idle), "--json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["error"] == "the daemon would refuse this configuration" and document["problems"][0].startswith("cameras:")


def _all_keys(model: type[BaseModel]) -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            for inner in (candidate, *typing.get_args(candidate)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    keys |= _all_keys(inner)
    return keys


def test_the_example_config_is_valid_and_documents_every_key(monkeypatch):
    example = REPO / "config" / "cameras.example.yaml"
    monkeypatch.setenv("ENTRANCE_RTSP_PASSWORD", "x")
    config = load_config(example)
    assert {c.kind for c in config.cameras} == {"rtsp", "usb", "file"}
    documented = set(re.findall(r"^\s*(?:#\s*)?(?:- )?([a-z_0-9]+):", example.read_text(), re.MULTILINE))
    missing = _all_keys(FerStreamConfig) - documented
    assert not missing, f"config/cameras.example.yaml does not document: {sorted(missing)}"


def test_the_demo_config_needs_no_camera():
    config = load_config(REPO / "config" / "demo.yaml")
    assert config.cameras and all(c.kind == "file" and Path(c.source).is_file() for c in config.cameras)
    assert config.detector.model_path.is_file()


def test_a_missing_shared_file_says_where_the_shared_data_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STREAM_SHARED", str(tmp_path / "nowhere"))
    config = tmp_path / "demo.yaml"
    config.write_text("cameras:\n  - name: door\n    source: ${FER_STREAM_SHARED:-../shared}/media/angry_man.mp4\n")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert "no such video file" in str(refused.value) and "FER_STREAM_SHARED=/path/to/shared" in str(refused.value)
    assert str(tmp_path / "nowhere") in str(refused.value)

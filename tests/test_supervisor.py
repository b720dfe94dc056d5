"""Restart backoff and the demo's summary, without processes."""

from __future__ import annotations

from fer_stream.supervisor.demo import format_summary
from fer_stream.supervisor.restarts import RestartPolicy


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(initial_s=0.5, max_s=4.0, healthy_after_s=60.0)
    assert [policy.delay_after_death(ran_for_s=1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_forgets_after_a_healthy_run() -> None:
    policy = RestartPolicy(initial_s=0.5, max_s=30.0, healthy_after_s=60.0)
    policy.delay_after_death(1.0)
    policy.delay_after_death(1.0)
    assert policy.delay_after_death(ran_for_s=61.0) == 0.5
    assert policy.delay_after_death(ran_for_s=2.0) == 1.0


def test_summary_lists_every_camera_and_face() -> None:
    snapshot = {
        "uptime_s": 12.0,
        "model": {"model_id": "fer-mobilenet-a050-96", "version": "1", "backend": "litert"},
        "alerts_forwarded": 6,
        "episodes_started": 1,
        "cameras": {
            "angry": {"state": "up", "processed_fps": 9.8, "up": True,
                      "tracks": [{"track_id": 4, "emotion": "angry", "score": 0.81, "alerting": True, "box": [0, 0, 1, 1]}]},
            "calm": {"state": "down", "processed_fps": 0.0, "up": False, "tracks": []},
        },
    }
    text = format_summary(snapshot)
    assert "fer-mobilenet-a050-96 (litert)" in text and "alerts: 1 episode (6 messages" in text, "episodes, not messages"
    assert "#4 angry 0.81 ALERT" in text
    assert "calm" in text and "down" in text and "no faces" in text


def _run_daemon(config: str, tmp_path, **env: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "cameras.yaml"
    path.write_text(config)
    fer_stream = str(Path(sys.executable).with_name("fer-stream"))
    return subprocess.run([fer_stream, "run", "--config", str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_broken_config_exits_2_naming_the_key(tmp_path) -> None:
    done = _run_daemon("cameras:\n  - name: door\n    source: 0\n    fps: fast\n    colour: red\n", tmp_path)
    assert done.returncode == 2
    assert "cameras[0].fps" in done.stderr and "cameras[0].colour" in done.stderr


def test_model_that_does_not_match_its_card_exits_2_naming_the_file(tmp_path) -> None:
    import json

    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a model")
    card = {"model_id": "x", "version": "1", "file": "m.tflite", "format": "tflite", "sha256": "0" * 64,
            "labels": ["angry"], "input_size": 48, "preset": "p", "imagenet_weights": False, "architecture": "a"}
    (tmp_path / "m.tflite.card.json").write_text(json.dumps(card))
    done = _run_daemon(f"model:\n  path: {model}\ncameras:\n  - name: door\n    source: 0\n", tmp_path)
    assert done.returncode == 2
    assert "m.tflite" in done.stderr and "sha256" in done.stderr

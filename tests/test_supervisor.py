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
        "alerts_forwarded": 1,
        "cameras": {
            "angry": {"state": "up", "processed_fps": 9.8, "up": True,
                      "tracks": [{"track_id": 4, "emotion": "angry", "score": 0.81, "alerting": True, "box": [0, 0, 1, 1]}]},
            "calm": {"state": "down", "processed_fps": 0.0, "up": False, "tracks": []},
        },
    }
    text = format_summary(snapshot)
    assert "fer-mobilenet-a050-96 (litert)" in text and "alerts: 1" in text
    assert "#4 angry 0.81 ALERT" in text
    assert "calm" in text and "down" in text and "no faces" in text

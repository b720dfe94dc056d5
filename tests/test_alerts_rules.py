"""The alert rules on synthetic probability sequences: one start per episode, no storms, hysteresis, cooldown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fer_stream.alerts.config import AlertRules
from fer_stream.alerts.rules import STALE_TRACK_S, AlertTracker
from fer_stream.config.models import AlertRulesOverride, _merged

LABELS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
T0 = 1_790_000_000.0  # a wall-clock epoch, as the camera worker passes
BOX = (10, 20, 50, 60)
FRAME = (640, 360)


def probs(**scores: float) -> np.ndarray:
    """A probability vector with the given classes and the rest spread evenly."""
    rest = (1.0 - sum(scores.values())) / (len(LABELS) - len(scores))
    return np.array([scores.get(label, rest) for label in LABELS])


def feed(tracker: AlertTracker, track_id: int, vector: np.ndarray, start: float, seconds: float, fps: float = 10):
    """Observe the same vector at ``fps`` for ``seconds``; return (alerts, time after the last frame)."""
    alerts = []
    n = int(round(seconds * fps))
    for i in range(n):
        alerts += tracker.observe(track_id, vector, start + i / fps, BOX, FRAME)
    return alerts, start + n / fps


def tracker(**rules) -> AlertTracker:
    rules.setdefault("update_every_s", 0)  # most tests count starts and ends; updates have their own test
    return AlertTracker(AlertRules(**rules), "door", LABELS, "fer-mobilenet", "2026.11.24", host="testhost")


def test_an_episode_is_one_start_updates_and_one_end_sharing_its_episode_id():
    rules = tracker(update_every_s=2.0)
    alerts, t = feed(rules, 1, probs(angry=0.8), T0, 7.5)
    alerts += feed(rules, 1, probs(neutral=0.9), t, 3)[0]
    assert [a.event for a in alerts] == ["start", "update", "update", "update", "end"]
    assert len({a.episode_id for a in alerts}) == 1 and len({a.alert_id for a in alerts}) == 5
    start, *updates, end = alerts
    assert [round(u.event_at.timestamp() - start.event_at.timestamp(), 1) for u in updates] == [2.0, 4.0, 6.0]
    assert [a.end_reason for a in alerts] == [None, None, None, None, "calm"]
    assert all(u.duration_s > start.duration_s for u in updates) and end.score < 0.5 <= updates[-1].score
    # A new episode after the cooldown gets a new id.
    again = feed(rules, 1, probs(angry=0.8), t + 61, 2)[0]
    assert again[0].event == "start" and again[0].episode_id != start.episode_id


def test_end_reasons_say_why_the_episode_ended():
    rules = tracker()
    _, t = feed(rules, 1, probs(angry=0.8), T0, 2)
    _, t = feed(rules, 2, probs(angry=0.8), t, 2)
    assert [a.end_reason for a in rules.forget(1, t)] == ["face_lost"]
    assert [a.end_reason for a in rules.forget_all(t, "daemon_stopped")] == ["daemon_stopped"]


def test_scores_are_published_rounded():
    alerts, _ = feed(tracker(), 1, probs(angry=0.812345678), T0, 2)
    start = alerts[0]
    for value in (start.score, start.peak_score, start.mean_score, start.duration_s):
        assert value == round(value, 3)


def test_sustained_angry_gives_exactly_one_start_at_min_duration():
    rules = tracker()
    alerts, _ = feed(rules, 1, probs(angry=0.8), T0, 30)
    assert [a.event for a in alerts] == ["start"]
    start = alerts[0]
    assert start.emotion == "angry" and start.camera == "door" and start.track_id == 1
    assert start.duration_s == pytest.approx(rules.rules.min_duration_s, abs=0.11)
    # The average starts uniform (1/7) and reaches enter_threshold after H * log2((0.8 - 1/7) / (0.8 - enter)),
    # rounded up to the next frame.
    half_life, enter = rules.rules.smoothing_half_life_s, rules.rules.enter_for("angry")
    crossing = math.ceil(10 * half_life * math.log2((0.8 - 1 / 7) / (0.8 - enter))) / 10
    assert start.started_at.timestamp() == pytest.approx(T0 + crossing, abs=1e-3)
    assert start.box.model_dump() == {"x": 10, "y": 20, "w": 50, "h": 60}
    assert start.frame.width == 640 and start.model.id == "fer-mobilenet" and start.host == "testhost"
    assert rules.is_alerting(1)


def test_brief_spike_gives_nothing():
    rules = tracker()
    alerts, t = feed(rules, 1, probs(neutral=0.8), T0, 3)
    alerts += feed(rules, 1, probs(angry=0.95), t, 0.5)[0]  # half a second of anger
    alerts += feed(rules, 1, probs(neutral=0.8), t + 0.5, 10)[0]
    assert alerts == []


def test_first_frame_spike_decays_before_min_duration():
    rules = tracker()
    alerts, t = feed(rules, 1, probs(angry=0.95), T0, 0.1)  # the track starts on a noisy frame
    alerts += feed(rules, 1, probs(neutral=0.8), t, 10)[0]
    assert alerts == []


def test_min_observations_holds_back_a_slow_stream():
    rules = tracker(min_duration_s=1.0, min_observations=5)
    alerts, t = feed(rules, 1, probs(angry=0.9), T0, 3, fps=1)  # 3 frames over 3 s
    assert alerts == []
    alerts, _ = feed(rules, 1, probs(angry=0.9), t, 3, fps=1)  # the 5th frame above enter, at T0 + 5
    assert [a.event for a in alerts] == ["start"]


def test_hysteresis_keeps_episode_between_release_and_enter_then_ends_below_release():
    rules = tracker(enter_threshold=0.6, release_threshold=0.4, smoothing_half_life_s=0.05)
    alerts, t = feed(rules, 1, probs(angry=0.8), T0, 3)
    assert [a.event for a in alerts] == ["start"]
    between, t = feed(rules, 1, probs(angry=0.5, neutral=0.3), t, 5)  # below enter, above release
    assert between == []
    ended, _ = feed(rules, 1, probs(angry=0.1, neutral=0.7), t, 1)
    assert [a.event for a in ended] == ["end"]
    end = ended[0]
    assert end.alert_id != alerts[0].alert_id
    assert end.duration_s == pytest.approx(8.0, abs=0.2)
    assert end.peak_score == pytest.approx(0.8, abs=0.01)
    assert 0.5 <= end.mean_score < end.peak_score
    assert not rules.is_alerting(1)


def test_flicker_around_enter_threshold_is_one_episode():
    rules = tracker(enter_threshold=0.6, release_threshold=0.4, smoothing_half_life_s=0.05)
    alerts, t = feed(rules, 1, probs(angry=0.75), T0, 3)
    for _ in range(10):  # then alternates above and just below enter for 10 s
        alerts += feed(rules, 1, probs(angry=0.75), t, 0.5)[0]
        alerts += feed(rules, 1, probs(angry=0.55), t + 0.5, 0.5)[0]
        t += 1.0
    assert [a.event for a in alerts] == ["start"]


def test_cooldown_blocks_a_new_episode_on_the_same_track_and_emotion():
    rules = tracker(cooldown_s=20, smoothing_half_life_s=0.05)
    calm, angry = probs(neutral=0.8), probs(angry=0.8)
    events, t = [], T0
    for _ in range(3):  # three 4 s bursts of anger 5 s apart: only the first becomes an episode
        alerts, t = feed(rules, 1, angry, t, 4)
        events += alerts
        alerts, t = feed(rules, 1, calm, t, 1)
        events += alerts
    assert [a.event for a in events] == ["start", "end"]
    other_track = feed(rules, 2, angry, t, 3)[0]  # another face is not under this track's cooldown
    assert [a.event for a in other_track] == ["start"]
    later = feed(rules, 1, angry, t + 30, 3)[0]  # after the cooldown the same track can alert again
    assert [a.event for a in later] == ["start"]


def test_angry_and_fear_are_separate_episodes():
    rules = tracker(enter_threshold=0.45, release_threshold=0.3)
    alerts, _ = feed(rules, 1, probs(angry=0.4, fear=0.4), T0, 8)
    assert sorted((a.emotion, a.event) for a in alerts) == []  # both below enter 0.45
    alerts, _ = feed(rules, 3, probs(angry=0.48, fear=0.48), T0, 8)
    assert sorted((a.emotion, a.event) for a in alerts) == [("angry", "start"), ("fear", "start")]


def test_unwatched_emotion_never_alerts():
    alerts, _ = feed(tracker(), 1, probs(happy=0.95), T0, 10)
    assert alerts == []


def test_forget_ends_an_open_episode_at_the_last_sighting():
    rules = tracker()
    alerts, t = feed(rules, 7, probs(fear=0.9), T0, 4)
    assert [a.event for a in alerts] == ["start"]
    ended = rules.forget(7, t + 2.0)
    assert [(a.event, a.emotion, a.track_id) for a in ended] == [("end", "fear", 7)]
    assert ended[0].event_at.timestamp() == pytest.approx(t - 0.1, abs=1e-3)
    assert rules.track_count == 0 and rules.forget(7, t + 3) == []


def test_forget_without_episode_is_silent():
    rules = tracker(min_duration_s=5)
    feed(rules, 1, probs(angry=0.9), T0, 1)  # candidate only, never started
    assert rules.forget(1, T0 + 1) == []


def test_memory_is_bounded_by_the_track_cap_and_stale_tracks():
    rules = AlertTracker(AlertRules(), "door", LABELS, "m", "1", max_tracks=8)
    for track_id in range(100):
        rules.observe(track_id, probs(neutral=0.8), T0 + track_id * 0.01, BOX, FRAME)
    assert rules.track_count == 8
    rules.observe(1000, probs(neutral=0.8), T0 + STALE_TRACK_S + 10, BOX, FRAME)
    assert rules.track_count == 1


def test_stale_track_in_an_episode_is_ended():
    rules = tracker()
    alerts, t = feed(rules, 1, probs(angry=0.9), T0, 3)
    assert [a.event for a in alerts] == ["start"]
    later = rules.observe(2, probs(neutral=0.8), t + STALE_TRACK_S + 10, BOX, FRAME)
    assert [(a.event, a.track_id) for a in later] == [("end", 1)]


def test_per_camera_override_changes_only_what_it_names():
    base = AlertRules(cooldown_s=30)
    merged = _merged(base, AlertRulesOverride(watched=["Fear"], enter_threshold=0.7))
    assert merged.watched == ["fear"] and merged.enter_threshold == 0.7
    assert merged.cooldown_s == 30 and merged.release_threshold == base.release_threshold
    assert _merged(base, None) is base
    only_fear = AlertTracker(merged, "door", LABELS, "m", "1")
    assert feed(only_fear, 1, probs(angry=0.9), T0, 5)[0] == []


def test_watched_emotion_unknown_to_the_model_is_refused():
    with pytest.raises(ValueError, match=r"camera 'door'.*\['rage'\].*labels are"):
        AlertTracker(AlertRules(watched=["angry", "rage"]), "door", LABELS, "m", "1")


def test_wrong_probability_length_is_refused():
    with pytest.raises(ValueError, match="3 probabilities for 7 labels"):
        tracker().observe(1, np.array([0.2, 0.3, 0.5]), T0, BOX, FRAME)


def test_forget_all_ends_every_open_episode_when_the_camera_stops():
    rules = tracker()
    feed(rules, 1, probs(angry=0.9), T0, 3)
    alerts, t = feed(rules, 2, probs(fear=0.9), T0, 3)
    feed(rules, 3, probs(neutral=0.9), T0, 3)
    ended = rules.forget_all(t)
    assert sorted((a.track_id, a.emotion, a.event) for a in ended) == [(1, "angry", "end"), (2, "fear", "end")]
    assert rules.track_count == 0


def test_smoothed_scores_follow_the_half_life():
    rules = tracker(smoothing_half_life_s=1.0)
    rules.observe(1, probs(angry=0.9), T0, BOX, FRAME)
    assert rules.smoothed(1)["angry"] == pytest.approx(1 / 7)  # a new face starts from no opinion
    rules.observe(1, probs(angry=0.1), T0 + 1.0, BOX, FRAME)  # one half-life later: halfway to 0.1
    assert rules.smoothed(1)["angry"] == pytest.approx((1 / 7 + 0.1) / 2)
    rules.observe(1, probs(angry=0.9), T0 + 2.0, BOX, FRAME)
    assert rules.smoothed(1)["angry"] == pytest.approx(((1 / 7 + 0.1) / 2 + 0.9) / 2)
    assert list(rules.smoothed(1)) == rules.labels and rules.smoothed(99) is None


def test_a_single_spike_does_not_start_an_episode_under_the_consensus_rule():
    """A burst of three 0.99-angry readings lifts the slow average over the threshold for most of a second;
    the readings after it put neutral first, so fewer than min_top_share of the candidate's readings have
    angry on top."""
    settings = dict(enter_threshold={"angry": 0.3, "fear": 0.3}, release_threshold={"angry": 0.1, "fear": 0.1},
                    smoothing_half_life_s=1.0, min_duration_s=0.5, min_observations=3)

    def glance(rules: AlertTracker) -> list:
        alerts, t = feed(rules, 1, probs(neutral=0.6, angry=0.2), T0, 8)
        more, t = feed(rules, 1, probs(angry=0.99), t, 0.3)
        return alerts + more + feed(rules, 1, probs(neutral=0.6, angry=0.2), t, 3)[0]

    assert glance(tracker(**settings, min_top_share=0.6)) == []
    # Without the consensus rule the same readings start an episode: the rule is what holds it back.
    assert [a.event for a in glance(tracker(**settings, min_top_share=0.0))] == ["start"]


def test_a_sustained_run_with_the_emotion_on_top_starts_an_episode_under_the_consensus_rule():
    rules = tracker(min_top_share=0.6, min_duration_s=0.5, min_observations=5)
    alerts, _ = feed(rules, 1, probs(angry=0.7), T0, 3.0)
    assert [a.event for a in alerts] == ["start"]
    # The start comes when both hold: at least min_duration_s after the score entered, and the share met.
    assert 0.5 <= alerts[0].duration_s <= 0.7


def test_the_consensus_share_counts_only_the_candidates_own_readings():
    """Readings where disgust is on top with angry a close second (a frown while talking) keep the share
    below 0.6 however long they last; once angry wins most readings the episode starts."""
    rules = tracker(enter_threshold={"angry": 0.35, "fear": 0.35}, release_threshold={"angry": 0.2, "fear": 0.2},
                    min_top_share=0.6)
    frown, t = feed(rules, 1, probs(disgust=0.45, angry=0.4), T0, 5)
    assert frown == []
    angry, _ = feed(rules, 1, probs(angry=0.6, disgust=0.3), t, 20)
    assert [a.event for a in angry] == ["start"]


def test_min_top_share_is_bounded():
    with pytest.raises(ValueError):
        AlertRules(min_top_share=1.5)

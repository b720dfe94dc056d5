"""Measure the alert rules on labelled footage and recommend per-emotion thresholds for a false-alarm budget.

Each clip of the manifest (``fer_stream/replay/manifest.py``) is replayed once
through the camera pipeline (detection, tracking, face-quality gate, model), and
every classification is recorded. The alert rules, the daemon's own state
machine, are then run again over those recordings for every combination of
smoothing half-life, minimum duration, per-emotion consensus share
(``min_top_share``) and per-emotion enter threshold, which costs milliseconds a
combination instead of a replay.

For each watched emotion it reports the share of target clips (rows labelled
with that emotion) that raise a ``start`` for it inside their segment, the time
to that first alert, and the false alerts per hour of the other footage (starts
for that emotion inside rows with another label). The recommendation takes, for
each emotion, the thresholds that alert on the most target clips within the
false-alarm budget, then the fewest false alerts, then the strictest consensus
share, and among those the middle threshold, so the margin to both failure
sides is as wide as this footage allows; the smoothing half-life and minimum
duration are shared by all emotions, and chosen for the most target clips, then
the fewest false alerts, then the configured values. Outputs: ``rules.yaml`` (an
``alerts: rules:`` block to paste), ``tradeoff.png`` and ``calibration.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_stream.alerts.config import AlertRules
from fer_stream.replay import settings as replay_settings
from fer_stream.replay.manifest import ManifestError, Segment, load_manifest
from fer_stream.replay.video import Trace, VideoError, rerun_rules

HALF_LIVES = (0.5, 1.0, 2.0)
MIN_DURATIONS = (0.5, 1.0, 2.0)
TOP_SHARES = (0.0, 0.5, 0.7)
#: From 0.05: a class the crowd rarely agrees on (fear) keeps a low calibrated score even on a clear face.
ENTER_GRID = tuple(round(x, 3) for x in np.arange(0.05, 0.901, 0.025))
#: release = enter x this, as in the shipped defaults (0.25 / 0.4).
RELEASE_RATIO = 0.625


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=Path, required=True, metavar="CSV",
                        help="manifest: file,label[,start_s,end_s] (docs/alerts.md#calibrating-on-your-own-footage)")
    replay_settings.add_arguments(parser)
    parser.add_argument("--max-false-per-hour", type=float, default=0.0, metavar="N",
                        help="false-alarm budget per watched emotion, per hour of non-target footage (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="directory for rules.yaml, tradeoff.png, calibration.json")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One emotion under one setting, over the whole manifest."""

    emotion: str
    half_life_s: float
    min_duration_s: float
    min_top_share: float
    enter: float
    release: float
    targets: int
    alerted: int
    first_alert_s: tuple[float, ...]
    false_alerts: int
    other_hours: float

    @property
    def recall(self) -> float:
        return self.alerted / self.targets if self.targets else 0.0

    @property
    def false_per_hour(self) -> float:
        return self.false_alerts / self.other_hours if self.other_hours else 0.0

    def as_dict(self) -> dict:
        return {"emotion": self.emotion, "smoothing_half_life_s": self.half_life_s, "min_duration_s": self.min_duration_s,
                "min_top_share": self.min_top_share,
                "enter_threshold": self.enter, "release_threshold": self.release, "target_clips": self.targets,
                "target_clips_alerted": self.alerted, "time_to_first_alert_s": list(self.first_alert_s),
                "false_alerts": self.false_alerts, "other_footage_h": round(self.other_hours, 4),
                "false_alerts_per_h": round(self.false_per_hour, 2)}  # fmt: skip


def score(rules: AlertRules, traces: dict[Path, Trace], segments: list[Segment], labels: list[str]) -> dict[str, Outcome]:
    """How ``rules`` do on the footage, per watched emotion."""
    by_video: dict[Path, list[Segment]] = {}
    for segment in segments:
        by_video.setdefault(segment.video, []).append(segment)
    found: dict[str, dict] = {e: {"alerted": 0, "targets": 0, "first": [], "false": 0, "other_s": 0.0} for e in rules.watched}
    for video, video_segments in by_video.items():
        trace = traces[video]
        starts = [timed for timed in rerun_rules(trace, rules, labels) if timed.alert.event == "start"]
        for segment in video_segments:
            for emotion, counts in found.items():
                inside = [timed.t for timed in starts if timed.alert.emotion == emotion and segment.covers(timed.t)]
                if segment.label == emotion:
                    counts["targets"] += 1
                    if inside:
                        counts["alerted"] += 1
                        counts["first"].append(round(min(inside) - segment.start_s, 2))
                else:
                    counts["other_s"] += segment.length(trace.duration_s)
                    counts["false"] += len(inside)
    return {
        emotion: Outcome(emotion=emotion, half_life_s=rules.smoothing_half_life_s, min_duration_s=rules.min_duration_s,
                         min_top_share=rules.top_share_for(emotion),
                         enter=rules.enter_for(emotion), release=rules.release_for(emotion), targets=c["targets"],
                         alerted=c["alerted"], first_alert_s=tuple(c["first"]), false_alerts=c["false"],
                         other_hours=c["other_s"] / 3600.0)  # fmt: skip
        for emotion, c in found.items()
    }


def sweep(base: AlertRules, traces: dict[Path, Trace], segments: list[Segment], labels: list[str]) -> list[Outcome]:
    """Every emotion under every grid setting (the emotions' state machines are independent, so one run scores all)."""
    outcomes: list[Outcome] = []
    for half_life, min_duration in _shared_settings():
        for top_share in TOP_SHARES:
            for enter in ENTER_GRID:
                rules = base.model_copy(update={
                    "smoothing_half_life_s": half_life, "min_duration_s": min_duration, "min_top_share": top_share,
                    "enter_threshold": enter, "release_threshold": round(enter * RELEASE_RATIO, 3),
                })  # fmt: skip
                outcomes += score(rules, traces, segments, labels).values()
    return outcomes


def _shared_settings() -> list[tuple[float, float]]:
    """(half-life, minimum duration): the settings every watched emotion shares."""
    return [(h, d) for h in HALF_LIVES for d in MIN_DURATIONS]


def _shared(outcome: Outcome) -> tuple[float, float]:
    return outcome.half_life_s, outcome.min_duration_s


def recommend(outcomes: list[Outcome], budget_per_hour: float, base: AlertRules) -> dict[str, Outcome]:
    """Per emotion, at the one shared setting that serves all emotions best: the middle threshold of the best."""
    best_total: tuple | None = None
    chosen: dict[str, Outcome] = {}
    for shared in _shared_settings():
        picks: dict[str, Outcome] = {}
        for emotion in base.watched:
            feasible = [o for o in outcomes if o.emotion == emotion and _shared(o) == shared
                        and o.false_per_hour <= budget_per_hour]  # fmt: skip
            if not feasible:
                break
            top = max(o.alerted for o in feasible)
            fewest = min(o.false_alerts for o in feasible if o.alerted == top)
            best = [o for o in feasible if o.alerted == top and o.false_alerts == fewest]
            strictest = max(o.min_top_share for o in best)
            best = sorted((o for o in best if o.min_top_share == strictest), key=lambda o: o.enter)
            picks[emotion] = best[len(best) // 2]
        if len(picks) != len(base.watched):
            continue
        alerted = sum(o.alerted for o in picks.values())
        false_alerts = sum(o.false_alerts for o in picks.values())
        delays = [t for o in picks.values() for t in o.first_alert_s]
        is_default = shared == (base.smoothing_half_life_s, base.min_duration_s)
        # Most target clips, then fewest false alerts, then the configured setting, then the quickest.
        key = (alerted, -false_alerts, is_default, -statistics.fmean(delays) if delays else 0.0)
        if best_total is None or key > best_total:
            best_total, chosen = key, picks
    return chosen


def rules_block(base: AlertRules, picks: dict[str, Outcome], header: list[str]) -> str:
    first = next(iter(picks.values()))
    enter = ", ".join(f"{e}: {o.enter:g}" for e, o in picks.items())
    release = ", ".join(f"{e}: {o.release:g}" for e, o in picks.items())
    lines = [f"# {line}" for line in header] + [
        "alerts:",
        "  rules:",
        f"    watched: [{', '.join(base.watched)}]",
        f"    smoothing_half_life_s: {first.half_life_s:g}",
        f"    min_duration_s: {first.min_duration_s:g}",
        f"    min_observations: {base.min_observations}",
        f"    min_top_share: {{{', '.join(f'{e}: {o.min_top_share:g}' for e, o in picks.items())}}}",
        f"    cooldown_s: {base.cooldown_s:g}",
        f"    enter_threshold: {{{enter}}}",
        f"    release_threshold: {{{release}}}",
    ]
    return "\n".join(lines) + "\n"


def plot_tradeoff(outcomes: list[Outcome], picks: dict[str, Outcome], budget: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(picks), figsize=(6 * len(picks), 4.5), squeeze=False)
    for ax, (emotion, pick) in zip(axes[0], picks.items(), strict=True):
        for shared in _shared_settings():
            for share in TOP_SHARES:
                curve = sorted((o for o in outcomes if o.emotion == emotion and _shared(o) == shared
                                and o.min_top_share == share), key=lambda o: o.enter)  # fmt: skip
                mine = shared == _shared(pick) and share == pick.min_top_share
                ax.plot([o.false_per_hour for o in curve], [o.recall for o in curve], marker="o" if mine else None,
                        lw=2 if mine else 0.8, alpha=1 if mine else 0.3, markersize=3,
                        label=f"half-life {shared[0]:g} s, min {shared[1]:g} s, top share {share:g}" if mine else None)
        ax.scatter([pick.false_per_hour], [pick.recall], s=120, facecolors="none", edgecolors="red", zorder=5,
                   label=f"recommended: enter {pick.enter:g}")
        ax.axvline(budget, color="grey", ls="--", lw=1, label=f"budget {budget:g}/h")
        ax.set_xlabel("false alerts per hour of other footage")
        ax.set_ylabel(f"share of {emotion} clips that alert")
        ax.set_title(f"{emotion}: {pick.targets} target clips, {pick.other_hours * 60:.1f} min of other footage")
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_outcome(label: str, outcome: Outcome) -> str:
    delays = outcome.first_alert_s
    delay = f"median {statistics.median(delays):.1f} s (max {max(delays):.1f})" if delays else "-"
    return (f"| {label} | {outcome.emotion} | {outcome.enter:g} / {outcome.release:g} | {outcome.half_life_s:g} s, "
            f"{outcome.min_duration_s:g} s, {outcome.min_top_share:g} | {outcome.alerted} of {outcome.targets} | {delay} | "
            f"{outcome.false_alerts} in {outcome.other_hours * 60:.1f} min ({outcome.false_per_hour:.1f}/h) |")


def recommended_rules(base: AlertRules, picks: dict[str, Outcome]) -> AlertRules:
    first = next(iter(picks.values()))
    return base.model_copy(update={
        "smoothing_half_life_s": first.half_life_s, "min_duration_s": first.min_duration_s,
        "min_top_share": {e: o.min_top_share for e, o in picks.items()},
        "enter_threshold": {e: o.enter for e, o in picks.items()},
        "release_threshold": {e: o.release for e, o in picks.items()},
    })  # fmt: skip


def per_clip(rules: AlertRules, traces: dict[Path, Trace], segments: list[Segment], labels: list[str]) -> list[str]:
    """One line per manifest row: its label and the episodes the rules start inside it."""
    lines = []
    for segment in segments:
        starts = [f"{t.alert.emotion} at {t.t:.1f} s" for t in rerun_rules(traces[segment.video], rules, labels)
                  if t.alert.event == "start" and segment.covers(t.t)]  # fmt: skip
        lines.append(f"| {segment.video.name} | {segment.label} | {', '.join(starts) or '-'} |")
    return lines


def run(args: argparse.Namespace) -> int:
    from fer_stream.faces import DetectorError
    from fer_stream.inference.engine import load_classifier
    from fer_stream.model_card import ModelCardError
    from fer_stream.pipeline import build_pipeline
    from fer_stream.replay.video import replay_video

    if args.max_false_per_hour < 0:
        print("error: --max-false-per-hour must be 0 or more", file=sys.stderr)
        return 2
    if importlib.util.find_spec("matplotlib") is None:
        print("error: calibrate draws its trade-off plot with matplotlib: pip install matplotlib (or 'fer-stream[train]')",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        setup = replay_settings.resolve(args)
        classifier = load_classifier(setup.model, backend=setup.backend)
        segments = load_manifest(args.clips, classifier.labels)
        base = setup.settings.alert_rules
        if not any(s.label in base.watched for s in segments):
            raise ManifestError(f"{args.clips}: no row is labelled with a watched emotion ({', '.join(base.watched)})")
    except (replay_settings.SetupError, ManifestError, DetectorError, ModelCardError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    traces: dict[Path, Trace] = {}
    for video in dict.fromkeys(s.video for s in segments):
        pipeline = build_pipeline(setup.settings, labels=classifier.labels, input_size=classifier.input_size,
                                  model_id=classifier.card.model_id, model_version=classifier.card.version,
                                  alerts_enabled=False)  # fmt: skip
        try:
            traces[video] = replay_video(video, pipeline, classifier.predict, fps=setup.fps)
        except VideoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"calibrate: {video.name}: {traces[video].classified} faces classified", file=sys.stderr, flush=True)

    configured = score(base, traces, segments, classifier.labels)
    outcomes = sweep(base, traces, segments, classifier.labels)
    picks = recommend(outcomes, args.max_false_per_hour, base)
    args.out.mkdir(parents=True, exist_ok=True)
    report = [
        f"model {classifier.card.model_id} {classifier.card.version} ({classifier.card.quantization}), "
        f"{len(segments)} rows of {args.clips}, {setup.fps:g} fps",
        "| rules | emotion | enter / release | half-life, min duration, top share | target clips alerted | time to first alert "
        "| false alerts (other footage) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(format_outcome("configured", o) for o in configured.values()),
        *(format_outcome("recommended", o) for o in picks.values()),
    ]
    print("\n".join(report))
    if not picks:
        print(f"no setting keeps every watched emotion within {args.max_false_per_hour:g} false alerts per hour; "
              "raise --max-false-per-hour or add footage", file=sys.stderr)  # fmt: skip
        return 1
    print("\n| clip | label | alerts with the recommended rules |\n| --- | --- | --- |")
    print("\n".join(per_clip(recommended_rules(base, picks), traces, segments, classifier.labels)))
    header = [f"fer-stream calibrate --clips {args.clips} --max-false-per-hour {args.max_false_per_hour:g}", report[0],
              *(f"{e}: {o.alerted} of {o.targets} target clips alert, {o.false_alerts} false alerts in "
                f"{o.other_hours * 60:.1f} min of other footage" for e, o in picks.items())]  # fmt: skip
    (args.out / "rules.yaml").write_text(rules_block(base, picks, header))
    plot_tradeoff(outcomes, picks, args.max_false_per_hour, args.out / "tradeoff.png")
    (args.out / "calibration.json").write_text(json.dumps({
        "manifest": str(args.clips), "model": f"{classifier.card.model_id} {classifier.card.version}",
        "budget_false_per_h": args.max_false_per_hour, "fps": setup.fps,
        "configured": [o.as_dict() for o in configured.values()],
        "recommended": [o.as_dict() for o in picks.values()],
        "sweep": [o.as_dict() for o in outcomes],
    }, indent=1))  # fmt: skip
    print(f"wrote {args.out / 'rules.yaml'}, {args.out / 'tradeoff.png'}, {args.out / 'calibration.json'}")
    return 0

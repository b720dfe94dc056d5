"""Replay the shared videos through detection, tracking, the model and the alert rules, offline and frame-exact.

Used to choose and check the alert defaults (docs/alerts.md): for each video it
prints how many faces were classified, how often angry/fear was the top class,
the highest *smoothed* angry and fear score any track reached (the margin to
enter_threshold), the lowest smoothed score of the alerting emotion while an
episode was open (the margin to release_threshold), when the first start alert
fired (seconds of video) and every start and end. Times are the videos' own
frame times, sampled at --fps, so the result does not depend on how busy the
machine is. --loops N plays each video N times back to back, as a camera with
``loop: true`` does (the daemon test loops the 4.7 s smiling clip).

    .venv/bin/python bench/alerts_replay.py [--model models/X.tflite] [--fps 10] [--loops 1] [--enter 0.4 --release 0.25 --min-duration 1 --half-life 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from fer_stream.alerts.config import AlertRules
from fer_stream.alerts.rules import AlertTracker
from fer_stream.config.models import DetectorSettings
from fer_stream.faces import IouTracker, create_detector, crop_face
from fer_stream.inference.engine import load_classifier
from fer_stream.preprocessing import preprocess_faces

REPO = Path(__file__).resolve().parents[1]
VIDEOS = {"angry": "angry_man.mp4", "calm": "calm_woman.mp4", "smile": "smiling_woman_phone.mp4"}
EPOCH = 1_790_000_000.0


def frames(video: Path, loops: int):
    """(seconds since the first frame, frame) over ``loops`` plays of the file, time running on across plays."""
    offset = 0.0
    for _ in range(loops):
        capture = cv2.VideoCapture(str(video))
        video_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield offset + index / video_fps, frame
            index += 1
        capture.release()
        offset += index / video_fps


def replay(video: Path, rules: AlertRules, classifier, detector_settings: DetectorSettings, fps: float, loops: int) -> dict:
    detector = create_detector(detector_settings)
    tracker = IouTracker()
    alerts = AlertTracker(rules, video.stem, classifier.labels, classifier.card.model_id, classifier.card.version, host="bench")
    watched = {name: classifier.labels.index(name) for name in rules.watched}
    top_counts = {name: 0 for name in watched}
    peak_smoothed = {name: 0.0 for name in watched}
    lowest_in_episode: dict[str, float] = {}
    open_episodes: set[tuple[int, str]] = set()
    classified, starts, ends, first_start, next_sample = 0, [], [], None, 0.0
    for t_video, frame in frames(video, loops):
        if t_video + 1e-9 < next_sample:
            continue
        next_sample += 1.0 / fps
        t = EPOCH + t_video
        update = tracker.update(detector.detect(frame), t)
        faces = [track for track in update.active if track.last_seen == t]
        if faces:
            probs = classifier.predict(preprocess_faces([crop_face(frame, f.box) for f in faces], classifier.input_size))
            for face, p in zip(faces, probs):
                classified += 1
                for name, i in watched.items():
                    top_counts[name] += int(np.argmax(p) == i)
                events = alerts.observe(face.track_id, p, t, face.box, (frame.shape[1], frame.shape[0]))
                for name, score in alerts.smoothed(face.track_id).items():
                    peak_smoothed[name] = max(peak_smoothed[name], score)
                for event in events:
                    key = (event.track_id, event.emotion)
                    if event.event == "start":
                        starts.append((*key, round(t_video, 2)))
                        first_start = t_video if first_start is None else first_start
                        open_episodes.add(key)
                    else:
                        ends.append((*key, round(t_video, 2)))
                        open_episodes.discard(key)
                smoothed = alerts.smoothed(face.track_id)
                for name in [name for track_id, name in open_episodes if track_id == face.track_id]:
                    lowest_in_episode[name] = min(lowest_in_episode.get(name, 1.0), smoothed[name])
        for track_id in update.ended:
            for event in alerts.forget(track_id, t):
                ends.append((event.track_id, event.emotion, round(t_video, 2)))
                open_episodes.discard((event.track_id, event.emotion))
    ends += [(event.track_id, event.emotion, "end of file") for event in alerts.forget_all(EPOCH + t_video)]
    return {
        "video": video.name,
        "faces_classified": classified,
        "top_share": {k: round(v / max(classified, 1), 3) for k, v in top_counts.items()},
        "peak_smoothed": {k: round(v, 3) for k, v in peak_smoothed.items()},
        "lowest_smoothed_in_episode": {k: round(v, 3) for k, v in lowest_in_episode.items()},
        "first_start_s": None if first_start is None else round(first_start, 2),
        "starts": starts,
        "ends": ends,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_shared = Path(os.environ.get("FER_STREAM_SHARED", REPO.parent / "shared"))
    parser.add_argument("--shared", type=Path, default=default_shared)
    parser.add_argument("--model", type=Path, help="exported model (default: the shipped one)")
    parser.add_argument("--fps", type=float, default=10.0, help="classifications per second, as camera fps")
    parser.add_argument("--loops", type=int, default=1, help="play each video this many times back to back")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    defaults = AlertRules()
    parser.add_argument("--enter", type=float, default=defaults.enter_threshold)
    parser.add_argument("--release", type=float, default=defaults.release_threshold)
    parser.add_argument("--min-duration", type=float, default=defaults.min_duration_s)
    parser.add_argument("--min-observations", type=int, default=defaults.min_observations)
    parser.add_argument("--half-life", type=float, default=defaults.smoothing_half_life_s)
    args = parser.parse_args(argv)
    rules = AlertRules(
        enter_threshold=args.enter,
        release_threshold=args.release,
        min_duration_s=args.min_duration,
        min_observations=args.min_observations,
        smoothing_half_life_s=args.half_life,
    )
    classifier = load_classifier(args.model, backend="litert")
    detector = DetectorSettings(backend="yunet", model_path=args.shared / "models" / "face_detection_yunet.onnx")
    results = [replay(args.shared / "media" / name, rules, classifier, detector, args.fps, args.loops) for name in VIDEOS.values()]
    if args.json:
        print(json.dumps({"model": repr(classifier), "rules": rules.model_dump(), "results": results}, indent=2))
        return 0
    print(f"model: {classifier!r}\nrules: {rules.model_dump()}\nfps: {args.fps}, loops: {args.loops}\n")
    print("| video | faces | top-1 angry / fear | peak smoothed angry / fear | lowest smoothed in episode "
          "| first start (s of video) | starts (track, emotion, s) | ends |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        top, peak = r["top_share"], r["peak_smoothed"]
        lowest = ", ".join(f"{k} {v}" for k, v in r["lowest_smoothed_in_episode"].items()) or "-"
        print(f"| {r['video']} | {r['faces_classified']} | {top.get('angry', '-')} / {top.get('fear', '-')} "
              f"| {peak.get('angry', '-')} / {peak.get('fear', '-')} | {lowest} | {r['first_start_s']} "
              f"| {r['starts']} | {r['ends']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

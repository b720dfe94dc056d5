"""Stream benchmark: the whole daemon on file cameras, against the ``fer`` package's per-frame loop.

Three measurements, each scenario in a fresh subprocess (fresh metrics):

1. ``throughput``: N file cameras (the shared videos, looped) read with
   ``realtime: false``, which hands every frame over in order (lockstep), for
   ``--seconds``. Aggregate processed (detected + tracked + classified)
   frames/s, classified faces/s, mean inference batch size, capture-to-result
   latency p50/p95/p99.
2. ``fer``: ``FER().detect_emotions(frame)`` on every frame of the same videos
   (or the first ``--fer-frames``), one frame at a time, in the same run.
   It also runs as one process per video (``fer_parallel``), the parallelism a user of
   several cameras would give it.
3. ``capacity``: N real-time cameras at 10 fps, 640x360 (a shared video
   resized to that size, looped), for increasing N; a load is sustained when
   every camera processes >= 95% of its 10 fps and no queue dropped work.
   The latency target is read at half the largest sustained load (run once
   more if that count was not in the list).

Before the capacity runs, ``stage_costs`` times each stage alone per frame (decode, detect,
track, crop, classify) in one process; ``ceiling_cameras`` = cores x 1000 ms / (10 fps x their
sum) is the most the machine could serve, and ``share_of_ceiling`` is what the daemon sustains
of it. With ``--detect-every k`` the detector runs on one frame in k, so the sum counts detect / k
(``ceiling_cameras``), and ``ceiling_detect_every_frame`` keeps the ceiling of detecting on
every frame.

4. ``site`` (``--site``): a mixed site of N real-time cameras where one camera in five shows a
   person (the capacity test's clip) and the others an empty room (``empty_room_video``: a
   generated room with sensor noise, lighting drift and a shadow passing every 15 s, at the
   clip's 30 fps), for each N. Besides what a capacity run reports, each camera process's CPU
   (``/proc``), so the cost of an idle camera is set against an active one.
5. ``first_classification``: a person walks into a still, empty room (the room video's
   frames, then the clip pasted in), through the default camera pipeline with YuNet: frame
   time from the person's first frame to the face's first crop sent to the classifier, for
   entries at five successive frames (every phase of the detection cadence).

Every scenario uses ``detector.detect_width`` = ``--detect-width`` (default
640, the configuration's default; 0 = full resolution) and ``detector.detect_every`` =
``--detect-every`` (default: the configuration's default); ``--track-guided`` turns on
track-guided detection, ``--plain`` turns off the motion gate and per-face classification rates,
for side-by-side runs.

The ceilings count what each frame of a workload costs: ``stage_costs`` times a full-frame scan,
a window search around one face, the motion gate and the other stages, and each run's own
counters say how often each happened (full scans and window searches per frame, faces
classified per frame); ``ceiling_cameras`` uses the mix of the largest sustained all-faces run,
``site_ceiling_cameras`` that of the largest sustained site run.

Latency percentiles come from the ``fer_end_to_end_latency_seconds`` histogram,
interpolated within buckets like Prometheus' ``histogram_quantile``.

    .venv/bin/python bench/bench_stream.py --cameras 4 --capacity 4,8,12,16,20,24 --out /tmp/bench_stream.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from fer_stream.config.models import DetectorSettings, OverloadSettings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FER_STREAM_SHARED", REPO.parent / "shared"))
VIDEOS = ["angry_man.mp4", "calm_woman.mp4", "smiling_woman_phone.mp4"]
YUNET = SHARED / "models" / "face_detection_yunet.onnx"


# --- one daemon scenario (runs in its own process) -----------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scenario(config_text: str, seconds: float | None) -> dict:
    """Run the daemon in this process on ``config_text``; return its metrics over the measured window.

    The window starts once every camera is up (process started, detector
    loaded, first frame read), so start-up is not counted against throughput.
    """
    from fer_stream.supervisor.metrics_dir import ensure_multiprocess_metrics

    metrics_dir = ensure_multiprocess_metrics()
    from fer_stream.config import parse_config
    from fer_stream.supervisor.daemon import Daemon, camera_worker_name

    config = parse_config(config_text)
    daemon = Daemon(config, metrics_dir, "WARNING")
    daemon.start()  # returns once the model is loaded, then starts the cameras
    stop = threading.Event()
    try:
        warmup_deadline = time.monotonic() + 300
        while not all(daemon.state.camera_up(c) for c in daemon.cameras) and time.monotonic() < warmup_deadline:
            daemon.tick()
        pids = {c: daemon.children[camera_worker_name(c)].process.pid for c in daemon.cameras}
        before = samples(metrics_dir)
        cpu_before = {c: cpu_seconds(pid) for c, pid in pids.items()}
        started = time.monotonic()
        daemon.run(stop, None if seconds is None else started + seconds)
        wall = time.monotonic() - started
        cpu = {c: round((cpu_seconds(pid) - cpu_before[c]) / wall, 4) for c, pid in pids.items()}
        after = samples(metrics_dir)
        return {**summarize(before, after, wall, daemon), "cpu_per_camera": cpu}
    finally:
        daemon.shutdown()


def samples(metrics_dir: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    out: dict[tuple[str, tuple], float] = {}
    for family in registry.collect():
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            out[key] = out.get(key, 0.0) + s.value
    return out


def summarize(before: dict, after: dict, wall: float, daemon) -> dict:
    """Counter and histogram increases over the window."""
    delta = [(name, dict(labels), value - before.get((name, labels), 0.0)) for (name, labels), value in after.items()]

    def total(name: str, **labels: str) -> float:
        return sum(v for n, lab, v in delta if n == name and all(lab.get(k) == w for k, w in labels.items()))

    buckets: dict[float, float] = {}
    for n, lab, v in delta:
        if n == "fer_end_to_end_latency_seconds_bucket":
            le = float(lab["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    return {
        "wall_s": round(wall, 2),
        "frames_processed": total("fer_camera_frames_processed_total"),
        "frames_read": total("fer_camera_frames_read_total"),
        "faces_detected": total("fer_faces_detected_total"),
        "faces_classified": total("fer_faces_classified_total"),
        "frames_idle": total("fer_camera_frames_idle_total"),
        "full_scans": total("fer_detector_runs_total", scan="full"),
        "window_searches": total("fer_detector_runs_total", scan="around"),
        "frames_per_camera": {c: total("fer_camera_frames_processed_total", camera=c) for c in daemon.cameras},
        "queue_dropped": total("fer_queue_dropped_total"),
        "mean_batch_size": round(total("fer_inference_batch_size_sum") / max(1.0, total("fer_inference_batch_size_count")), 2),
        "batches": total("fer_inference_batch_size_count"),
        "latency_s": {f"p{q}": quantile(buckets, q / 100) for q in (50, 95, 99)},
        "model": daemon.card.model_id + " " + daemon.card.version,
    }


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """histogram_quantile over cumulative buckets (linear within the bucket)."""
    edges = sorted(buckets)
    count = buckets.get(float("inf"), 0.0)
    if not count:
        return None
    rank, lower, below = q * count, 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            return round(lower + (edge - lower) * (rank - below) / max(buckets[edge] - below, 1e-9), 4)
        lower, below = edge, buckets[edge]
    return None


def camera_yaml(name: str, source: Path, *, realtime: bool, loop: bool, fps: float) -> str:
    return (f"  - name: {name}\n    source: {source}\n    realtime: {str(realtime).lower()}\n"
            f"    loop: {str(loop).lower()}\n    fps: {fps}\n")


def config_yaml(cameras: str, max_batch: int, max_wait_ms: float, detect_width: int | None, detect_every: int,
                max_latency_s: float = OverloadSettings().max_latency_s, plain: bool = False, track_guided: bool = False) -> str:
    width = "null" if detect_width is None else detect_width
    plain_yaml = "motion:\n  enabled: false\nclassification:\n  adaptive: false\n" if plain else ""
    return (f"detector:\n  backend: yunet\n  model_path: {YUNET}\n  detect_width: {width}\n  detect_every: {detect_every}\n"
            f"  track_guided: {str(track_guided).lower()}\n{plain_yaml}"
            f"overload:\n  max_latency_s: {max_latency_s}\n"
            f"inference:\n  max_batch_size: {max_batch}\n  max_wait_ms: {max_wait_ms}\n"
            f"http:\n  host: 127.0.0.1\n  port: 0\n"
            f"alerts:\n  enabled: false\n"
            f"cameras:\n{cameras}")


def run_scenario(config_text: str, seconds: float | None) -> dict:
    """A scenario in a fresh interpreter, so every run starts with empty metrics."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, __file__, "_scenario", "--seconds", str(seconds or 0)],
        input=config_text, capture_output=True, text=True, env=env, timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scenario failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the fer package's loop ------------------------------------------------------


def fer_loop(videos: list[Path], max_frames: int | None) -> dict:
    import cv2
    from fer.fer import FER

    detector = FER()
    frames = faces = 0
    started = time.monotonic()
    for video in videos:
        capture = cv2.VideoCapture(str(video))
        n = 0
        while max_frames is None or n < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            faces += len(detector.detect_emotions(frame))
            frames += 1
            n += 1
        capture.release()
    wall = time.monotonic() - started
    return {"frames": frames, "faces": faces, "wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 1),
            "faces_per_s": round(faces / wall, 1)}


def _fer_one(video: str, max_frames: int | None, queue) -> None:
    queue.put(fer_loop([Path(video)], max_frames))


def fer_parallel(videos: list[Path], max_frames: int | None) -> dict:
    """The fer loop as one process per video, as a user would run it on several cameras: the cores fer-stream gets."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    started = time.monotonic()
    workers = [ctx.Process(target=_fer_one, args=(str(v), max_frames, queue)) for v in videos]
    for worker in workers:
        worker.start()
    parts = [queue.get(timeout=1800) for _ in workers]
    for worker in workers:
        worker.join()
    wall = time.monotonic() - started
    # Each process times its own loop after loading its model; running side by side, their rates add up.
    return {"processes": len(workers), "frames": sum(p["frames"] for p in parts), "wall_s": round(wall, 2),
            "frames_per_s": round(sum(p["frames_per_s"] for p in parts), 1)}


# --- the machine's ceiling: each stage alone, per frame ----------------------------------


def stage_costs(video: Path, detect_width: int | None, frames: int = 150) -> dict:
    """Milliseconds per frame of each stage alone, in one process, with the product's own parts.

    Decode (FFmpeg through OpenCV), the motion gate, detect (a full-frame YuNet scan at
    ``detect_width``), a window search around each tracked face instead (``detect_around``),
    track (IoU), crop and prepare each face, classify each face as the daemon does
    (mirror-averaged, calibrated).
    """
    import cv2
    import numpy as np

    from fer_stream.config.models import MotionSettings
    from fer_stream.faces import IouTracker, create_detector, crop_face
    from fer_stream.faces.motion import MotionGate
    from fer_stream.inference.engine import load_classifier
    from fer_stream.preprocessing import prepare_face, to_model_input

    cv2.setNumThreads(1)
    detector = create_detector(DetectorSettings(backend="yunet", model_path=YUNET, detect_width=detect_width))
    tracker, classifier = IouTracker(min_hits=1), load_classifier(None, backend="litert", num_threads=1)
    gate = MotionGate(MotionSettings())
    totals = {"decode": 0.0, "motion": 0.0, "detect": 0.0, "detect_around": 0.0, "track": 0.0, "crop": 0.0, "classify": 0.0}
    capture, done, faces = cv2.VideoCapture(str(video)), 0, 0
    clock = time.perf_counter
    while done < frames:
        t0 = clock()
        ok, frame = capture.read()
        if not ok:
            capture.release()
            capture = cv2.VideoCapture(str(video))
            continue
        t1 = clock()
        gate.update(frame)
        t2 = clock()
        detections = detector.detect(frame)
        t3 = clock()
        detector.detect_around(frame, [d.box for d in detections])
        t4 = clock()
        update = tracker.update(detections, done / 10)
        t5 = clock()
        crops = [prepare_face(crop_face(frame, track.box), classifier.input_size) for track in update.active]
        t6 = clock()
        if crops:
            classifier.predict(to_model_input(np.stack(crops)))
        t7 = clock()
        for stage, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6), strict=True):
            totals[stage] += seconds
        done += 1
        faces += len(crops)
    capture.release()
    per_frame = {stage: round(1000 * seconds / done, 3) for stage, seconds in totals.items()}
    every_stage = sum(v for k, v in per_frame.items() if k not in ("motion", "detect_around"))
    return {"frames": done, "faces_per_frame": round(faces / done, 2), "ms_per_frame": per_frame,
            "sum_ms": round(every_stage, 3)}


def frame_cost_ms(costs: dict, run: dict, *, plain: bool) -> float:
    """What an average processed frame of ``run`` cost, from the stages' costs and how often the run used each.

    Decode and (unless ``plain``) the motion gate on every frame; a full scan or a window search on the frames
    the run's counters say; track on every frame that was not idle; crop and classify per classified face.
    """
    ms, frames = costs["ms_per_frame"], max(run["frames_processed"], 1.0)
    faces = run["faces_classified"] / frames / max(costs["faces_per_frame"], 1e-9)
    busy = 1 - run["frames_idle"] / frames
    return (ms["decode"] + (0 if plain else ms["motion"]) + ms["detect"] * run["full_scans"] / frames
            + ms["detect_around"] * run["window_searches"] / frames + ms["track"] * busy
            + (ms["crop"] + ms["classify"]) * faces)


# --- a mixed site: empty rooms ---------------------------------------------------------


def room(rng) -> object:
    """An empty room: walls in two tones, a door, a few pictures and furniture, soft edges."""
    import cv2
    import numpy as np

    image = np.zeros((360, 640, 3), np.float32)
    image[:240] = (150, 160, 170)
    image[240:] = (90, 100, 110)
    cv2.rectangle(image, (420, 60), (520, 300), (60, 80, 110), -1)
    for _ in range(6):
        x, y = int(rng.integers(20, 560)), int(rng.integers(20, 300))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(30, 120)), y + int(rng.integers(20, 80))),
                      tuple(int(c) for c in rng.integers(40, 220, 3)), -1)
    return cv2.GaussianBlur(image, (5, 5), 0)


def empty_room_video(directory: Path, seconds: float = 30.0, fps: float = 30.0) -> Path:
    """The room with what changes in an empty scene: sensor noise (4 grey levels), lighting drifting by 10% over
    the clip (and back, so it loops), and a shadow crossing the floor for 3 s every 15 s."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    base = room(rng)
    target = directory / "empty_room_640x360.mp4"
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 360))
    ys, xs = np.mgrid[0:360, 0:640]
    for i in range(int(seconds * fps)):
        t = i / fps
        frame = base * (1 + 0.05 * (1 - np.cos(2 * np.pi * t / seconds)))
        phase = (t % 15.0) / 3.0
        if phase < 1:  # a shadow of someone passing outside the view, crossing from left to right
            cx = -100 + phase * 840
            shade = np.exp(-(((xs - cx) / 90) ** 2 + ((ys - 300) / 50) ** 2))
            frame *= (1 - 0.45 * shade)[..., None]
        frame += rng.normal(0, 4, frame.shape)
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    return target


def first_classification(person_video: Path, entries: int = 5) -> dict:
    """Frame time from a person's first frame in a still, empty room to the face's first crop for the classifier.

    The default camera pipeline with YuNet at 10 fps: 3 s of the room plus k frames, then the middle third of the
    clip's frames in the room (the man and the wall behind him), for k = 0 .. entries - 1: every phase of the
    detection cadence.
    """
    import cv2
    import numpy as np

    from fer_stream.alerts.config import AlertRules
    from fer_stream.config.models import CameraConfig, CameraSettings, FaceQualitySettings, TrackingSettings
    from fer_stream.pipeline import build_pipeline

    cv2.setNumThreads(1)
    base, rng = room(np.random.default_rng(0)), np.random.default_rng(1)
    settings = CameraSettings(camera=CameraConfig(name="bench", source=0), detector=DetectorSettings(backend="yunet",
                              model_path=YUNET), tracking=TrackingSettings(), face_quality=FaceQualitySettings(),
                              alert_rules=AlertRules())  # fmt: skip
    delays = []
    for k in range(entries):
        pipeline = build_pipeline(settings, labels=["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
                                  input_size=96, model_id="bench", model_version="bench", host="bench")  # fmt: skip
        capture = cv2.VideoCapture(str(person_video))
        entered = 30 + k
        for i in range(entered + 30):
            frame = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
            if i >= entered:
                ok, person = capture.read()
                assert ok, f"{person_video} ended"
                for _ in range(2):  # the clip is 30 fps, the camera samples 10
                    capture.grab()
                frame[:, 160:480] = person[:, 160:480]  # the man and the wall behind him, the room around
            if pipeline.faces(frame, 1_790_000_000.0 + i / 10).crops:
                delays.append(round((i - entered) / 10, 2))
                break
        capture.release()
    return {"entries": entries, "delays_s": delays, "max_s": max(delays) if len(delays) == entries else None}


# --- capacity ----------------------------------------------------------------------


def realtime_video(directory: Path) -> Path:
    """The angry_man clip at 640x360 (the capacity test's camera format), written once per run."""
    import cv2

    target = directory / "camera_640x360.mp4"
    capture = cv2.VideoCapture(str(SHARED / "media" / "angry_man.mp4"))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 360))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_LINEAR))
    writer.release()
    capture.release()
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4, help="file cameras in the throughput run")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the throughput run")
    parser.add_argument("--capacity", default="4,8,12,16,20,24", help="real-time camera counts to try (comma-separated)")
    parser.add_argument("--capacity-seconds", type=float, default=30.0)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--detect-width", type=int, default=DetectorSettings().detect_width or 0,
                        help="detector.detect_width for every scenario (0 = full resolution)")
    parser.add_argument("--detect-every", type=int, default=DetectorSettings().detect_every,
                        help="detector.detect_every for every scenario")
    parser.add_argument("--max-latency", type=float, default=OverloadSettings().max_latency_s,
                        help="overload.max_latency_s for every scenario")
    parser.add_argument("--fer-frames", type=int, default=0, help="frames per video for the fer loop (0 = all)")
    parser.add_argument("--site", default="", help="mixed-site camera counts to try, one in five showing a person")
    parser.add_argument("--plain", action="store_true",
                        help="no motion gate, every face classified on every frame (and no track guidance)")
    parser.add_argument("--track-guided", action="store_true", help="detector.track_guided: true for every scenario")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()

    detect_width = args.detect_width or None
    videos = [SHARED / "media" / VIDEOS[i % len(VIDEOS)] for i in range(args.cameras)]
    results: dict = {"cpu_count": os.cpu_count(), "cameras": args.cameras, "videos": [v.name for v in videos],
                     "detect_width": detect_width, "detect_every": args.detect_every, "max_latency_s": args.max_latency,
                     "plain": args.plain, "track_guided": args.track_guided,
                     "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                     "loadavg_before": os.getloadavg()}

    # fps 240 (the config's maximum) never throttles: the cameras process every frame of the files.
    cams = "".join(camera_yaml(f"file{i}", v, realtime=False, loop=True, fps=240) for i, v in enumerate(videos))
    print(f"throughput: {args.cameras} file cameras, every frame, {args.seconds:.0f} s ...", flush=True)
    ours = run_scenario(config_yaml(cams, args.max_batch, args.max_wait_ms, detect_width, args.detect_every,
                                   args.max_latency, args.plain, args.track_guided), args.seconds)
    ours["frames_per_s"] = round(ours["frames_processed"] / ours["wall_s"], 1)
    ours["faces_per_s"] = round(ours["faces_classified"] / ours["wall_s"], 1)
    ours["loadavg_after"] = os.getloadavg()
    results["fer_stream"] = ours
    print(json.dumps(ours), flush=True)

    if importlib.util.find_spec("fer") is None:
        print("the fer package is not installed (pip install fer): no comparison with its loop", flush=True)
    else:
        print("fer package: FER().detect_emotions(frame) per frame over the same videos ...", flush=True)
        results["fer_package"] = fer = fer_loop(videos, args.fer_frames or None)
        fer["loadavg_after"] = os.getloadavg()
        print(json.dumps(fer), flush=True)
        results["speedup_frames_per_s"] = round(ours["frames_per_s"] / fer["frames_per_s"], 2)
        print(f"fer package, one process per video ({len(videos)} processes) ...", flush=True)
        results["fer_parallel"] = fer_par = fer_parallel(videos, args.fer_frames or None)
        print(json.dumps(fer_par), flush=True)
        results["speedup_vs_parallel_fer"] = round(ours["frames_per_s"] / fer_par["frames_per_s"], 2)

    results["capacity"] = []
    with tempfile.TemporaryDirectory() as tmp:
        video = realtime_video(Path(tmp))

        empty = empty_room_video(Path(tmp))

        def realtime_run(n: int, site: bool = False) -> dict:
            """N cameras of the clip; with ``site``, every 5th one the clip and the others the empty room."""
            cams = "".join(camera_yaml(f"rt{i}", empty if site and i % 5 else video, realtime=True, loop=True, fps=10)
                           for i in range(n))  # fmt: skip
            what = "mixed-site" if site else "real-time"
            print(f"{'site' if site else 'capacity'}: {n} {what} cameras at 10 fps, 640x360, {args.capacity_seconds:.0f} s ...",
                  flush=True)
            run = run_scenario(config_yaml(cams, args.max_batch, args.max_wait_ms, detect_width, args.detect_every,
                                           args.max_latency, args.plain, args.track_guided), args.capacity_seconds)
            per_camera = [f / run["wall_s"] for f in run["frames_per_camera"].values()]
            run["min_camera_fps"] = round(min(per_camera), 2)
            run["max_camera_fps"] = round(max(per_camera), 2)
            run["sustained"] = run["min_camera_fps"] >= 9.5 and run["queue_dropped"] == 0
            run["n"] = n
            if site:
                active = [cpu for c, cpu in run["cpu_per_camera"].items() if int(c[2:]) % 5 == 0]
                idle = [cpu for c, cpu in run["cpu_per_camera"].items() if int(c[2:]) % 5]
                run["cpu_active_camera"] = round(sum(active) / len(active), 4)
                run["cpu_idle_camera"] = round(sum(idle) / len(idle), 4) if idle else None
                run["idle_share_of_active"] = round(run["cpu_idle_camera"] / run["cpu_active_camera"], 3) if idle else None
            run["loadavg_after"] = os.getloadavg()
            print(json.dumps({k: v for k, v in run.items() if k not in ("frames_per_camera", "cpu_per_camera")}), flush=True)
            return run

        costs = results["stage_costs"] = stage_costs(video, detect_width)
        results["first_classification"] = first_classification(video)
        print(json.dumps({"stage_costs": costs, "first_classification": results["first_classification"]}), flush=True)
        cores = os.cpu_count() or 1
        results["ceiling_detect_every_frame"] = round(cores * 1000 / (10 * costs["sum_ms"]), 1)
        for n in [int(x) for x in args.capacity.split(",") if x]:
            results["capacity"].append(realtime_run(n))
        results["site"] = [realtime_run(n, site=True) for n in [int(x) for x in args.site.split(",") if x]]
        # The most 10 fps cameras the cores could serve if nothing but these stages ran: cores x 1000 ms / (fps x cost),
        # each frame's cost from the mix of work of the largest sustained run (the first run when none was sustained).
        for key, runs in (("ceiling_cameras", results["capacity"]), ("site_ceiling_cameras", results["site"])):
            if runs:
                basis = max((r for r in runs if r["sustained"]), key=lambda r: r["n"], default=runs[0])
                results[f"{key}_frame_ms"] = round(frame_cost_ms(costs, basis, plain=args.plain), 3)
                results[key] = round(cores * 1000 / (10 * results[f"{key}_frame_ms"]), 1)
        site_sustained = [r["n"] for r in results["site"] if r["sustained"]]
        results["site_max_sustained_cameras"] = max(site_sustained) if site_sustained else 0
        sustained = [r["n"] for r in results["capacity"] if r["sustained"]]
        results["max_sustained_cameras"] = max(sustained) if sustained else 0
        if sustained:
            # Latency target is stated at half the sustainable load.
            half = max(1, results["max_sustained_cameras"] // 2)
            tried = [r for r in results["capacity"] if r["n"] == half]
            results["half_load"] = {"n": half, "latency_s": (tried[0] if tried else realtime_run(half))["latency_s"]}
    if results.get("ceiling_cameras"):
        results["share_of_ceiling"] = round(results["max_sustained_cameras"] / results["ceiling_cameras"], 2)
    if results.get("site_ceiling_cameras"):
        results["site_share_of_ceiling"] = round(results["site_max_sustained_cameras"] / results["site_ceiling_cameras"], 2)
    keys = ("speedup_frames_per_s", "speedup_vs_parallel_fer", "max_sustained_cameras", "ceiling_cameras",
            "share_of_ceiling", "half_load", "site_max_sustained_cameras", "site_ceiling_cameras", "site_share_of_ceiling",
            "first_classification")
    print(json.dumps({k: results.get(k) for k in keys}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_scenario":
        seconds = float(sys.argv[sys.argv.index("--seconds") + 1])
        print(json.dumps(scenario(sys.stdin.read(), seconds or None)))
        sys.exit(0)
    sys.exit(main())

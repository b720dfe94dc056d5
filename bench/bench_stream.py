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

Every scenario uses ``detector.detect_width`` = ``--detect-width`` (default
640, the configuration's default; 0 = full resolution) and ``detector.detect_every`` =
``--detect-every`` (default: the configuration's default).

Latency percentiles come from the ``fer_end_to_end_latency_seconds`` histogram,
interpolated within buckets like Prometheus' ``histogram_quantile``.

    .venv/bin/python bench/bench_stream.py --cameras 4 --capacity 4,8,12,16,20,24 --out /tmp/bench_stream.json
"""

from __future__ import annotations

import argparse
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


def scenario(config_text: str, seconds: float | None) -> dict:
    """Run the daemon in this process on ``config_text``; return its metrics over the measured window.

    The window starts once every camera is up (process started, detector
    loaded, first frame read), so start-up is not counted against throughput.
    """
    from fer_stream.supervisor.metrics_dir import ensure_multiprocess_metrics

    metrics_dir = ensure_multiprocess_metrics()
    from fer_stream.config import parse_config
    from fer_stream.supervisor.daemon import Daemon

    config = parse_config(config_text)
    daemon = Daemon(config, metrics_dir, "WARNING")
    daemon.start()  # returns once the model is loaded, then starts the cameras
    stop = threading.Event()
    try:
        warmup_deadline = time.monotonic() + 120
        while not all(daemon.state.camera_up(c) for c in daemon.cameras) and time.monotonic() < warmup_deadline:
            daemon.tick()
        before = samples(metrics_dir)
        started = time.monotonic()
        daemon.run(stop, None if seconds is None else started + seconds)
        wall = time.monotonic() - started
        after = samples(metrics_dir)
        return summarize(before, after, wall, daemon)
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
                max_latency_s: float = OverloadSettings().max_latency_s) -> str:
    width = "null" if detect_width is None else detect_width
    return (f"detector:\n  backend: yunet\n  model_path: {YUNET}\n  detect_width: {width}\n  detect_every: {detect_every}\n"
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

    Decode (FFmpeg through OpenCV), detect (YuNet at ``detect_width``), track (IoU), crop and
    prepare each face, classify each face as the daemon does (mirror-averaged, calibrated).
    """
    import cv2
    import numpy as np

    from fer_stream.faces import IouTracker, create_detector, crop_face
    from fer_stream.inference.engine import load_classifier
    from fer_stream.preprocessing import prepare_face, to_model_input

    cv2.setNumThreads(1)
    detector = create_detector(DetectorSettings(backend="yunet", model_path=YUNET, detect_width=detect_width))
    tracker, classifier = IouTracker(min_hits=1), load_classifier(None, backend="litert", num_threads=1)
    totals = {"decode": 0.0, "detect": 0.0, "track": 0.0, "crop": 0.0, "classify": 0.0}
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
        detections = detector.detect(frame)
        t2 = clock()
        update = tracker.update(detections, done / 10)
        t3 = clock()
        crops = [prepare_face(crop_face(frame, track.box), classifier.input_size) for track in update.active]
        t4 = clock()
        if crops:
            classifier.predict(to_model_input(np.stack(crops)))
        t5 = clock()
        for stage, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            totals[stage] += seconds
        done += 1
        faces += len(crops)
    capture.release()
    per_frame = {stage: round(1000 * seconds / done, 3) for stage, seconds in totals.items()}
    return {"frames": done, "faces_per_frame": round(faces / done, 2), "ms_per_frame": per_frame,
            "sum_ms": round(sum(per_frame.values()), 3)}


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
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()

    detect_width = args.detect_width or None
    videos = [SHARED / "media" / VIDEOS[i % len(VIDEOS)] for i in range(args.cameras)]
    results: dict = {"cpu_count": os.cpu_count(), "cameras": args.cameras, "videos": [v.name for v in videos],
                     "detect_width": detect_width, "detect_every": args.detect_every, "max_latency_s": args.max_latency,
                     "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                     "loadavg_before": os.getloadavg()}

    # fps 240 (the config's maximum) never throttles: the cameras process every frame of the files.
    cams = "".join(camera_yaml(f"file{i}", v, realtime=False, loop=True, fps=240) for i, v in enumerate(videos))
    print(f"throughput: {args.cameras} file cameras, every frame, {args.seconds:.0f} s ...", flush=True)
    ours = run_scenario(config_yaml(cams, args.max_batch, args.max_wait_ms, detect_width, args.detect_every,
                                   args.max_latency), args.seconds)
    ours["frames_per_s"] = round(ours["frames_processed"] / ours["wall_s"], 1)
    ours["faces_per_s"] = round(ours["faces_classified"] / ours["wall_s"], 1)
    ours["loadavg_after"] = os.getloadavg()
    results["fer_stream"] = ours
    print(json.dumps(ours), flush=True)

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

        def realtime_run(n: int) -> dict:
            cams = "".join(camera_yaml(f"rt{i}", video, realtime=True, loop=True, fps=10) for i in range(n))
            print(f"capacity: {n} real-time cameras at 10 fps, 640x360, {args.capacity_seconds:.0f} s ...", flush=True)
            run = run_scenario(config_yaml(cams, args.max_batch, args.max_wait_ms, detect_width, args.detect_every,
                                           args.max_latency), args.capacity_seconds)
            per_camera = [f / run["wall_s"] for f in run["frames_per_camera"].values()]
            run["min_camera_fps"] = round(min(per_camera), 2)
            run["sustained"] = run["min_camera_fps"] >= 9.5 and run["queue_dropped"] == 0
            run["n"] = n
            run["loadavg_after"] = os.getloadavg()
            print(json.dumps(run), flush=True)
            return run

        costs = results["stage_costs"] = stage_costs(video, detect_width)
        # The most 10 fps cameras the cores could serve if nothing but these stages ran: cores x 1000 ms / (fps x cost).
        cores = os.cpu_count() or 1
        per_frame = costs["sum_ms"] - costs["ms_per_frame"]["detect"] * (1 - 1 / args.detect_every)
        results["ceiling_cameras"] = round(cores * 1000 / (10 * per_frame), 1)
        results["ceiling_detect_every_frame"] = round(cores * 1000 / (10 * costs["sum_ms"]), 1)
        print(json.dumps({"stage_costs": costs, "ceiling_cameras": results["ceiling_cameras"]}), flush=True)
        for n in [int(x) for x in args.capacity.split(",") if x]:
            results["capacity"].append(realtime_run(n))
        sustained = [r["n"] for r in results["capacity"] if r["sustained"]]
        results["max_sustained_cameras"] = max(sustained) if sustained else 0
        if sustained:
            # Latency target is stated at half the sustainable load.
            half = max(1, results["max_sustained_cameras"] // 2)
            tried = [r for r in results["capacity"] if r["n"] == half]
            results["half_load"] = {"n": half, "latency_s": (tried[0] if tried else realtime_run(half))["latency_s"]}
    if results.get("ceiling_cameras"):
        results["share_of_ceiling"] = round(results["max_sustained_cameras"] / results["ceiling_cameras"], 2)
    keys = ("speedup_frames_per_s", "speedup_vs_parallel_fer", "max_sustained_cameras", "ceiling_cameras",
            "share_of_ceiling", "half_load")
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

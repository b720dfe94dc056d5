"""``fer-train evaluate``: an exported model on a labelled directory -> metrics.json, plots, a table.

With ``--votes`` (FER+ crowd votes, ``training.votes``) it reports the same
metrics against the crowd's majority label beside the folders' labels, and for
both the trade-off an alert pays: how many calm faces the summed angry+fear
score flags to catch a given share of angry (and fear) faces
(``alert_tradeoff.png``).

The model is loaded through ``fer_stream.inference.engine.load_classifier``, the
same loader (and card checks) the daemon uses, so the numbers describe the file
that will actually run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from fer_stream.inference.engine import Classifier, load_classifier
from fer_stream.model_card import CARD_SUFFIX
from fer_stream.preprocessing import to_model_input
from training.dataset import load_faces, scan_label_folders


def predict_directory(classifier: Classifier, data_dir: str | Path, *, batch_size: int = 64, tta_flip: bool = False,
                      progress_every: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Targets and probabilities for every readable image under ``data_dir``.

    ``tta_flip`` averages each face with its mirror image. Progress goes to
    stderr every ``progress_every`` batches (0 = quiet).
    """
    files = scan_label_folders(data_dir, tuple(classifier.labels))
    faces = load_faces(files, classifier.input_size)
    n = len(faces.faces)
    n_batches = -(-n // batch_size)
    probs = np.empty((n, len(classifier.labels)), dtype=np.float32)
    started = time.monotonic()
    for b, start in enumerate(range(0, n, batch_size), 1):
        x = to_model_input(faces.faces[start:start + batch_size])
        p = classifier.predict(x)
        if tta_flip:
            p = (p + classifier.predict(np.ascontiguousarray(x[:, :, ::-1]))) / 2
        probs[start:start + len(x)] = p
        if progress_every and (b % progress_every == 0 or b == n_batches):
            done = min(start + batch_size, n)
            print(f"evaluate: {done}/{n} faces ({done / n:.0%}), {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    info = {"unreadable": [str(p) for p in faces.unreadable], "unknown_folders": files.unknown_folders,
            "empty_folders": files.empty_folders, "sources": faces.sources}
    return faces.targets, probs, info


def tradeoffs(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> list[dict]:
    """The alert's trade-off for angry, fear, and either, against neutral faces."""
    from training.reports import alert_tradeoff

    return [alert_tradeoff(y_true, probs, labels, positives=p) for p in (("angry",), ("fear",), ("angry", "fear"))]


def evaluate(data_dir: str | Path, out: str | Path, *, model: str | Path | None = None, tta_flip: bool = False,
             batch_size: int = 64, backend: str = "auto", votes: str | Path | None = None) -> dict:
    """Evaluate and write ``metrics.json``, ``confusion_matrix.png``, ``roc_curves.png`` and
    ``alert_tradeoff.png`` (with votes also ``ferplus_*``) into ``out``."""
    from training.reports import (
        compute_metrics,
        format_table,
        format_tradeoff,
        plot_alert_tradeoff,
        plot_confusion_matrix,
        plot_roc_curves,
    )
    from training.votes import VoteTable

    if backend == "auto" and model is not None:  # a named file is evaluated as itself
        backend = "tensorflow" if Path(model).name.removesuffix(CARD_SUFFIX).endswith(".keras") else "litert"
    classifier = load_classifier(model, backend=backend)
    print(f"evaluate: {classifier.model_path} ({classifier.card.model_id} {classifier.card.version}, "
          f"{classifier.card.quantization}, {classifier.backend}) on {data_dir}", file=sys.stderr, flush=True)
    started = time.monotonic()
    y_true, probs, info = predict_directory(classifier, data_dir, batch_size=batch_size, tta_flip=tta_flip, progress_every=10)
    labels = list(classifier.labels)
    metrics = compute_metrics(y_true, probs, labels)
    metrics["alert_tradeoff"] = tradeoffs(y_true, probs, labels)
    crowd = None
    if votes is not None:
        keep, majority = VoteTable.read(votes).majority_labels(info["sources"], tuple(labels))
        crowd = (majority, probs[keep])
        metrics["ferplus"] = {**compute_metrics(majority, probs[keep], labels), "votes": str(votes),
                              "alert_tradeoff": tradeoffs(majority, probs[keep], labels)}
    metrics.update(
        model={"path": str(classifier.model_path), "model_id": classifier.card.model_id, "version": classifier.card.version,
               "quantization": classifier.card.quantization, "sha256": classifier.card.sha256, "backend": classifier.backend},
        data=str(data_dir),
        tta_flip=tta_flip,
        skipped={"unreadable_images": len(info["unreadable"]), "unknown_folders": info["unknown_folders"],
                 "empty_folders": info["empty_folders"]},
        seconds=round(time.monotonic() - started, 2),
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    plot_confusion_matrix(metrics["confusion_matrix"], classifier.labels, out / "confusion_matrix.png")
    plot_roc_curves(y_true, probs, classifier.labels, out / "roc_curves.png")
    plot_alert_tradeoff(y_true, probs, labels, metrics["alert_tradeoff"], out / "alert_tradeoff.png",
                        "angry+fear score against neutral faces (folder labels)")
    print(f"labels: the folders ({metrics['n']} faces)")
    print(format_table(metrics))
    print(format_tradeoff(metrics["alert_tradeoff"]))
    written = ["metrics.json", "confusion_matrix.png", "roc_curves.png", "alert_tradeoff.png"]
    if crowd is not None:
        fp = metrics["ferplus"]
        plot_confusion_matrix(fp["confusion_matrix"], labels, out / "ferplus_confusion_matrix.png")
        plot_alert_tradeoff(*crowd, labels, fp["alert_tradeoff"], out / "ferplus_alert_tradeoff.png",
                            "angry+fear score against neutral faces (crowd majority)")
        print(f"\nlabels: the crowd's untied majority in {votes} ({fp['n']} faces)")
        print(format_table(fp))
        print(format_tradeoff(fp["alert_tradeoff"]))
        written += ["ferplus_confusion_matrix.png", "ferplus_alert_tradeoff.png"]
    print(f"wrote {', '.join(str(out / w) for w in written)}")
    return metrics

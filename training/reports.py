"""Metrics and plots for a trained model: numbers from scikit-learn, pictures from matplotlib/seaborn."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro F1, confusion matrix (rows = true label) and per-class scores.

    Every label of the model counts, also one absent from ``y_true`` (its recall
    is 0 and its ROC AUC is None, as AUC needs both positives and negatives).
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    classes = list(range(len(labels)))
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    per_class = {}
    for k, label in enumerate(labels):
        positives = y_true == k
        auc = float(roc_auc_score(positives, probs[:, k])) if 0 < positives.sum() < len(y_true) else None
        per_class[label] = {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                            "support": int(support[k]), "roc_auc": auc}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "labels": list(labels),
        "n": int(len(y_true)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
        "per_class": per_class,
    }


def format_table(metrics: dict) -> str:
    """Per-class rows and totals, for the terminal."""
    rows = [f"{'label':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'roc_auc':>7} {'support':>8}"]
    for label, m in metrics["per_class"].items():
        auc = f"{m['roc_auc']:.3f}" if m["roc_auc"] is not None else "-"
        rows.append(f"{label:<10} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {auc:>7} {m['support']:>8d}")
    per = list(metrics["per_class"].values())
    macro = {k: float(np.mean([m[k] for m in per])) for k in ("precision", "recall")}
    rows.append("-" * len(rows[0]))
    rows.append(f"{'macro avg':<10} {macro['precision']:>9.3f} {macro['recall']:>7.3f} {metrics['macro_f1']:>6.3f} "
                f"{'':>7} {metrics['n']:>8d}")
    rows.append(f"{'accuracy':<10} {'':>9} {'':>7} {metrics['accuracy']:>6.3f} {'':>7} {metrics['n']:>8d}")
    return "\n".join(rows)


def plot_confusion_matrix(matrix: list[list[int]] | np.ndarray, labels: list[str], png: str | Path) -> Path:
    """Counts and row-normalised rates (recall on the diagonal), side by side."""
    counts = np.asarray(matrix)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", xticklabels=labels, yticklabels=labels, ax=axes[0], cbar=False)
    sns.heatmap(rates, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, xticklabels=labels, yticklabels=labels, ax=axes[1])
    for ax, title in zip(axes, ("counts", "normalised by true label"), strict=True):
        ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix ({title})")
    return _save(fig, png)


def plot_roc_curves(y_true: np.ndarray, probs: np.ndarray, labels: list[str], png: str | Path) -> Path:
    """One-vs-rest ROC per class, AUC in the legend."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    fig, ax = plt.subplots(figsize=(7, 6))
    for k, label in enumerate(labels):
        positives = y_true == k
        if not 0 < positives.sum() < len(y_true):
            continue
        fpr, tpr, _ = roc_curve(positives, probs[:, k])
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(positives, probs[:, k]):.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, one vs rest", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return _save(fig, png)


#: Shares of the positive faces an alert must catch, for the trade-off table.
TRADEOFF_RECALLS = (0.7, 0.8, 0.9)


def alert_tradeoff(y_true: np.ndarray, probs: np.ndarray, labels: list[str], *, positives: tuple[str, ...],
                   watched: tuple[str, ...] = ("angry", "fear"), negative: str = "neutral") -> dict:
    """How the alert's summed score (``watched``) tells ``positives`` from calm (``negative``) faces.

    Alerts fire on angry or fear, so what an operator pays for catching angry
    faces is the share of calm faces scoring as high: for each recall in
    ``TRADEOFF_RECALLS``, the share of ``negative`` faces at or above the score
    that catches that share of ``positives``, and the ROC AUC of the two groups.
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    score = probs[:, [labels.index(w) for w in watched]].sum(axis=1)
    pos = score[np.isin(y_true, [labels.index(p) for p in positives])]
    neg = score[y_true == labels.index(negative)]
    result: dict = {"positives": list(positives), "watched": list(watched), "negative": negative,
                    "n_positive": int(len(pos)), "n_negative": int(len(neg)), "auc": None, "flagged_at_recall": {}}
    if len(pos) == 0 or len(neg) == 0:
        return result
    result["auc"] = float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))
    ranked = np.sort(pos)[::-1]
    for recall in TRADEOFF_RECALLS:
        threshold = ranked[max(int(np.ceil(recall * len(pos))) - 1, 0)]
        result["flagged_at_recall"][f"{recall:g}"] = float((neg >= threshold).mean())
    return result


def format_tradeoff(rows: list[dict]) -> str:
    """The trade-offs as a markdown table."""
    head = " | ".join(f"{negative} flagged at recall {r}" for r, negative in
                      ((f"{x:g}", rows[0]["negative"] if rows else "neutral") for x in TRADEOFF_RECALLS))
    lines = [f"| faces caught | by score | {head} | AUC |", "| --- | --- |" + " ---: |" * (len(TRADEOFF_RECALLS) + 1)]
    for r in rows:
        flagged = " | ".join(f"{r['flagged_at_recall'][f'{x:g}']:.3f}" if r["auc"] is not None else "-" for x in TRADEOFF_RECALLS)
        auc = f"{r['auc']:.3f}" if r["auc"] is not None else "-"
        lines.append(f"| {' or '.join(r['positives'])} ({r['n_positive']}) vs {r['negative']} ({r['n_negative']}) "
                     f"| {'+'.join(r['watched'])} | {flagged} | {auc} |")
    return "\n".join(lines)


def plot_alert_tradeoff(y_true: np.ndarray, probs: np.ndarray, labels: list[str], rows: list[dict], png: str | Path,
                        title: str) -> Path:
    """Recall of each row's positives against the share of calm faces flagged, one curve per row."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    fig, ax = plt.subplots(figsize=(7, 6))
    for r in rows:
        if r["auc"] is None:
            continue
        score = probs[:, [labels.index(w) for w in r["watched"]]].sum(axis=1)
        keep = np.isin(y_true, [labels.index(p) for p in r["positives"]]) | (y_true == labels.index(r["negative"]))
        fpr, tpr, _ = roc_curve(y_true[keep] != labels.index(r["negative"]), score[keep])
        ax.plot(fpr, tpr, label=f"{' or '.join(r['positives'])} (AUC {r['auc']:.3f})")
    for recall in TRADEOFF_RECALLS:
        ax.axhline(recall, color="grey", lw=0.6, ls=":")
    ax.set(xlabel=f"share of {rows[0]['negative'] if rows else 'neutral'} faces flagged",
           ylabel="share caught", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return _save(fig, png)


def plot_history(history_csv: str | Path, png: str | Path) -> Path:
    """Loss and accuracy per epoch, training and validation, from Keras' CSVLogger file."""
    with open(history_csv) as fh:
        rows = list(csv.DictReader(fh))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            if rows and key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, marker="o", markersize=3,
                        label="validation" if prefix else "training")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, png)


def _save(fig, png: str | Path) -> Path:
    png = Path(png)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png

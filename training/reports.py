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

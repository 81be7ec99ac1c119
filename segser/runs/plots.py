"""Figures people would rather look at than read: confusion matrices, accuracy bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on clusters and CI
import matplotlib.pyplot as plt
import numpy as np


def plot_confusion_matrix(
    confusion: np.ndarray, classes: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (as the paper's Figure 3), with counts when integer."""
    confusion = np.asarray(confusion, dtype=float)
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    figure, axis = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    image = axis.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(len(classes)):
        for col in range(len(classes)):
            value = normalised[row, col]
            axis.text(
                col,
                row,
                f"{100 * value:.1f}%",
                ha="center",
                va="center",
                color="white" if value > 0.5 else "black",
                fontsize=8,
            )
    axis.set_xticks(range(len(classes)), classes, rotation=30)
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title or "clip-level confusion (row-normalised)", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_accuracy_bars(
    labels: Sequence[str],
    metrics: Sequence[str],
    means: np.ndarray,
    stds: np.ndarray,
    path: Path,
    hatched: Sequence[bool] = (),
    title: str = "",
) -> Path:
    """Grouped bars, one group per metric and one bar per configuration, std as error bars.

    `means`/`stds` are (configurations, metrics); a NaN std (one run) draws no error bar.
    Hatched bars are numbers quoted from elsewhere (the paper's tables); one right after a solid
    bar shares its colour, so ours and the paper's setting read as a pair.
    """
    means = np.asarray(means, dtype=float)
    stds = np.nan_to_num(np.asarray(stds, dtype=float), nan=0.0)
    hatched = list(hatched) or [False] * len(labels)
    width = 0.8 / max(len(labels), 1)
    positions = np.arange(len(metrics))
    figure, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(metrics) * len(labels) ** 0.5), 4.6))
    colour = -1
    for i, label in enumerate(labels):
        colour += 0 if hatched[i] and i > 0 and not hatched[i - 1] else 1
        axis.bar(
            positions + (i - (len(labels) - 1) / 2) * width,
            means[i],
            width,
            yerr=stds[i],
            capsize=2,
            label=label,
            color=f"C{colour % 10}",
            hatch="//" if hatched[i] else None,
            edgecolor="black" if hatched[i] else None,
            linewidth=0.5,
        )
    axis.set_xticks(positions, metrics)
    axis.set_ylim(0.0, 1.0)
    axis.set_ylabel("accuracy (mean +- std)")
    axis.set_title(title or "accuracies per configuration", fontsize=9)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path

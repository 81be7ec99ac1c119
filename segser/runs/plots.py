"""Figures people would rather look at than read: confusion matrices, accuracy bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # headless: runs on clusters and CI
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:  # pandas only types the arguments: importing it costs every run ~0.25 s
    import pandas as pd


def plot_confusion_matrix(
    confusion: np.ndarray, classes: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (as the paper's Figure 3), each cell as a percentage."""
    confusion = np.asarray(confusion, dtype=float)
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    figure, axis = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    image = axis.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), value in np.ndenumerate(normalised):
        colour = "white" if value > 0.5 else "black"
        axis.text(col, row, f"{100 * value:.1f}%", ha="center", va="center", color=colour, size=8)
    axis.set_xticks(range(len(classes)), classes, rotation=30)
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted", ylabel="true")
    axis.set_title(title or "clip-level confusion (row-normalised)", fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_accuracy_bars(
    means: pd.DataFrame, stds: pd.DataFrame, path: Path, hatched: Sequence[bool], title: str
) -> Path:
    """Metrics along x, a bar per column, std as error; hatched (the paper's) pairs with ours."""
    pairs = np.cumsum([not (p and i and not hatched[i - 1]) for i, p in enumerate(hatched)])
    colours = [f"C{(pair - 1) % 10}" for pair in pairs]
    width = max(6.0, 1.1 * len(means) * len(means.columns) ** 0.5)
    figure, axis = plt.subplots(figsize=(width, 4.6))
    means.plot.bar(yerr=stds.fillna(0.0), capsize=2, color=colours, ax=axis, rot=0, width=0.8)
    for bar, paper in zip(axis.patches, np.repeat(hatched, len(means)), strict=True):
        if paper:  # the bars come column by column
            bar.set(hatch="//", edgecolor="black", linewidth=0.5)
    axis.set(ylim=(0.0, 1.0), ylabel="accuracy (mean +- std)")
    axis.set_title(title, fontsize=9)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path

"""Emotion over time for one recording: per-class probability against segment centre time.

Segments are pooled into at most `max_bins` time bins as they stream in, so an hour-long
recording costs the same memory and draws the same number of bars as a short one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on clusters and CI
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap


class Timeline:
    """Running mean of segment probabilities per bin of consecutive segments."""

    def __init__(
        self,
        classes: Sequence[str],
        num_segments: int,
        hop_seconds: float,
        window_seconds: float,
        max_bins: int,
    ) -> None:
        """`num_segments` is the expected count (from the file's header); it fixes the bins."""
        self.classes = list(classes)
        self.num_segments = max(1, num_segments)
        self.hop_seconds, self.window_seconds = hop_seconds, window_seconds
        self.num_bins = max(1, min(max_bins, self.num_segments))
        self.probability_sums = np.zeros((self.num_bins, len(self.classes)))
        self.centre_sums = np.zeros(self.num_bins)
        self.counts = np.zeros(self.num_bins, dtype=np.int64)

    def add(self, first_index: int, probabilities: torch.Tensor) -> None:
        """Pool a batch of consecutive segments from `first_index` on: probabilities [B, C]."""
        index = np.arange(first_index, first_index + len(probabilities))
        bins = np.minimum(index * self.num_bins // self.num_segments, self.num_bins - 1)
        centres = index * self.hop_seconds + self.window_seconds / 2
        np.add.at(self.probability_sums, bins, probabilities.double().cpu().numpy())
        np.add.at(self.centre_sums, bins, centres)
        np.add.at(self.counts, bins, 1)

    def plot(self, path: Path, title: str) -> Path:
        """Stacked per-class probability per bin, with each bin's top class in a strip above.

        Drawn as one filled step polygon per class and one image strip, so the cost does not
        grow with the number of bins.
        """
        used = self.counts > 0
        probabilities = self.probability_sums[used] / self.counts[used, None]
        width = self.hop_seconds * self.num_segments / self.num_bins
        first_centre = self.centre_sums[used][0] / self.counts[used][0]
        minutes = self.num_segments * self.hop_seconds > 600
        scale = 60.0 if minutes else 1.0
        lefts = (first_centre - width / 2 + width * np.arange(len(probabilities) + 1)) / scale
        colours = plt.get_cmap("tab10")(np.arange(len(self.classes)) % 10)
        figure, (strip, axis) = plt.subplots(
            2, 1, figsize=(9, 3.6), dpi=110, sharex=True, height_ratios=[1, 8]
        )
        stacked = np.cumsum(probabilities, axis=1)
        stacked = np.vstack([stacked, stacked[-1:]])  # step="post" needs the last right edge
        lower = np.zeros(len(lefts))
        for k, name in enumerate(self.classes):
            axis.fill_between(
                lefts, lower, stacked[:, k], step="post", color=colours[k], label=name, lw=0
            )
            lower = stacked[:, k]
        top = probabilities.argmax(axis=1)
        strip.imshow(
            top[None, :],
            aspect="auto",
            extent=(lefts[0], lefts[-1], 0, 1),
            cmap=ListedColormap(colours),
            vmin=-0.5,
            vmax=len(self.classes) - 0.5,
            interpolation="nearest",
        )
        strip.set_yticks([])
        strip.set_ylabel("top", rotation=0, ha="right", va="center", fontsize=8)
        axis.set_xlim(lefts[0], lefts[-1])
        axis.set_ylim(0, 1)
        axis.set_ylabel("probability")
        axis.set_xlabel("segment centre (min)" if minutes else "segment centre (s)")
        axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        strip.set_title(title, fontsize=9)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
        plt.close(figure)
        return path

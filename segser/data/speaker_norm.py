"""Per-speaker standardisation of embeddings: each speaker's rows scaled by their own statistics.

A common remedy for speaker variation in emotion recognition (e.g. Busso et al., 2011): the
head sees how a segment differs from that speaker's average, not the speaker's voice. A
speaker's statistics come from every clip the corpus has of them, unlabelled test audio and
emotions outside the classes included, so a run that uses it is transductive: metrics.json
records `speaker_norm: true`. Without a speaker's own audio (predict on an unknown voice), the
training statistics stand in: the mean of the training speakers' means and the root mean of
their variances, per dimension (what a typical training speaker's own statistics look like).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

MIN_STD = 1e-6
# A part of the rows: stored embeddings [rows, D], each row's speaker, and the center the
# cache subtracted before storing (float16 entries; None: rows are the embeddings).
RowPart = tuple[np.ndarray, np.ndarray, np.ndarray | None]
Statistics = dict[str, tuple[np.ndarray, np.ndarray]]


def speaker_statistics(parts: Sequence[RowPart]) -> Statistics:
    """Per speaker, over all parts: mean and std (floored) of the embeddings, float64."""
    speakers = sorted({str(s) for _, row_speaker, _ in parts for s in np.unique(row_speaker)})
    stats = {}
    for speaker in speakers:
        rows = np.concatenate(
            [
                embeddings[row_speaker == speaker].astype(np.float64) + (0.0 if c is None else c)
                for embeddings, row_speaker, c in parts
            ]
        )
        stats[speaker] = (rows.mean(0), np.maximum(rows.std(0), MIN_STD))
    return stats


def standardize_by_speaker(
    embeddings: np.ndarray,
    row_speaker: np.ndarray,
    stats: Statistics,
    center: np.ndarray | None = None,
) -> np.ndarray:
    """float32 copy of embeddings [rows, D] (+ `center`), each row standardized with its
    speaker's stats."""
    out = np.empty(embeddings.shape, dtype=np.float32)
    shift = 0.0 if center is None else center.astype(np.float64)
    for speaker in np.unique(row_speaker):
        rows = row_speaker == speaker
        mean, std = stats[str(speaker)]
        out[rows] = (embeddings[rows] - (mean - shift)) / std
    return out


def training_statistics(stats: Statistics, speakers: Sequence[str]) -> tuple[np.ndarray, ...]:
    """The stand-in for an unknown speaker: the mean of `speakers`' means, the root mean of
    their variances."""
    means = np.stack([stats[s][0] for s in speakers])
    stds = np.stack([stats[s][1] for s in speakers])
    return means.mean(0), np.sqrt(np.square(stds).mean(0))


@dataclass
class RunningMoments:
    """A speaker's mean and std accumulated batch by batch (streamed audio), in float64 and
    about a reference point near the data (the training mean), so the sums do not cancel."""

    reference: torch.Tensor
    count: int = 0
    total: torch.Tensor | None = None
    squares: torch.Tensor | None = None

    def add(self, embeddings: torch.Tensor) -> None:
        shifted = embeddings.double().cpu() - self.reference.double()
        total, squares = shifted.sum(0), shifted.square().sum(0)
        self.total = total if self.total is None else self.total + total
        self.squares = squares if self.squares is None else self.squares + squares
        self.count += len(embeddings)

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std (population, floored as in training) of what was added."""
        mean = self.total / self.count
        variance = (self.squares / self.count - mean.square()).clamp_min(0)
        return mean + self.reference.double(), variance.sqrt().clamp_min(MIN_STD)

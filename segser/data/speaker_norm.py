"""Per-speaker standardisation of embeddings: each speaker's rows scaled by their own statistics.

A common remedy for speaker variation in emotion recognition (e.g. Busso et al., 2011): the
head sees how a segment differs from that speaker's average, not the speaker's voice. The
statistics of a test speaker come from that speaker's own (unlabelled) test audio, so a run
that uses it is transductive: metrics.json records `speaker_norm: true`.
"""

from __future__ import annotations

import numpy as np

MIN_STD = 1e-6


def speaker_statistics(
    embeddings: np.ndarray, row_speaker: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per speaker: the mean and std (floored) of their rows, per dimension, in float64."""
    stats = {}
    for speaker in np.unique(row_speaker):
        rows = embeddings[row_speaker == speaker].astype(np.float64)
        stats[str(speaker)] = (rows.mean(0), np.maximum(rows.std(0), MIN_STD))
    return stats


def standardize_by_speaker(
    embeddings: np.ndarray,
    row_speaker: np.ndarray,
    stats: dict[str, tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """float32 copy of embeddings [rows, D], each row standardized with its speaker's stats."""
    out = np.empty(embeddings.shape, dtype=np.float32)
    for speaker in np.unique(row_speaker):
        rows = row_speaker == speaker
        mean, std = stats[str(speaker)]
        out[rows] = (embeddings[rows] - mean) / std
    return out

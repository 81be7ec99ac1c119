"""A clip's waveform segments as views of its samples, stored once.

Rule (segser.data.signal.segmentation's, tail included): segment i is the window of
`window_seconds` starting at i * hop, zero-padded past the clip's end. The clip's samples are
kept once, followed by zeros up to its last window's end and on to a whole number of hops, so
every segment is a strided view of that span (overlapping segments share their samples) and
spans laid end to end keep every segment start on one hop grid (segser.data.cache.waveforms).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from segser.data.signal.segmentation import SegmentationSettings, _to_samples, count_segments


class Grid(NamedTuple):
    """Window and hop of a segmentation, in samples at one rate."""

    window: int
    hop: int


def sample_grid(segmentation: SegmentationSettings, sample_rate: int) -> Grid:
    """The window and hop in samples, rounded as segment_waveform rounds them."""
    return Grid(
        _to_samples(segmentation.window_seconds, sample_rate, "window_seconds"),
        _to_samples(segmentation.hop_seconds, sample_rate, "hop_seconds"),
    )


def clip_span(
    waveform: np.ndarray, sample_rate: int, segmentation: SegmentationSettings
) -> tuple[np.ndarray, int]:
    """The clip's stored span (float32: its samples, then zeros to a whole number of hops
    past its last window's end) and its number of segments."""
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {waveform.shape}")
    window, hop = sample_grid(segmentation, sample_rate)
    count = count_segments(
        len(waveform),
        sample_rate,
        segmentation.window_seconds,
        segmentation.hop_seconds,
        segmentation.tail,
    )
    length = -(-((count - 1) * hop + window) // hop) * hop
    span = np.zeros(length, dtype=np.float32)
    kept = waveform[:length]
    span[: len(kept)] = kept
    return span, count


def window_views(samples: np.ndarray, grid: Grid) -> np.ndarray:
    """Every window on the hop grid of 1-D `samples`: [windows, window], a read-only view."""
    count = (len(samples) - grid.window) // grid.hop + 1 if len(samples) >= grid.window else 0
    step = samples.strides[0]
    return np.lib.stride_tricks.as_strided(
        samples, shape=(count, grid.window), strides=(grid.hop * step, step), writeable=False
    )


def clip_segments(
    waveform: np.ndarray, sample_rate: int, segmentation: SegmentationSettings
) -> np.ndarray:
    """Segments [num_segments, window samples] of one clip: views of one stored span."""
    span, count = clip_span(waveform, sample_rate, segmentation)
    return window_views(span, sample_grid(segmentation, sample_rate))[:count]

"""Cut a clip into fixed-length segments, the paper's unit of prediction (Section 3.1).

Rule: a window of `window_seconds` starts every `hop_seconds` from 0 while its start lies
inside the clip; the part of a window past the clip's end is zero-padded (silence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SegmentationSettings:
    """How clips are cut: windows of `window_seconds` starting every `hop_seconds`."""

    window_seconds: float = 1.0
    hop_seconds: float = 0.5


def _to_samples(seconds: float, sample_rate: int, name: str) -> int:
    samples = round(seconds * sample_rate)
    if samples < 1:
        raise ValueError(f"{name}={seconds} s is shorter than one sample at {sample_rate} Hz")
    return samples


def count_segments(
    num_samples: int, sample_rate: int, window_seconds: float, hop_seconds: float
) -> int:
    """Number of segments of a clip: one per hop whose start lies inside the clip."""
    if num_samples < 1:
        raise ValueError(f"a clip needs at least one sample, got {num_samples}")
    _to_samples(window_seconds, sample_rate, "window_seconds")
    hop = _to_samples(hop_seconds, sample_rate, "hop_seconds")
    return math.ceil(num_samples / hop)


def segment_waveform(
    waveform: torch.Tensor, sample_rate: int, window_seconds: float, hop_seconds: float
) -> torch.Tensor:
    """Stack the segments of a 1-D waveform into [num_segments, window_samples] (contiguous).

    Zero-pads the tail and slides with Tensor.unfold, so it stays on the waveform's device.
    """
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(waveform.shape)}")
    window = _to_samples(window_seconds, sample_rate, "window_seconds")
    hop = _to_samples(hop_seconds, sample_rate, "hop_seconds")
    count = count_segments(waveform.shape[0], sample_rate, window_seconds, hop_seconds)
    needed = (count - 1) * hop + window
    covered = waveform[:needed]
    padded = F.pad(covered, (0, needed - covered.shape[0]))
    return padded.unfold(0, window, hop).contiguous()

"""Cut a clip into fixed-length segments, the paper's unit of prediction (Section 3.1).

Rule: a window of `window_seconds` starts every `hop_seconds` from 0. `tail` decides where the
windows end (the paper does not say; neither reproduces its Table 1: docs/paper-differences.md):
- `pad` (default): every window whose start lies inside the clip; the part past the clip's end
  is zero-padded (silence). A 4.3 s clip gives 5 (hop 1 s) and 9 (hop 0.5 s) segments.
- `stop`: windows up to the first one that reaches the clip's end (4.3 s: 5 and 8 segments).
A clip shorter than one window gives one padded segment under both rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F

Tail = Literal["pad", "stop"]
TAILS: tuple[str, ...] = get_args(Tail)


@dataclass(frozen=True)
class SegmentationSettings:
    """How clips are cut: windows of `window_seconds` every `hop_seconds`, ended by `tail`."""

    window_seconds: float = 1.0
    hop_seconds: float = 0.5
    tail: Tail = "pad"

    def __post_init__(self) -> None:
        check_tail(self.tail)


def segmentation_settings(segmentation: Mapping[str, Any]) -> SegmentationSettings:
    """From a config or a checkpoint's; no `tail`: checkpoints saved before the option, cut
    with `pad`."""
    return SegmentationSettings(
        float(segmentation["window_seconds"]),
        float(segmentation["hop_seconds"]),
        str(segmentation.get("tail", "pad")),
    )


def check_tail(tail: str) -> None:
    if tail not in TAILS:
        raise ValueError(f"segmentation tail={tail!r} is not a rule; use one of {TAILS}")


def _to_samples(seconds: float, sample_rate: int, name: str) -> int:
    samples = round(seconds * sample_rate)
    if samples < 1:
        raise ValueError(f"{name}={seconds} s is shorter than one sample at {sample_rate} Hz")
    return samples


def count_segments(
    num_samples: int,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    tail: Tail = "pad",
) -> int:
    """Number of segments of a clip under the `tail` rule (see the module docstring)."""
    if num_samples < 1:
        raise ValueError(f"a clip needs at least one sample, got {num_samples}")
    check_tail(tail)
    window = _to_samples(window_seconds, sample_rate, "window_seconds")
    hop = _to_samples(hop_seconds, sample_rate, "hop_seconds")
    starts_inside = math.ceil(num_samples / hop)
    if tail == "pad":
        return starts_inside
    # The first window i with i * hop + window >= num_samples is the last one (if it starts inside).
    return min(starts_inside, math.ceil(max(num_samples - window, 0) / hop) + 1)


def segment_start_samples(
    num_samples: int,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    tail: Tail = "pad",
) -> range:
    """Start sample of each segment: every hop from 0, as many as count_segments gives."""
    hop = _to_samples(hop_seconds, sample_rate, "hop_seconds")
    count = count_segments(num_samples, sample_rate, window_seconds, hop_seconds, tail)
    return range(0, count * hop, hop)


def segment_starts_seconds(
    num_samples: int,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    tail: Tail = "pad",
) -> list[float]:
    """Start time of each segment; segment i covers [start, start + window_seconds)."""
    starts = segment_start_samples(num_samples, sample_rate, window_seconds, hop_seconds, tail)
    return [start / sample_rate for start in starts]


def segment_waveform(
    waveform: torch.Tensor,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    tail: Tail = "pad",
) -> torch.Tensor:
    """Stack the segments of a 1-D waveform into [num_segments, window_samples] (contiguous).

    Zero-pads the tail and slides with Tensor.unfold, so it stays on the waveform's device.
    """
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(waveform.shape)}")
    window = _to_samples(window_seconds, sample_rate, "window_seconds")
    hop = _to_samples(hop_seconds, sample_rate, "hop_seconds")
    count = count_segments(waveform.shape[0], sample_rate, window_seconds, hop_seconds, tail)
    needed = (count - 1) * hop + window
    covered = waveform[:needed]
    padded = F.pad(covered, (0, needed - covered.shape[0]))
    return padded.unfold(0, window, hop).contiguous()

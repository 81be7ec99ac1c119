"""A clip's patches from its log-mel frames, computed once per clip instead of once per segment.

Rule: segment i's patch is the 96 log-mel frames starting at its start sample. When every
start is a multiple of the 10 ms frame hop, overlapping segments share frames, so the clip's
frames are computed once (in blocks of frames, so a long recording stays small in memory) and
each patch is cut from them. Frames that reach past the clip's end see zeros, exactly as a
zero-padded segment does. Other starts fall back to one FFT pass per segment. Short clips are
laid end to end on the frame grid (`clips_patches`), so a batch of 1 s clips pays the per-call
overhead once instead of once per clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from segser.data.logmel.features import LogMelPatcher, LogMelSettings
from segser.data.signal.audio import resample
from segser.data.signal.segmentation import SegmentationSettings, Tail, _to_samples
from segser.data.signal.segmentation import segment_start_samples as _start_samples

# Frames per FFT block: ~80 s of audio, ~40 MB of work space, long enough to amortise overhead.
BLOCK_FRAMES = 8192
# A clip's frames are many small ops: on CPU, a second intra-op thread costs more in barriers
# than it gains (4-25x slower than one thread on a loaded 2-core machine).
FEATURE_CPU_THREADS = 1


def segment_start_samples(
    num_samples: int, sample_rate: int, segmentation: SegmentationSettings
) -> np.ndarray:
    """Start sample of every segment, from segmentation's own rule (its tail rule included)."""
    window, hop, tail = segmentation.window_seconds, segmentation.hop_seconds, segmentation.tail
    return np.asarray(_start_samples(num_samples, sample_rate, window, hop, tail), dtype=np.int64)


def _padded_span(waveform: torch.Tensor, begin: int, end: int) -> torch.Tensor:
    """waveform[begin:end], zero-padded where it runs past the clip's end."""
    span = waveform[begin:end]
    return F.pad(span, (0, end - begin - span.shape[0]))


def _check_window(segmentation: SegmentationSettings, patcher: LogMelPatcher) -> None:
    s = patcher.settings
    window = _to_samples(segmentation.window_seconds, s.sample_rate_hz, "window_seconds")
    if window < s.patch_samples:
        raise ValueError(
            f"window_seconds={segmentation.window_seconds} is shorter than one patch "
            f"({s.patch_samples} samples at {s.sample_rate_hz} Hz)"
        )


def _checked_starts(
    waveform: torch.Tensor, patcher: LogMelPatcher, segmentation: SegmentationSettings
) -> np.ndarray:
    """Segment start samples of a 1-D clip at the patcher's rate; ValueError for a bad clip."""
    if waveform.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(waveform.shape)}")
    _check_window(segmentation, patcher)
    return segment_start_samples(waveform.shape[0], patcher.settings.sample_rate_hz, segmentation)


def iter_clip_patches(
    waveform: torch.Tensor,
    patcher: LogMelPatcher,
    segmentation: SegmentationSettings,
    block_frames: int = BLOCK_FRAMES,
) -> Iterator[torch.Tensor]:
    """Patches [s, 96, 64] of consecutive segments of a 1-D clip at the patcher's rate."""
    starts = _checked_starts(waveform, patcher, segmentation)
    s = patcher.settings
    hop, frames_per_patch = s.stft_hop_samples, s.frames_per_patch
    audio = waveform if waveform.is_floating_point() else waveform.float()
    if np.any(starts % hop):  # segments do not share frames: one FFT pass per segment
        offsets = torch.arange(s.patch_samples, device=audio.device)
        for block in np.array_split(starts, -(-len(starts) * frames_per_patch // block_frames)):
            padded = _padded_span(audio, 0, int(block[-1]) + s.patch_samples)
            index = torch.as_tensor(block, device=audio.device)[:, None] + offsets
            yield patcher.log_mel_frames(padded[index])
        return
    start_frames = starts // hop
    first = 0
    while first < len(start_frames):
        # As many segments as fit in one block of frames (at least one).
        limit = start_frames[first] + max(block_frames, frames_per_patch) - frames_per_patch
        last = first + int(np.searchsorted(start_frames[first:], limit, side="right"))
        frame0, frame_end = int(start_frames[first]), int(start_frames[last - 1]) + frames_per_patch
        span = _padded_span(audio, frame0 * hop, (frame_end - 1) * hop + s.stft_window_samples)
        frames = patcher.log_mel_frames(span)  # [frame_end - frame0, 64]
        local = torch.as_tensor(start_frames[first:last] - frame0, device=audio.device)
        yield frames[local[:, None] + torch.arange(frames_per_patch, device=audio.device)]
        first = last


@contextmanager
def _cpu_threads(count: int, device: torch.device) -> Iterator[None]:
    """Run CPU work on `count` intra-op threads, then restore the process setting."""
    before = torch.get_num_threads()
    change = device.type == "cpu" and before != count
    if change:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


@torch.no_grad()
def clip_patches(
    waveform: torch.Tensor,
    patcher: LogMelPatcher,
    segmentation: SegmentationSettings,
    block_frames: int = BLOCK_FRAMES,
) -> torch.Tensor:
    """Patches [num_segments, 96, 64] (float32) of a 1-D clip at the patcher's sample rate."""
    with _cpu_threads(FEATURE_CPU_THREADS, waveform.device):
        return torch.cat(list(iter_clip_patches(waveform, patcher, segmentation, block_frames)))


class FrameSpan(NamedTuple):
    """A clip's samples (at most to its last frame's end) and each segment's first frame."""

    samples: torch.Tensor
    start_frames: np.ndarray

    def grid_frames(self, settings: LogMelSettings) -> int:
        """Frames of the frame grid it takes end to end: frames that start inside its samples
        (later ones read only zeros), plus room for the last of them to read zeros."""
        hop = settings.stft_hop_samples
        return -(-self.samples.shape[0] // hop) - 1 + -(-settings.stft_window_samples // hop)


def _shared_frame_span(
    waveform: torch.Tensor, patcher: LogMelPatcher, segmentation: SegmentationSettings
) -> FrameSpan | None:
    """The clip's FrameSpan when its segments share frames; None when they do not (clip_patches
    handles those)."""
    starts = _checked_starts(waveform, patcher, segmentation)
    s = patcher.settings
    hop = s.stft_hop_samples
    if np.any(starts % hop):
        return None
    start_frames = starts // hop
    span = (int(start_frames[-1]) + s.frames_per_patch - 1) * hop + s.stft_window_samples
    audio = waveform if waveform.is_floating_point() else waveform.float()
    return FrameSpan(audio[:span], start_frames)


def _joined_patches(spans: list[FrameSpan], patcher: LogMelPatcher) -> list[torch.Tensor]:
    """Patches of several clips from one log-mel pass over their samples laid end to end.

    Each clip starts on the 10 ms frame grid and is followed by zeros, so every frame that
    starts inside its samples reads only its own samples and zeros, as when it is alone. Frames
    past its end read only zeros: they all share one all-zero frame, placed last.
    """
    s = patcher.settings
    hop = s.stft_hop_samples
    offsets, pieces, position = [], [], 0  # position in frames
    for span in spans:
        offsets.append(position)
        length = span.grid_frames(s)
        pieces.append(F.pad(span.samples, (0, length * hop - span.samples.shape[0])))
        position += length
    pieces.append(pieces[0].new_zeros(s.stft_window_samples))  # the all-zero frame
    frames = patcher.log_mel_frames(torch.cat(pieces))
    silent = position
    local = np.arange(s.frames_per_patch)
    index = []
    for offset, span in zip(offsets, spans, strict=True):
        frame = span.start_frames[:, None] + local  # [segments, 96] in the clip's own frames
        inside = -(-span.samples.shape[0] // hop)
        index.append(np.where(frame < inside, offset + frame, silent))
    found = frames[torch.as_tensor(np.concatenate(index), device=frames.device)]
    return list(found.split([len(span.start_frames) for span in spans]))


@torch.no_grad()
def clips_patches(
    waveforms: Sequence[torch.Tensor],
    patcher: LogMelPatcher,
    segmentation: SegmentationSettings,
    block_frames: int = BLOCK_FRAMES,
) -> list[torch.Tensor]:
    """clip_patches of each clip; clips shorter than a block share log-mel passes."""
    if not waveforms:
        return []
    _check_window(segmentation, patcher)
    results: list[torch.Tensor | None] = [None] * len(waveforms)
    group: list[int] = []
    spans: dict[int, FrameSpan] = {}
    grouped_frames = 0

    def flush() -> None:
        for index, patches in zip(
            group, _joined_patches([spans.pop(i) for i in group], patcher), strict=True
        ):
            results[index] = patches
        group.clear()

    with _cpu_threads(FEATURE_CPU_THREADS, waveforms[0].device):
        for index, waveform in enumerate(waveforms):
            span = _shared_frame_span(waveform, patcher, segmentation)
            frames = span.grid_frames(patcher.settings) if span else 0
            if span is None or frames > block_frames:
                results[index] = clip_patches(waveform, patcher, segmentation, block_frames)
                continue
            if grouped_frames + frames > block_frames:
                flush()
                grouped_frames = 0
            spans[index] = span
            group.append(index)
            grouped_frames += frames
        if group:
            flush()
    return results  # type: ignore[return-value]


@cache
def _default_patcher(device: torch.device) -> LogMelPatcher:
    return LogMelPatcher().to(device)


def segment_patches(
    waveform: torch.Tensor | np.ndarray,
    sample_rate: int,
    window: float = 1.0,
    hop: float = 0.5,
    tail: Tail = "pad",
) -> torch.Tensor:
    """Patches [num_segments, 1, 96, 64] of a 1-D clip, one per segment (window/hop in seconds).

    The clip is resampled to 16 kHz first; segment i is the zero-padded window starting at i*hop.
    """
    audio = torch.as_tensor(waveform)
    if audio.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise ValueError(f"expected a float waveform in [-1, 1], got dtype {audio.dtype}")
    patcher = _default_patcher(audio.device)
    rate = patcher.settings.sample_rate_hz
    if sample_rate != rate:
        audio = torch.from_numpy(resample(audio.cpu().numpy(), sample_rate, rate)).to(audio.device)
    patches = clip_patches(audio, patcher, SegmentationSettings(window, hop, tail))
    return patches.unsqueeze(1)  # float32 like the reference, even from float64 audio

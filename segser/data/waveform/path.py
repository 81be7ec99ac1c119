"""The waveform path: each segment is its raw samples (wav2vec 2.0, HuBERT, WavLM read these)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from segser.data.cache.waveforms import build_or_open_waveforms
from segser.data.feature_path import FeaturePath, SegmentInputs, segment_lengths
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.waveform.segments import clip_segments, sample_grid
from segser.data.waveform.settings import WaveformSettings


class ChannelAxis(nn.Module):
    """Segments [B, samples] -> [B, 1, samples]: the mono channel raw-sample backbones take."""

    def forward(self, segments: Tensor) -> Tensor:
        return segments.unsqueeze(1)


def raw_clip_inputs(
    audio: Tensor, sample_rate: int, segmentation: SegmentationSettings
) -> SegmentInputs:
    """A clip's raw segments [n, 1, window] and their valid lengths (the cache's rule)."""
    segments = clip_segments(audio.numpy(), sample_rate, segmentation)
    window, hop = sample_grid(segmentation, sample_rate)
    starts = np.arange(len(segments), dtype=np.int64) * hop
    inputs = torch.from_numpy(np.ascontiguousarray(segments)).unsqueeze(1)
    return SegmentInputs(inputs, segment_lengths(len(audio), starts, window))


class WaveformPath(FeaturePath):
    """Each clip's samples are stored once (segments are views); the backbone normalises."""

    kind = "waveform"
    reads = "raw waveform segments"
    has_lengths = True
    cache_builder = build_or_open_waveforms

    def storage(self) -> WaveformSettings:
        """The settings the samples are stored under (shared by every raw-sample path)."""
        return WaveformSettings(sample_rate_hz=self.sample_rate_hz)

    def clip_inputs(self, audio: Tensor, segmentation: SegmentationSettings) -> SegmentInputs:
        return raw_clip_inputs(audio, self.sample_rate_hz, segmentation)

    def stream_module(self) -> nn.Module:
        return ChannelAxis()

"""The log-mel path: VGGish/YAMNet patches [1, 96, 64] per segment, computed once and cached."""

from __future__ import annotations

from torch import Tensor, nn

from segser.data.cache.patches import build_or_open_cache
from segser.data.feature_path import FeaturePath, SegmentInputs
from segser.data.logmel.clip_patches import clip_patches
from segser.data.logmel.features import LogMelPatcher, LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings


class LogMelPath(FeaturePath):
    """Patches are stored, so SpecAugment masks can perturb them; every patch is whole."""

    kind = "logmel"
    reads = "log-mel patches"
    masks = True
    settings: LogMelSettings
    cache_builder = build_or_open_cache

    def shortest_window(self) -> int:
        return self.settings.patch_samples

    def clip_inputs(self, audio: Tensor, segmentation: SegmentationSettings) -> SegmentInputs:
        patches = clip_patches(audio, LogMelPatcher(self.settings), segmentation)
        return SegmentInputs(patches.unsqueeze(1))

    def stream_module(self) -> nn.Module:
        return LogMelPatcher(self.settings)

"""What a backbone family reads, in one interface: the feature path.

A path says what is stored per segment (log-mel patches, or each clip's samples once), how
a clip's (augmented) audio becomes segment inputs, how streamed predict turns raw segments
into the model's input, and which options apply (SpecAugment masks need a spectrogram in the
cache). The datamodule, the config check, augmentation and predict ask the path; adding a
backbone family means adding one path (segser.data.features lists them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from segser.data.corpora.clips import Clip
from segser.data.signal.segmentation import SegmentationSettings


class SegmentInputs(NamedTuple):
    """A batch of backbone inputs and, for raw-sample paths, each row's valid samples
    (a zero-padded last segment has fewer); None where every row is whole by construction."""

    inputs: Tensor
    lengths: Tensor | None = None


def segment_lengths(num_samples: int, starts: Sequence[int] | np.ndarray, window: int) -> Tensor:
    """Valid samples of each segment starting at `starts` in a clip of `num_samples`."""
    starts = torch.as_tensor(np.asarray(starts, dtype=np.int64))
    return (num_samples - starts).clamp(min=0, max=window)


class FeaturePath(ABC):
    """One way from audio to a backbone's input; `settings` is conf/features as a dataclass."""

    kind: ClassVar[str]  # features.kind
    reads: ClassVar[str]  # in words, for one-line refusals
    has_lengths: ClassVar[bool] = False  # segments carry their valid sample count
    masks: ClassVar[bool] = False  # SpecAugment masks apply to what is stored

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @property
    def sample_rate_hz(self) -> int:
        return int(self.settings.sample_rate_hz)

    def shortest_window(self) -> int:
        """The fewest samples a segment may have (config check: segmentation.window_seconds)."""
        return 1

    # build_or_open_cache or build_or_open_waveforms: (clips, dir, segmentation, storage, policy)
    cache_builder: ClassVar[Callable[..., Any]]

    def storage(self) -> Any:
        """The settings the segment cache is keyed and built by (the path's own by default)."""
        return self.settings

    def open_cache(
        self,
        clips: Sequence[Clip],
        cache_dir: str | Path,
        segmentation: SegmentationSettings,
        on_bad_clip: str = "fail",
    ) -> Any:
        """The segment cache (built once, then reused) that the datamodule serves rows from."""
        builder = type(self).cache_builder
        return builder(clips, cache_dir, segmentation, self.storage(), on_bad_clip)

    @abstractmethod
    def clip_inputs(self, audio: Tensor, segmentation: SegmentationSettings) -> SegmentInputs:
        """One clip's samples [samples] at the path's rate -> its segments' backbone inputs."""

    @abstractmethod
    def stream_module(self) -> nn.Module:
        """Raw segments [B, window samples] (streamed predict) -> the backbone's input."""

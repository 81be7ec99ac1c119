"""On-disk, memory-mapped cache of log-mel patches: computed once per corpus and settings.

Layout of one cache entry `<cache_dir>/<key>/`: `patches.f32` (raw float32 rows of 96x64),
`index.npz` (row -> clip index, segment index) and `meta.json`. The key covers each clip's
path, size and mtime_ns, both settings and the resampler, so edited audio is recomputed. Entries
are built, locked, published and checked as segser.data.cache.entry describes: a broken entry
is rebuilt, never read. A build resumes from its last checkpointed clip after a kill. Clips
skipped under `on_bad_clip=skip` are recorded; opening such an entry under `fail` refuses.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from segser.data.batches import MappedRows
from segser.data.cache.entry import map_rows
from segser.data.cache.rows import RowBuild, RowCache
from segser.data.corpora.clips import BadClipPolicy, Clip
from segser.data.logmel.clip_patches import clips_patches
from segser.data.logmel.features import LogMelPatcher, LogMelSettings
from segser.data.signal.audio import RESAMPLER_ID, load_audio
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.waveform.settings import WaveformSettings
from segser.errors import BadClipError

log = logging.getLogger("segser")

CACHE_FORMAT_VERSION = 3  # 2: key covers mtime_ns, the resampler, segmentation.tail; 3: soxr
PROGRESS_EVERY_CLIPS = 64
# Clips whose patches come from one feature pass (short clips share it): at most this many, and
# no more audio than GROUP_SECONDS after the first, so long recordings go one at a time and
# memory stays bounded. A kill loses the group in flight and the groups since the checkpoint.
CLIPS_PER_GROUP = 32
GROUP_SECONDS = 60.0


def cache_key(
    clips: Sequence[Clip],
    segmentation: SegmentationSettings,
    features: LogMelSettings | WaveformSettings,
) -> str:
    """Hash of everything the patches depend on: the clips' files, both settings, the resampler."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [CACHE_FORMAT_VERSION, RESAMPLER_ID, asdict(segmentation), asdict(features)]
        ).encode()
    )
    for clip in clips:
        try:
            stat = clip.path.stat()
            size, mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:  # a missing clip is a bad clip, reported by the build
            size, mtime_ns = -1, -1
        digest.update(f"{clip.clip_id}\t{clip.path.resolve()}\t{size}\t{mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@dataclass
class PatchCache(RowCache):
    """A finished cache entry, opened read-only and memory-mapped (RAM does not grow with it)."""

    what: ClassVar[str] = "feature cache"
    format_version: ClassVar[int] = CACHE_FORMAT_VERSION
    data_name: ClassVar[str] = "patches.f32"

    patches: np.ndarray  # [rows, 96, 64] float32, memory-mapped

    @classmethod
    def open(cls, directory: Path) -> PatchCache:
        """Open and check an entry; BrokenEntry if any file is partial, truncated or corrupt."""
        shape, fields = cls.read_entry(directory, lambda m: (int(m["frames"]), int(m["bins"])))
        patches = map_rows(directory / cls.data_name, len(fields["row_clip"]), shape, np.float32)
        return cls(patches=patches, **fields)

    def rows(self) -> MappedRows:
        """What the datamodule serves batches from."""
        return MappedRows(self.patches)

    def inputs(self, start: int, stop: int) -> torch.Tensor:
        """Backbone input [rows, 1, 96, 64] of rows start..stop-1 (the embedding cache's build)."""
        return torch.from_numpy(np.array(self.patches[start:stop])).unsqueeze(1)

    def lengths(self, start: int, stop: int) -> None:
        """Every patch is whole: no valid lengths to pass (the waveform cache has them)."""
        return None


def _patches_for_clips(
    clips: Sequence[Clip], patcher: LogMelPatcher, segmentation: SegmentationSettings, rate: int
) -> list[np.ndarray | BadClipError]:
    """Patches (or the BadClipError its audio raised) of the first clips, as many as make one
    group; loaded clips share feature passes."""
    loaded, waveforms = [], []
    results: list[np.ndarray | BadClipError] = []
    samples = 0
    for clip in clips:
        if samples >= GROUP_SECONDS * rate:
            break
        try:
            waveforms.append(load_audio(clip.path, rate))
            samples += waveforms[-1].shape[0]
            loaded.append(len(results))
            results.append(np.empty(0))
        except BadClipError as error:
            results.append(error)
    for index, patches in zip(loaded, clips_patches(waveforms, patcher, segmentation), strict=True):
        results[index] = patches.numpy()
    return results


class PatchBuild(RowBuild[PatchCache]):
    """A patch entry's build: each clip's patches, short clips sharing feature passes."""

    cache = PatchCache

    @property
    def row_bytes(self) -> int:
        return self.features.frames_per_patch * self.features.num_mel_bins * 4

    @cached_property
    def patcher(self) -> LogMelPatcher:
        return LogMelPatcher(self.features)

    def compute(self, first: int) -> list[np.ndarray | BadClipError]:
        group = self.clips[first : first + CLIPS_PER_GROUP]
        rate = self.features.sample_rate_hz
        return _patches_for_clips(group, self.patcher, self.segmentation, rate)

    def append(self, state: dict, clip: int, result: np.ndarray) -> tuple[np.ndarray, int]:
        return result, len(result)

    def meta(self, state: dict) -> dict:
        return {"frames": self.features.frames_per_patch, "bins": self.features.num_mel_bins}


def build_or_open_cache(
    clips: Sequence[Clip],
    cache_dir: str | Path,
    segmentation: SegmentationSettings,
    features: LogMelSettings,
    on_bad_clip: BadClipPolicy = "fail",
) -> PatchCache:
    """Open the cache entry for these clips and settings, building (or rebuilding) it if needed.

    Under `on_bad_clip="fail"`, an entry built under "skip" that left clips out is refused.
    """
    build = PatchBuild(clips, segmentation, features, on_bad_clip)
    return build.build_or_open(
        cache_dir, cache_key(clips, segmentation, features), PROGRESS_EVERY_CLIPS
    )

"""On-disk cache of raw-waveform segments: each clip's 16 kHz samples stored once, memory-mapped.

Entry `<cache_dir>/<key>/`: `samples.f32` (every clip's span, segser.data.waveform.segments:
its resampled samples then zeros to a whole number of hops past its last window, end to end),
`index.npz` (row -> clip, segment number, window number on the hop grid, valid samples: fewer
in a zero-padded last segment) and `meta.json`. Row r
is the window of `window` samples at `window[r] * hop`: a strided view of the file, so
overlapping segments share their samples on disk and in memory. The key is the patch cache's
(clips' files, segmentation, features, resampler); built, locked, checked and resumed after a
kill as segser.data.cache.entry describes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from segser.data.batches import MappedRows
from segser.data.cache.entry import BrokenEntry, map_rows
from segser.data.cache.patches import cache_key
from segser.data.cache.rows import RowBuild, RowCache
from segser.data.corpora.clips import BadClipPolicy, Clip
from segser.data.signal.audio import load_audio
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.waveform.segments import Grid, clip_span, sample_grid, window_views
from segser.data.waveform.settings import WaveformSettings
from segser.errors import BadClipError

log = logging.getLogger("segser")

WAVEFORM_FORMAT_VERSION = 2  # 2: row_length
PROGRESS_EVERY_CLIPS = 64


class WaveformRows:
    """Rows of a waveform cache as batches [B, window] (MappedRows' interface): one gather
    from the strided view per batch; travels to loader workers as its file name."""

    add_channel = True  # served as [B, 1, samples], a mono channel like the patches' one

    def __init__(self, samples: np.ndarray, row_window: np.ndarray, grid: Grid) -> None:
        self._samples = MappedRows(samples)  # a memmap travels as its file name
        self.row_window, self.grid = row_window, grid

    @property
    def samples(self) -> np.ndarray:
        return self._samples.array

    @property
    def array(self) -> WaveformRows:
        return self

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.row_window), self.grid.window)

    itemsize = 4
    ndim = 2

    def __getitem__(self, rows: np.ndarray | slice) -> np.ndarray:
        return window_views(self.samples, self.grid)[self.row_window[rows]]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Segments [B, window] of rows `rows`: one gather from the strided view."""
        return self[rows]

    def __len__(self) -> int:
        return len(self.row_window)


@dataclass
class WaveformCache(RowCache):
    """A finished entry: the samples (memory-mapped) and the row index."""

    what: ClassVar[str] = "waveform cache"
    format_version: ClassVar[int] = WAVEFORM_FORMAT_VERSION
    data_name: ClassVar[str] = "samples.f32"
    index: ClassVar[dict[str, type]] = RowCache.index | {
        "row_window": np.int64,  # [rows] window number on the hop grid of `samples`
        "row_length": np.int32,  # [rows] the row's samples that are the clip's, not padding
    }

    samples: np.ndarray  # [samples] float32, memory-mapped
    grid: Grid
    row_window: np.ndarray
    row_length: np.ndarray

    @classmethod
    def open(cls, directory: Path) -> WaveformCache:
        """Open and check an entry; BrokenEntry if any file is partial, truncated or corrupt."""
        (length, grid), fields = cls.read_entry(
            directory,
            lambda meta: (
                int(meta["samples"]),
                Grid(int(meta["window_samples"]), int(meta["hop_samples"])),
            ),
        )
        samples = map_rows(directory / cls.data_name, length, (), np.float32)
        windows, row_window = len(window_views(samples, grid)), fields["row_window"]
        if len(row_window) and not 0 <= int(row_window.min()) <= int(row_window.max()) < windows:
            raise BrokenEntry("index.npz points past samples.f32")
        return cls(samples=samples, grid=grid, **fields)

    def rows(self) -> WaveformRows:
        """What the datamodule serves batches from."""
        return WaveformRows(self.samples, self.row_window, self.grid)

    def segments(self) -> np.ndarray:
        """Every row's segment [rows, window]: a gather of views (copies only what is read)."""
        return window_views(self.samples, self.grid)[self.row_window]

    def inputs(self, start: int, stop: int) -> torch.Tensor:
        """Backbone input [rows, 1, window] of rows start..stop-1 (the embedding cache's build)."""
        return torch.from_numpy(self.rows()[np.arange(start, stop)]).unsqueeze(1)

    def lengths(self, start: int, stop: int) -> torch.Tensor:
        """Valid samples [rows] of rows start..stop-1 (the backbone pools only those)."""
        return torch.from_numpy(self.row_length[start:stop].astype(np.int64))

    def clip_samples(self, clip: int) -> tuple[np.ndarray, np.ndarray]:
        """A clip's own samples (padding excluded) and its rows' starts within them: what a
        clip-context backbone encodes at once."""
        rows = np.flatnonzero(self.row_clip == clip)
        starts = self.row_window[rows] * self.grid.hop
        end = int(starts[-1] + self.row_length[rows[-1]])
        return self.samples[int(starts[0]) : end], starts - starts[0]


class WaveformBuild(RowBuild[WaveformCache]):
    """A waveform entry's build: each clip's span (its samples, then zeros to whole hops)."""

    cache = WaveformCache
    row_bytes = 4  # the checkpoint counts samples
    counters: ClassVar[dict[str, int]] = {"samples": 0}

    @cached_property
    def grid(self) -> Grid:
        return sample_grid(self.segmentation, self.features.sample_rate_hz)

    def compute(self, first: int) -> list[tuple[int, np.ndarray, int] | BadClipError]:
        rate = self.features.sample_rate_hz
        try:
            audio = load_audio(self.clips[first].path, rate).numpy()
            return [(len(audio), *clip_span(audio, rate, self.segmentation))]
        except BadClipError as error:
            return [error]

    def append(self, state: dict, clip: int, result: tuple) -> tuple[np.ndarray, int]:
        audio_length, span, count = result
        first_window = state["samples"] // self.grid.hop
        state["row_window"].extend(range(first_window, first_window + count))
        starts = np.arange(count) * self.grid.hop
        state["row_length"].extend(np.clip(audio_length - starts, 0, self.grid.window).tolist())
        state["samples"] += len(span)
        return span, count

    def written(self, state: dict) -> int:
        return int(state["samples"])

    def meta(self, state: dict) -> dict:
        return {
            "samples": state["samples"],
            "window_samples": self.grid.window,
            "hop_samples": self.grid.hop,
        }


def build_or_open_waveforms(
    clips: Sequence[Clip],
    cache_dir: str | Path,
    segmentation: SegmentationSettings,
    features: WaveformSettings,
    on_bad_clip: BadClipPolicy = "fail",
) -> WaveformCache:
    """Open the waveform entry for these clips and settings, building it if needed."""
    build = WaveformBuild(clips, segmentation, features, on_bad_clip)
    key = "waveform-" + cache_key(clips, segmentation, features)
    return build.build_or_open(cache_dir, key, PROGRESS_EVERY_CLIPS)

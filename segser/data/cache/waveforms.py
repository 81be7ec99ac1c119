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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from segser.data.cache.entry import (
    BrokenEntry,
    build_progress,
    checkpoint_build,
    finish_build,
    map_rows,
    open_or_build,
    read_arrays,
    read_json,
    resume_build,
    skip_or_fail,
)
from segser.data.cache.patches import cache_key, refuse_skipped
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
        self._samples: np.ndarray | None = samples
        self.row_window, self.grid = row_window, grid
        self._spec = None
        if isinstance(samples, np.memmap) and samples.filename:
            self._spec = (samples.filename, len(samples))

    @property
    def samples(self) -> np.ndarray:
        if self._samples is None:
            filename, length = self._spec
            self._samples = np.memmap(filename, dtype=np.float32, mode="r", shape=(length,))
        return self._samples

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

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._spec:
            state["_samples"] = None
        return state


@dataclass
class WaveformCache:
    """A finished entry: the samples (memory-mapped) and the row index."""

    directory: Path
    samples: np.ndarray  # [samples] float32, memory-mapped
    grid: Grid
    row_clip: np.ndarray  # [rows] int64, index into the clip table
    row_segment: np.ndarray  # [rows] int32, segment number within its clip
    row_window: np.ndarray  # [rows] int64, window number on the hop grid of `samples`
    row_length: np.ndarray  # [rows] int32, the row's samples that are the clip's, not padding
    clip_ids: list[str]
    skipped: dict[str, str]

    @classmethod
    def open(cls, directory: Path) -> WaveformCache:
        """Open and check an entry; BrokenEntry if any file is partial, truncated or corrupt."""
        meta = read_json(directory / "meta.json")
        try:
            if meta["format_version"] != WAVEFORM_FORMAT_VERSION:
                raise ValueError(f"format_version {meta['format_version']}")
            rows, length = int(meta["rows"]), int(meta["samples"])
            grid = Grid(int(meta["window_samples"]), int(meta["hop_samples"]))
            clip_ids, skipped = list(meta["clip_ids"]), dict(meta["skipped"])
        except (KeyError, TypeError, ValueError) as error:
            raise BrokenEntry(f"meta.json is incomplete ({error})") from error
        names = {"row_clip": rows, "row_segment": rows, "row_window": rows, "row_length": rows}
        index = read_arrays(directory / "index.npz", names)
        samples = map_rows(directory / "samples.f32", length, (), np.float32)
        windows = len(window_views(samples, grid))
        if (
            rows
            and not 0 <= int(index["row_window"].min()) <= int(index["row_window"].max()) < windows
        ):
            raise BrokenEntry("index.npz points past samples.f32")
        return cls(directory, samples, grid, index["row_clip"], index["row_segment"],
                   index["row_window"], index["row_length"], clip_ids, skipped)  # fmt: skip

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

    def __len__(self) -> int:
        return len(self.row_clip)

    def rows_for_clips(self, clip_indices: Sequence[int]) -> np.ndarray:
        """Rows of every segment of the given clips, in cache order."""
        return np.flatnonzero(np.isin(self.row_clip, np.asarray(clip_indices, dtype=np.int64)))

    @property
    def kept_clip_indices(self) -> list[int]:
        """Clips that have segments (bad clips skipped during the build have none)."""
        return np.unique(self.row_clip).tolist()


def _checkpointed_samples(state: dict, clips: int) -> int:
    rows = len(state["row_clip"])
    if not 0 <= state["clips_done"] <= clips or not (
        rows == len(state["row_segment"]) == len(state["row_window"]) == len(state["row_length"])
    ):
        raise BrokenEntry("progress.json does not fit the clip table")
    return int(state["samples"])


def _build(
    clips: Sequence[Clip],
    partial: Path,
    segmentation: SegmentationSettings,
    features: WaveformSettings,
    on_bad_clip: str,
) -> None:
    """Append each clip's span, checkpointing progress so a kill loses little."""
    partial.mkdir(parents=True, exist_ok=True)
    progress_path = partial / "progress.json"
    data_path = partial / "samples.f32"
    fresh = {"clips_done": 0, "samples": 0, "row_clip": [], "row_segment": [], "row_window": []}
    fresh |= {"row_length": [], "skipped": {}}
    state = resume_build(
        progress_path,
        data_path,
        4,
        fresh,
        lambda checkpoint: _checkpointed_samples(checkpoint, len(clips)),
        "waveform cache",
    )
    rate = features.sample_rate_hz
    grid = sample_grid(segmentation, rate)
    with open(data_path, "ab") as handle, build_progress("waveform cache") as bar:
        task = bar.add_task("clips", total=len(clips), completed=state["clips_done"])
        for index in range(state["clips_done"], len(clips)):
            clip = clips[index]
            try:
                audio = load_audio(clip.path, rate).numpy()
                span, count = clip_span(audio, rate, segmentation)
            except BadClipError as error:
                skip_or_fail(error, clip.clip_id, on_bad_clip, handle, progress_path, state)
            else:
                handle.write(span.tobytes())
                first_window = state["samples"] // grid.hop
                state["row_clip"].extend([index] * count)
                state["row_segment"].extend(range(count))
                state["row_window"].extend(range(first_window, first_window + count))
                starts = np.arange(count) * grid.hop
                state["row_length"].extend(np.clip(len(audio) - starts, 0, grid.window).tolist())
                state["samples"] += len(span)
            state["clips_done"] = index + 1
            if state["clips_done"] % PROGRESS_EVERY_CLIPS == 0:
                checkpoint_build(handle, progress_path, state)
            bar.advance(task)
        checkpoint_build(handle, progress_path, state)
    np.savez(
        partial / "index.npz",
        row_clip=np.asarray(state["row_clip"], dtype=np.int64),
        row_segment=np.asarray(state["row_segment"], dtype=np.int32),
        row_window=np.asarray(state["row_window"], dtype=np.int64),
        row_length=np.asarray(state["row_length"], dtype=np.int32),
    )
    meta = {
        "format_version": WAVEFORM_FORMAT_VERSION,
        "rows": len(state["row_clip"]),
        "samples": state["samples"],
        "window_samples": grid.window,
        "hop_samples": grid.hop,
        "clip_ids": [c.clip_id for c in clips],
        "skipped": state["skipped"],
        "segmentation": asdict(segmentation),
        "features": asdict(features),
    }
    finish_build(progress_path, meta)


def build_or_open_waveforms(
    clips: Sequence[Clip],
    cache_dir: str | Path,
    segmentation: SegmentationSettings,
    features: WaveformSettings,
    on_bad_clip: BadClipPolicy = "fail",
) -> WaveformCache:
    """Open the waveform entry for these clips and settings, building it if needed."""
    cache = open_or_build(
        Path(cache_dir),
        "waveform-" + cache_key(clips, segmentation, features),
        WaveformCache.open,
        lambda partial: _build(clips, partial, segmentation, features, on_bad_clip),
        what="waveform cache",
    )
    refuse_skipped(cache, on_bad_clip)
    return cache

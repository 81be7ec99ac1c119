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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segser.data.batches import MappedRows
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
from segser.data.corpora.clips import BadClipPolicy, Clip
from segser.data.logmel.clip_patches import clips_patches
from segser.data.logmel.features import LogMelPatcher, LogMelSettings
from segser.data.signal.audio import RESAMPLER_ID, load_audio
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.waveform.settings import WaveformSettings
from segser.errors import BadClipError, SegserError

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
class PatchCache:
    """A finished cache entry, opened read-only and memory-mapped (RAM does not grow with it)."""

    directory: Path
    patches: np.ndarray  # [rows, 96, 64] float32, memory-mapped
    row_clip: np.ndarray  # [rows] int64, index into the clip table
    row_segment: np.ndarray  # [rows] int32, segment number within its clip
    clip_ids: list[str]
    skipped: dict[str, str]

    @classmethod
    def open(cls, directory: Path) -> PatchCache:
        """Open and check an entry; BrokenEntry if any file is partial, truncated or corrupt."""
        meta = read_json(directory / "meta.json")
        try:
            if meta["format_version"] != CACHE_FORMAT_VERSION:
                raise ValueError(f"format_version {meta['format_version']}")
            rows, frames, bins = int(meta["rows"]), int(meta["frames"]), int(meta["bins"])
            clip_ids, skipped = list(meta["clip_ids"]), dict(meta["skipped"])
        except (KeyError, TypeError, ValueError) as error:
            raise BrokenEntry(
                f"meta.json is incomplete ({type(error).__name__}: {error})"
            ) from error
        index = read_arrays(directory / "index.npz", {"row_clip": rows, "row_segment": rows})
        row_clip = index["row_clip"]
        if rows and not 0 <= int(row_clip.min()) <= int(row_clip.max()) < len(clip_ids):
            raise BrokenEntry("index.npz points outside the clip table")
        patches = map_rows(directory / "patches.f32", rows, (frames, bins), np.float32)
        return cls(directory, patches, row_clip, index["row_segment"], clip_ids, skipped)

    def rows(self) -> MappedRows:
        """What the datamodule serves batches from."""
        return MappedRows(self.patches)

    def inputs(self, start: int, stop: int) -> torch.Tensor:
        """Backbone input [rows, 1, 96, 64] of rows start..stop-1 (the embedding cache's build)."""
        return torch.from_numpy(np.array(self.patches[start:stop])).unsqueeze(1)

    def lengths(self, start: int, stop: int) -> None:
        """Every patch is whole: no valid lengths to pass (the waveform cache has them)."""
        return None

    def __len__(self) -> int:
        return len(self.patches)

    def rows_for_clips(self, clip_indices: Sequence[int]) -> np.ndarray:
        """Rows of every segment of the given clips, in cache order."""
        return np.flatnonzero(np.isin(self.row_clip, np.asarray(clip_indices, dtype=np.int64)))

    @property
    def kept_clip_indices(self) -> list[int]:
        """Clips that have patches (bad clips skipped during the build have none)."""
        return np.unique(self.row_clip).tolist()


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


def _checkpointed_rows(state: dict, clips: int) -> int:
    """Rows a patch build's checkpoint holds; BrokenEntry unless it fits the clip table."""
    rows = len(state["row_clip"])
    if not 0 <= state["clips_done"] <= clips or rows != len(state["row_segment"]):
        raise BrokenEntry("progress.json does not fit the clip table")
    return rows


def _build(
    clips: Sequence[Clip],
    partial: Path,
    segmentation: SegmentationSettings,
    features: LogMelSettings,
    on_bad_clip: str,
) -> None:
    """Append each clip's patches to `partial`, checkpointing progress so a kill loses little."""
    partial.mkdir(parents=True, exist_ok=True)
    progress_path = partial / "progress.json"
    row_bytes = features.frames_per_patch * features.num_mel_bins * 4
    data_path = partial / "patches.f32"
    fresh = {"clips_done": 0, "row_clip": [], "row_segment": [], "skipped": {}}
    state = resume_build(
        progress_path,
        data_path,
        row_bytes,
        fresh,
        lambda checkpoint: _checkpointed_rows(checkpoint, len(clips)),
        "feature cache",
    )
    patcher = LogMelPatcher(features)
    with open(data_path, "ab") as handle, build_progress("feature cache") as bar:
        task = bar.add_task("clips", total=len(clips), completed=state["clips_done"])
        checkpointed = state["clips_done"]
        while state["clips_done"] < len(clips):
            first = state["clips_done"]
            group = clips[first : first + CLIPS_PER_GROUP]
            found = _patches_for_clips(group, patcher, segmentation, features.sample_rate_hz)
            group = group[: len(found)]
            for index, (clip, patches) in enumerate(zip(group, found, strict=True), start=first):
                if isinstance(patches, BadClipError):
                    skip_or_fail(patches, clip.clip_id, on_bad_clip, handle, progress_path, state)
                else:
                    handle.write(patches.tobytes())
                    state["row_clip"].extend([index] * len(patches))
                    state["row_segment"].extend(range(len(patches)))
                state["clips_done"] = index + 1
            if state["clips_done"] - checkpointed >= PROGRESS_EVERY_CLIPS:
                checkpoint_build(handle, progress_path, state)
                checkpointed = state["clips_done"]
            bar.advance(task, len(group))
        checkpoint_build(handle, progress_path, state)

    np.savez(
        partial / "index.npz",
        row_clip=np.asarray(state["row_clip"], dtype=np.int64),
        row_segment=np.asarray(state["row_segment"], dtype=np.int32),
    )
    meta = {
        "format_version": CACHE_FORMAT_VERSION,
        "rows": len(state["row_clip"]),
        "frames": features.frames_per_patch,
        "bins": features.num_mel_bins,
        "clip_ids": [c.clip_id for c in clips],
        "skipped": state["skipped"],
        "segmentation": asdict(segmentation),
        "features": asdict(features),
    }
    finish_build(progress_path, meta)


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
    key = cache_key(clips, segmentation, features)
    cache = open_or_build(
        Path(cache_dir),
        key,
        PatchCache.open,
        lambda partial: _build(clips, partial, segmentation, features, on_bad_clip),
        what="feature cache",
    )
    refuse_skipped(cache, on_bad_clip)
    return cache


def refuse_skipped(cache: PatchCache | Any, on_bad_clip: str) -> None:
    """Under `on_bad_clip="fail"`, refuse an entry built under "skip" that left clips out."""
    if on_bad_clip == "fail" and cache.skipped:
        names = sorted(cache.skipped)
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise SegserError(
            f"{cache.directory}: this feature cache was built with data.on_bad_clip=skip and "
            f"leaves out {len(names)} bad clip(s) ({listed}; errors in its meta.json). "
            "Fix or remove those clips, or run with data.on_bad_clip=skip"
        )

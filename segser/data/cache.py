"""On-disk, memory-mapped cache of log-mel patches: computed once per corpus and settings.

Layout of one cache entry `<cache_dir>/<key>/`: `patches.f32` (raw float32 rows of 96x64),
`index.npz` (row -> clip index, segment index) and `meta.json`. A build writes into
`<key>.partial/` and resumes from its last checkpointed clip after a kill; the finished entry
appears with one atomic rename. A file lock keeps concurrent sweep jobs from building twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from segser.data.audio import load_audio
from segser.data.clip_patches import clip_patches
from segser.data.clips import Clip
from segser.data.features import LogMelPatcher, LogMelSettings
from segser.data.segmentation import SegmentationSettings
from segser.errors import BadClipError

log = logging.getLogger("segser")

CACHE_FORMAT_VERSION = 1
PROGRESS_EVERY_CLIPS = 64


def cache_key(
    clips: Sequence[Clip], segmentation: SegmentationSettings, features: LogMelSettings
) -> str:
    """Hash of everything the patches depend on: the clips' files and both settings."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps([CACHE_FORMAT_VERSION, asdict(segmentation), asdict(features)]).encode()
    )
    for clip in clips:
        size = clip.path.stat().st_size if clip.path.exists() else -1
        digest.update(f"{clip.clip_id}\t{clip.path.resolve()}\t{size}\n".encode())
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
        meta = json.loads((directory / "meta.json").read_text())
        index = np.load(directory / "index.npz")
        rows, frames, bins = meta["rows"], meta["frames"], meta["bins"]
        patches = (
            np.memmap(
                directory / "patches.f32", dtype=np.float32, mode="r", shape=(rows, frames, bins)
            )
            if rows
            else np.zeros((0, frames, bins), dtype=np.float32)
        )
        return cls(
            directory,
            patches,
            index["row_clip"],
            index["row_segment"],
            meta["clip_ids"],
            meta["skipped"],
        )

    def rows_for_clips(self, clip_indices: Sequence[int]) -> np.ndarray:
        """Rows of every segment of the given clips, in cache order."""
        return np.flatnonzero(np.isin(self.row_clip, np.asarray(clip_indices, dtype=np.int64)))

    @property
    def kept_clip_indices(self) -> list[int]:
        """Clips that have patches (bad clips skipped during the build have none)."""
        return np.unique(self.row_clip).tolist()


def _write_json_atomically(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _patches_for_clip(
    clip: Clip, patcher: LogMelPatcher, segmentation: SegmentationSettings, sample_rate: int
) -> np.ndarray:
    waveform = load_audio(clip.path, sample_rate)
    return clip_patches(waveform, patcher, segmentation).numpy()


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
    state = {"clips_done": 0, "row_clip": [], "row_segment": [], "skipped": {}}
    if progress_path.exists():
        state = json.loads(progress_path.read_text())
        log.info("Resuming the feature cache build at clip %d/%d", state["clips_done"], len(clips))
    row_bytes = features.frames_per_patch * features.num_mel_bins * 4
    data_path = partial / "patches.f32"
    with open(data_path, "ab") as handle:
        handle.truncate(
            len(state["row_clip"]) * row_bytes
        )  # drop rows written after the checkpoint
    patcher = LogMelPatcher(features)

    def checkpoint(handle) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        _write_json_atomically(progress_path, state)

    columns = (
        TextColumn("[bold]feature cache"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with open(data_path, "ab") as handle, Progress(*columns) as bar:
        task = bar.add_task("clips", total=len(clips), completed=state["clips_done"])
        for index in range(state["clips_done"], len(clips)):
            clip = clips[index]
            try:
                patches = _patches_for_clip(clip, patcher, segmentation, features.sample_rate_hz)
            except BadClipError as error:
                if on_bad_clip != "skip":
                    checkpoint(handle)
                    raise
                log.warning("skipping %s", error)
                state["skipped"][clip.clip_id] = str(error)
            else:
                handle.write(patches.tobytes())
                state["row_clip"].extend([index] * len(patches))
                state["row_segment"].extend(range(len(patches)))
            state["clips_done"] = index + 1
            if state["clips_done"] % PROGRESS_EVERY_CLIPS == 0:
                checkpoint(handle)
            bar.advance(task)
        checkpoint(handle)

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
    _write_json_atomically(partial / "meta.json", meta)
    progress_path.unlink()


def build_or_open_cache(
    clips: Sequence[Clip],
    cache_dir: str | Path,
    segmentation: SegmentationSettings,
    features: LogMelSettings,
    on_bad_clip: str = "fail",
) -> PatchCache:
    """Open the cache entry for these clips and settings, building it first if needed."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(clips, segmentation, features)
    final = cache_dir / key
    if (final / "meta.json").exists():
        return PatchCache.open(final)
    with FileLock(str(cache_dir / f"{key}.lock")):
        if not (final / "meta.json").exists():  # another job may have finished it meanwhile
            partial = cache_dir / f"{key}.partial"
            _build(clips, partial, segmentation, features, on_bad_clip)
            os.replace(partial, final)
            log.info("Feature cache written to %s", final)
    return PatchCache.open(final)

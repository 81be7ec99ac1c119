"""What the patch and the waveform caches share: an entry whose rows are the clips' segments.

Row r of an entry is segment `row_segment[r]` of clip `row_clip[r]` (an index into the clip
table), stored clip by clip in clip order; a clip skipped as bad (`skipped`: its error) has no
rows. `index.npz` holds the row arrays, `meta.json` the format version, the row count, the clip
ids, the skipped clips and the settings, and one data file the rows' numbers. A build appends
clip after clip and checkpoints as segser.data.cache.entry describes, so a killed one resumes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from segser.data.cache.entry import (
    BrokenEntry,
    build_progress,
    checkpoint_build,
    finish_build,
    open_or_build,
    read_arrays,
    read_json,
    resume_build,
    skip_or_fail,
)
from segser.data.corpora.clips import Clip
from segser.errors import BadClipError, SegserError

Settings = TypeVar("Settings")
Cache = TypeVar("Cache", bound="RowCache")


@dataclass
class RowCache:
    """A finished entry's row table; a subclass adds its rows' numbers (memory-mapped)."""

    what: ClassVar[str]  # "feature cache": in logs, errors and the progress bar
    format_version: ClassVar[int]
    data_name: ClassVar[str]  # the data file, e.g. "patches.f32"
    index: ClassVar[dict[str, type]] = {"row_clip": np.int64, "row_segment": np.int32}

    directory: Path
    row_clip: np.ndarray  # [rows] int64, index into the clip table
    row_segment: np.ndarray  # [rows] int32, segment number within its clip
    clip_ids: list[str]
    skipped: dict[str, str]

    @classmethod
    def open(cls: type[Cache], directory: Path) -> Cache:
        """Open and check an entry; BrokenEntry if any file is partial, truncated or corrupt."""
        raise NotImplementedError

    @classmethod
    def read_entry(
        cls, directory: Path, settings: Callable[[dict[str, Any]], Settings]
    ) -> tuple[Settings, dict[str, Any]]:
        """`settings(meta)` (the kind's own meta.json keys) and the fields every row cache has
        (as keyword arguments), checked; BrokenEntry if any file is partial or corrupt."""
        meta = read_json(directory / "meta.json")
        try:
            if meta["format_version"] != cls.format_version:
                raise ValueError(f"format_version {meta['format_version']}")
            rows, own = int(meta["rows"]), settings(meta)
            clip_ids, skipped = list(meta["clip_ids"]), dict(meta["skipped"])
        except (KeyError, TypeError, ValueError) as error:
            raise BrokenEntry(
                f"meta.json is incomplete ({type(error).__name__}: {error})"
            ) from error
        index = read_arrays(directory / "index.npz", dict.fromkeys(cls.index, rows))
        row_clip = index["row_clip"]
        if rows and not 0 <= int(row_clip.min()) <= int(row_clip.max()) < len(clip_ids):
            raise BrokenEntry("index.npz points outside the clip table")
        return own, {"directory": directory, "clip_ids": clip_ids, "skipped": skipped, **index}

    def __len__(self) -> int:
        return len(self.row_clip)

    def rows_for_clips(self, clip_indices: Sequence[int]) -> np.ndarray:
        """Rows of every segment of the given clips, in cache order."""
        return np.flatnonzero(np.isin(self.row_clip, np.asarray(clip_indices, dtype=np.int64)))

    @property
    def kept_clip_indices(self) -> list[int]:
        """Clips that have rows (bad clips skipped during the build have none)."""
        return np.unique(self.row_clip).tolist()

    def refuse_skipped(self, on_bad_clip: str) -> None:
        """Under `on_bad_clip="fail"`, refuse an entry built under "skip" that left clips out."""
        if on_bad_clip == "fail" and self.skipped:
            names = sorted(self.skipped)
            listed = ", ".join(names[:5]) + (
                f" and {len(names) - 5} more" if len(names) > 5 else ""
            )
            raise SegserError(
                f"{self.directory}: this feature cache was built with data.on_bad_clip=skip and "
                f"leaves out {len(names)} bad clip(s) ({listed}; errors in its meta.json). "
                "Fix or remove those clips, or run with data.on_bad_clip=skip"
            )


class RowBuild(ABC, Generic[Cache]):
    """One entry's build: each clip's rows appended to the data file and the index, in clip
    order, with a checkpoint every `progress_every` clips so that a kill loses little."""

    cache: type[Cache]
    row_bytes: int  # bytes of one unit the checkpoint counts (`written`)
    counters: ClassVar[dict[str, int]] = {}  # state beyond the index lists, e.g. samples written

    def __init__(
        self, clips: Sequence[Clip], segmentation: Any, features: Any, on_bad_clip: str
    ) -> None:
        self.clips, self.segmentation, self.features = clips, segmentation, features
        self.on_bad_clip = on_bad_clip

    @abstractmethod
    def compute(self, first: int) -> list[Any]:
        """Results (or the BadClipError each raised) of clips `first`, `first + 1`, ...: one or
        more, as many as are worth computing at once."""

    @abstractmethod
    def append(self, state: dict[str, Any], clip: int, result: Any) -> tuple[np.ndarray, int]:
        """The data a clip's result writes and its number of rows; records the kind's own
        index columns and counters in `state` (row_clip and row_segment are the caller's)."""

    @abstractmethod
    def meta(self, state: dict[str, Any]) -> dict[str, Any]:
        """The kind's own meta.json keys, written after the row count."""

    def written(self, state: dict[str, Any]) -> int:
        """Units of `row_bytes` a checkpointed state has written: rows unless said otherwise."""
        return len(state["row_clip"])

    def _checkpointed(self, state: dict[str, Any]) -> int:
        """What a checkpoint has written; BrokenEntry unless it fits the clip table."""
        lengths = {len(state[name]) for name in self.cache.index}
        if not 0 <= state["clips_done"] <= len(self.clips) or len(lengths) != 1:
            raise BrokenEntry("progress.json does not fit the clip table")
        return self.written(state)

    def run(self, partial: Path, progress_every: int) -> None:
        """Build the entry in `partial`, resuming a killed build's checkpoint there."""
        partial.mkdir(parents=True, exist_ok=True)
        progress_path, data_path = partial / "progress.json", partial / self.cache.data_name
        fresh = {"clips_done": 0, **self.counters, **{name: [] for name in self.cache.index}}
        fresh["skipped"] = {}
        what = self.cache.what
        state = resume_build(
            progress_path, data_path, self.row_bytes, fresh, self._checkpointed, what
        )
        with open(data_path, "ab") as handle, build_progress(what) as bar:
            task = bar.add_task("clips", total=len(self.clips), completed=state["clips_done"])
            checkpointed = state["clips_done"]
            while state["clips_done"] < len(self.clips):
                found = self.compute(state["clips_done"])
                for index, result in enumerate(found, start=state["clips_done"]):
                    if isinstance(result, BadClipError):
                        clip_id = self.clips[index].clip_id
                        skip_or_fail(
                            result, clip_id, self.on_bad_clip, handle, progress_path, state
                        )
                    else:
                        data, rows = self.append(state, index, result)
                        handle.write(data.tobytes())
                        state["row_clip"].extend([index] * rows)
                        state["row_segment"].extend(range(rows))
                    state["clips_done"] = index + 1
                if state["clips_done"] - checkpointed >= progress_every:
                    checkpoint_build(handle, progress_path, state)
                    checkpointed = state["clips_done"]
                bar.advance(task, len(found))
            checkpoint_build(handle, progress_path, state)
        arrays = {
            name: np.asarray(state[name], dtype=dtype) for name, dtype in self.cache.index.items()
        }
        np.savez(partial / "index.npz", **arrays)
        meta = {"format_version": self.cache.format_version, "rows": len(state["row_clip"])}
        meta |= self.meta(state) | {
            "clip_ids": [clip.clip_id for clip in self.clips],
            "skipped": state["skipped"],
            "segmentation": asdict(self.segmentation),
            "features": asdict(self.features),
        }
        finish_build(progress_path, meta)

    def build_or_open(self, cache_dir: str | Path, key: str, progress_every: int) -> Cache:
        """Open entry `key`, building (or rebuilding) it if needed; refuse it under
        `on_bad_clip="fail"` if it was built under "skip" and left clips out."""
        cache = open_or_build(
            Path(cache_dir),
            key,
            self.cache.open,
            lambda partial: self.run(partial, progress_every),
            what=self.cache.what,
        )
        cache.refuse_skipped(self.on_bad_clip)
        return cache

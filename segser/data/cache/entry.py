"""One cache entry on disk, never served stale or broken: the conventions every cache follows.

An entry is a folder `<cache_dir>/<key>/` whose key hashes everything its contents depend on.
It is built in `<key>.partial/` under the file lock `<key>.lock` and appears with one atomic
rename, so readers see a whole entry or none. A killed build resumes from its last checkpoint
(`progress.json`) when that fits the rows on disk. Every open checks the entry (`open_entry`
raises BrokenEntry on anything off: unreadable JSON or index, wrong byte size); a broken entry
is logged in one line and rebuilt under the lock, never read. Two processes asking for the same
entry at once end with one valid entry: the second waits for the lock, then opens the first's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from filelock import FileLock
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from segser.errors import SegserError

log = logging.getLogger("segser")
Entry = TypeVar("Entry")


class BrokenEntry(SegserError):
    """A cache entry that is partial, truncated or corrupt: rebuild it, never read it."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from an entry, or BrokenEntry naming the file."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BrokenEntry(f"{path.name} is unreadable ({type(error).__name__})") from error
    if not isinstance(payload, dict):
        raise BrokenEntry(f"{path.name} holds no JSON object")
    return payload


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def build_progress(what: str) -> Progress:
    """The progress bar every cache build shows: what, bar, done/total, time left."""
    return Progress(
        TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )


def resume_build(
    progress_path: Path,
    data_path: Path,
    row_bytes: int,
    fresh: dict[str, Any],
    rows_on_disk: Callable[[dict[str, Any]], int],
    what: str,
) -> dict[str, Any]:
    """A killed build's checkpointed state if it fits and its rows are on disk, else `fresh`;
    the data file is cut to that state's rows. `rows_on_disk(state)` raises on a misfit."""
    state, rows = fresh, 0
    if progress_path.exists():
        try:
            checkpoint = read_json(progress_path)
            kept = rows_on_disk(checkpoint)
            if not data_path.exists() or data_path.stat().st_size < kept * row_bytes:
                raise BrokenEntry(f"{data_path.name} is shorter than its checkpoint")
        except (BrokenEntry, KeyError, TypeError, ValueError, OSError) as error:
            log.warning(
                "%s: cannot resume the %s build (%s); starting over", progress_path, what, error
            )
        else:
            state, rows = checkpoint, kept
            log.info("Resuming the %s build from its checkpoint: %d rows kept", what, rows)
    with open(data_path, "ab") as handle:
        handle.truncate(rows * row_bytes)  # drop rows written after the checkpoint
    return state


def checkpoint_build(handle: Any, progress_path: Path, state: dict[str, Any]) -> None:
    """Flush the rows appended so far to disk, then record the state a killed build resumes from."""
    handle.flush()
    os.fsync(handle.fileno())
    write_json_atomically(progress_path, state)


def skip_or_fail(
    error: SegserError,
    clip_id: str,
    on_bad_clip: str,
    handle: Any,
    progress_path: Path,
    state: dict[str, Any],
) -> None:
    """A bad clip met by a build: `fail` checkpoints the clips before it (nothing computed is
    lost) and raises; `skip` logs it and records it in the state's `skipped`."""
    if on_bad_clip != "skip":
        checkpoint_build(handle, progress_path, state)
        raise error
    log.warning("skipping %s", error)
    state["skipped"][clip_id] = str(error)


def finish_build(progress_path: Path, meta: dict[str, Any]) -> None:
    """Write the finished build's meta.json beside its checkpoint, which it no longer needs."""
    write_json_atomically(progress_path.with_name("meta.json"), meta)
    progress_path.unlink()


def read_arrays(path: Path, lengths: dict[str, int]) -> dict[str, np.ndarray]:
    """1-D arrays of an .npz, each checked for its expected length, or BrokenEntry."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in lengths}
    except Exception as error:  # zip, CRC, missing key or format errors all mean: rebuild
        raise BrokenEntry(f"{path.name} is unreadable ({type(error).__name__})") from error
    for name, length in lengths.items():
        if arrays[name].shape != (length,):
            raise BrokenEntry(
                f"{path.name}: {name} has shape {arrays[name].shape}, not ({length},)"
            )
    return arrays


def map_rows(path: Path, rows: int, row_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Read-only memory map of `rows` rows of `row_shape`; BrokenEntry unless the size is exact."""
    itemsize = np.dtype(dtype).itemsize
    expected = rows * int(np.prod(row_shape)) * itemsize
    try:
        size = path.stat().st_size
    except OSError as error:
        raise BrokenEntry(f"{path.name} is missing") from error
    if size != expected:
        raise BrokenEntry(f"{path.name} holds {size} bytes, not {expected}")
    if rows == 0:
        return np.zeros((0, *row_shape), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(rows, *row_shape))


def open_or_build(
    cache_dir: Path,
    key: str,
    open_entry: Callable[[Path], Entry],
    build_entry: Callable[[Path], None],
    what: str = "cache",
) -> Entry:
    """Open entry `key`, building it (or rebuilding a broken one) under the lock if needed.

    `build_entry(partial)` writes a whole entry into `partial`, which may hold a killed build's
    files to resume from; `open_entry(folder)` reads and checks one, raising BrokenEntry.
    """
    final = cache_dir / key
    if final.exists():
        try:
            return open_entry(final)
        except BrokenEntry:
            pass  # looked at again under the lock: another process may be replacing it
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / f"{key}.lock")):
        if final.exists():
            try:
                return open_entry(final)
            except BrokenEntry as broken:
                log.warning("%s: broken %s entry (%s); rebuilding it", final, what, broken)
                shutil.rmtree(final) if final.is_dir() else final.unlink()
        partial = cache_dir / f"{key}.partial"
        build_entry(partial)
        os.replace(partial, final)
        log.info("%s written to %s", what, final)
    return open_entry(final)

"""Frozen-backbone embeddings: computed once per segment cache and backbone weights, memory-mapped.

A frozen backbone makes each segment's embedding a fixed function of its input (log-mel patch or
waveform segment), so with `backbone.freeze=true` it is computed once and every later run and
sweep job trains the head on it. Rows align with the segment cache's rows. Entry
`<cache_dir>/<segment key>-<backbone>-<key>/` holds `embeddings.f32` ([rows, embedding_dim]
float32), or `embeddings.f16` for backbones whose `embedding_cache_dtype` is float16 (every
hidden state of a base speech transformer: 13 x 768 numbers per segment), and `meta.json`; the
key hashes the segment cache key, the backbone's class and settings (its repr: layers
included), the storage dtype and the sha256 of its loaded weights. Raw-sample rows pass their
valid lengths to the backbone; a backbone with `context = "clip"` (Whisper's clip-context mode)
encodes each clip once and pools every segment's window of its frames (`embed_rows`).
As for patches (segser.data.cache.entry): built in `.partial/`, resumable after a kill, renamed
into place atomically under a file lock, checked on every open and rebuilt if broken.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segser.data.batches import MappedRows
from segser.data.cache.entry import (
    BrokenEntry,
    build_progress,
    checkpoint_build,
    finish_build,
    map_rows,
    open_or_build,
    read_json,
    resume_build,
)
from segser.data.cache.patches import PatchCache
from segser.data.cache.waveforms import WaveformCache

log = logging.getLogger("segser")

EMBEDDING_FORMAT_VERSION = 1
DTYPES = {"float32": (np.float32, "f32"), "float16": (np.float16, "f16")}
SegmentCache = PatchCache | WaveformCache
ROWS_PER_BATCH = 256
CHECKPOINT_EVERY_BATCHES = 4


def weights_sha256(module: nn.Module) -> str:
    """sha256 of the weights as loaded: a named file, a path, folded BN or a seeded init alike."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}\t{flat.dtype}\t{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def storage_dtype(backbone: nn.Module) -> str:
    """float32, or float16 where the backbone asks for it (its `embedding_cache_dtype`)."""
    dtype = str(getattr(backbone, "embedding_cache_dtype", "float32"))
    if dtype not in DTYPES:
        raise ValueError(f"embedding_cache_dtype={dtype!r}; use one of {sorted(DTYPES)}")
    return dtype


def embedding_key(patch_key: str, backbone: nn.Module, weights: str | None = None) -> str:
    """Entry name: the segment cache it embeds, the backbone's name, and a hash of the rest
    (`weights`: the backbone's weights_sha256, if the caller has it already)."""
    weights = weights or weights_sha256(backbone)
    parts = [EMBEDDING_FORMAT_VERSION, patch_key, repr(backbone), weights]
    dtype = storage_dtype(backbone)
    if dtype != "float32":  # float32 entries keep the keys they had before float16 storage
        parts.append(dtype)
    digest = hashlib.sha256(json.dumps(parts).encode())
    return f"{patch_key}-{type(backbone).__name__.lower()}-{digest.hexdigest()[:16]}"


@dataclass
class EmbeddingCache:
    """A finished entry: embeddings [rows, dim] (float32 or float16), memory-mapped read-only."""

    directory: Path
    embeddings: np.ndarray
    center: np.ndarray | None = None  # float16 entries: the rows are embedding - center

    def rows(self) -> MappedRows:
        """What the datamodule serves head batches from: float32 embeddings (center added)."""
        return MappedRows(self.embeddings, self.center)

    @classmethod
    def open(cls, directory: Path) -> EmbeddingCache:
        """Open and check an entry; BrokenEntry (then rebuilt) if anything is off."""
        meta = read_json(directory / "meta.json")
        try:
            rows, dim = int(meta["rows"]), int(meta["embedding_dim"])
            dtype, suffix = DTYPES[meta.get("dtype", "float32")]
        except (KeyError, TypeError, ValueError) as error:
            raise BrokenEntry(f"meta.json is incomplete ({error})") from error
        embeddings = map_rows(directory / f"embeddings.{suffix}", rows, (dim,), dtype)
        if dtype == np.float32:
            return cls(directory, embeddings)
        return cls(
            directory, embeddings, np.array(map_rows(directory / "center.f32", dim, (), np.float32))
        )


def _checkpointed_rows(state: dict, total: int) -> int:
    """Rows an embedding build's checkpoint holds (read as an int); BrokenEntry unless in range."""
    rows = state["rows_done"] = int(state["rows_done"])
    if not 0 <= rows <= total:
        raise BrokenEntry("progress.json does not fit the patch rows")
    return rows


def _build(
    patches: SegmentCache, backbone: nn.Module, weights: str, partial: Path, batch_rows: int
) -> None:
    """Append embeddings of the segment rows in order, checkpointing so a kill loses little."""
    partial.mkdir(parents=True, exist_ok=True)
    progress_path = partial / "progress.json"
    dtype_name = storage_dtype(backbone)
    dtype, suffix = DTYPES[dtype_name]
    data_path = partial / f"embeddings.{suffix}"
    total = len(patches)
    dim = int(backbone.embedding_dim)
    state = resume_build(
        progress_path,
        data_path,
        dim * np.dtype(dtype).itemsize,
        {"rows_done": 0},
        lambda checkpoint: _checkpointed_rows(checkpoint, total),
        "embedding cache",
    )
    was_training = backbone.training
    backbone.eval()
    center = None
    try:
        if dtype != np.float32:
            center = _center(
                patches, backbone, partial / "center.f32", state, data_path, batch_rows
            )
        with (
            open(data_path, "ab") as handle,
            build_progress("embedding cache") as bar,
            torch.no_grad(),
        ):
            task = bar.add_task("segments", total=total, completed=state["rows_done"])
            batch, start = 0, state["rows_done"]
            while start < total:
                batch, stop = batch + 1, _batch_end(patches, backbone, start, batch_rows)
                embedding = embed_rows(patches, backbone, start, stop).float().numpy()
                if center is not None:
                    embedding = embedding - center
                embedding = embedding.astype(dtype)
                handle.write(np.ascontiguousarray(embedding).tobytes())
                state["rows_done"] = start = stop
                if batch % CHECKPOINT_EVERY_BATCHES == 0:
                    checkpoint_build(handle, progress_path, state)
                bar.update(task, completed=state["rows_done"])
            checkpoint_build(handle, progress_path, state)
    finally:
        backbone.train(was_training)
    meta = {
        "format_version": EMBEDDING_FORMAT_VERSION,
        "rows": total,
        "embedding_dim": dim,
        "dtype": dtype_name,
        "patch_cache": patches.directory.name,
        "backbone": repr(backbone),
        "weights_sha256": weights,
    }
    finish_build(progress_path, meta)


def _center(
    segments: SegmentCache,
    backbone: nn.Module,
    path: Path,
    state: dict,
    data_path: Path,
    batch_rows: int,
) -> np.ndarray:
    """The float16 entry's center: the first batch's mean embedding, written before any row.

    float16 keeps 11 significant bits of each number; stored as the difference from this
    center, its rounding is relative to how embeddings differ, not to their size (transformer
    layers have dimensions with large, nearly constant values). A resumed build reuses it."""
    dim = int(backbone.embedding_dim)
    if state["rows_done"] and path.is_file() and path.stat().st_size == dim * 4:
        return np.fromfile(path, dtype=np.float32)
    state["rows_done"] = 0  # rows without their center cannot be read: start over
    with open(data_path, "ab") as handle:
        handle.truncate(0)
    center = np.zeros(dim, dtype=np.float32)
    if len(segments):
        with torch.no_grad():
            first = embed_rows(segments, backbone, 0, min(batch_rows, len(segments)))
        center = first.double().mean(0).float().numpy()
    center.tofile(path)
    return center


def embed_rows(cache: SegmentCache, backbone: nn.Module, start: int, stop: int) -> torch.Tensor:
    """Embeddings [stop - start, D] of cache rows start..stop-1, as the backbone reads them."""
    if getattr(backbone, "context", "segment") == "clip":
        return _clip_context_rows(cache, backbone, start, stop)
    inputs, lengths = cache.inputs(start, stop), cache.lengths(start, stop)
    return backbone(inputs) if lengths is None else backbone(inputs, lengths)


def _batch_end(cache: SegmentCache, backbone: nn.Module, start: int, batch_rows: int) -> int:
    """The end of the batch of rows from `start`: `batch_rows` on, or, for a clip-context
    backbone, on to the end of the last clip it reaches, so no clip is encoded twice."""
    stop = min(start + batch_rows, len(cache))
    if getattr(backbone, "context", "segment") != "clip":
        return stop
    return int(np.searchsorted(cache.row_clip, cache.row_clip[stop - 1], side="right"))


def _clip_context_rows(
    cache: WaveformCache, backbone: nn.Module, start: int, stop: int
) -> torch.Tensor:
    """Each clip of the rows encoded whole (`backbone.embed_clip`), its rows' windows pooled
    (rows are stored clip by clip, in clip order)."""
    embedded = []
    for clip in dict.fromkeys(cache.row_clip[start:stop].tolist()):
        samples, starts = cache.clip_samples(clip)
        first = int(np.searchsorted(cache.row_clip, clip, side="left"))
        wanted = slice(max(start - first, 0), min(stop - first, len(starts)))
        embedded.append(
            backbone.embed_clip(
                torch.from_numpy(np.array(samples)),
                torch.from_numpy(starts[wanted]),
                cache.grid.window,
            )
        )
    return torch.cat(embedded)


def build_or_open_embeddings(
    patches: SegmentCache, backbone: nn.Module, batch_rows: int = ROWS_PER_BATCH
) -> EmbeddingCache:
    """Open the embeddings of these segments under this frozen backbone; computed if needed."""
    weights = weights_sha256(backbone)  # once: 0.5 s for VGGish's 72M parameters
    return open_or_build(
        patches.directory.parent,
        embedding_key(patches.directory.name, backbone, weights),
        EmbeddingCache.open,
        lambda partial: _build(patches, backbone, weights, partial, batch_rows),
        what="embedding cache",
    )

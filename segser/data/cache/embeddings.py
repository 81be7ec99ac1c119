"""Frozen-backbone embeddings: computed once per patch cache and backbone weights, memory-mapped.

A frozen backbone makes each segment's embedding a fixed function of its patch, so with
`backbone.freeze=true` it is computed once and every later run and sweep job trains the head on
it. Rows align with the patch cache's rows. Entry `<cache_dir>/<patch key>-<backbone>-<key>/`
holds `embeddings.f32` ([rows, embedding_dim] float32) and `meta.json`; the key hashes the patch
cache key, the backbone's class and settings (its repr) and the sha256 of its loaded weights.
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

log = logging.getLogger("segser")

EMBEDDING_FORMAT_VERSION = 1
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


def embedding_key(patch_key: str, backbone: nn.Module, weights: str | None = None) -> str:
    """Entry name: the patch cache it embeds, the backbone's name, and a hash of the rest
    (`weights`: the backbone's weights_sha256, if the caller has it already)."""
    weights = weights or weights_sha256(backbone)
    digest = hashlib.sha256(
        json.dumps([EMBEDDING_FORMAT_VERSION, patch_key, repr(backbone), weights]).encode()
    )
    return f"{patch_key}-{type(backbone).__name__.lower()}-{digest.hexdigest()[:16]}"


@dataclass
class EmbeddingCache:
    """A finished entry: embeddings [rows, dim] float32, memory-mapped read-only."""

    directory: Path
    embeddings: np.ndarray

    @classmethod
    def open(cls, directory: Path) -> EmbeddingCache:
        """Open and check an entry; BrokenEntry (then rebuilt) if anything is off."""
        meta = read_json(directory / "meta.json")
        try:
            rows, dim = int(meta["rows"]), int(meta["embedding_dim"])
        except (KeyError, TypeError, ValueError) as error:
            raise BrokenEntry(f"meta.json is incomplete ({error})") from error
        return cls(directory, map_rows(directory / "embeddings.f32", rows, (dim,), np.float32))


def _checkpointed_rows(state: dict, total: int) -> int:
    """Rows an embedding build's checkpoint holds (read as an int); BrokenEntry unless in range."""
    rows = state["rows_done"] = int(state["rows_done"])
    if not 0 <= rows <= total:
        raise BrokenEntry("progress.json does not fit the patch rows")
    return rows


def _build(
    patches: PatchCache, backbone: nn.Module, weights: str, partial: Path, batch_rows: int
) -> None:
    """Append embeddings of the patch rows in order, checkpointing so a kill loses little."""
    partial.mkdir(parents=True, exist_ok=True)
    progress_path = partial / "progress.json"
    data_path = partial / "embeddings.f32"
    total = len(patches.patches)
    dim = int(backbone.embedding_dim)
    state = resume_build(
        progress_path,
        data_path,
        dim * 4,
        {"rows_done": 0},
        lambda checkpoint: _checkpointed_rows(checkpoint, total),
        "embedding cache",
    )
    was_training = backbone.training
    backbone.eval()
    try:
        with (
            open(data_path, "ab") as handle,
            build_progress("embedding cache") as bar,
            torch.no_grad(),
        ):
            task = bar.add_task("segments", total=total, completed=state["rows_done"])
            for batch, start in enumerate(range(state["rows_done"], total, batch_rows), start=1):
                patch = torch.from_numpy(np.array(patches.patches[start : start + batch_rows]))
                embedding = backbone(patch.unsqueeze(1)).float().numpy()
                handle.write(np.ascontiguousarray(embedding).tobytes())
                state["rows_done"] = start + len(patch)
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
        "patch_cache": patches.directory.name,
        "backbone": repr(backbone),
        "weights_sha256": weights,
    }
    finish_build(progress_path, meta)


def build_or_open_embeddings(
    patches: PatchCache, backbone: nn.Module, batch_rows: int = ROWS_PER_BATCH
) -> EmbeddingCache:
    """Open the embeddings of these patches under this frozen backbone, computing them if needed."""
    weights = weights_sha256(backbone)  # once: 0.5 s for VGGish's 72M parameters
    return open_or_build(
        patches.directory.parent,
        embedding_key(patches.directory.name, backbone, weights),
        EmbeddingCache.open,
        lambda partial: _build(patches, backbone, weights, partial, batch_rows),
        what="embedding cache",
    )

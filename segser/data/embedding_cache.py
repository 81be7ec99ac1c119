"""Frozen-backbone embeddings: computed once per patch cache and backbone weights, memory-mapped.

A frozen backbone makes each segment's embedding a fixed function of its patch, so with
`backbone.freeze=true` it is computed once and every later run and sweep job trains the head on
it. Rows align with the patch cache's rows. Entry `<cache_dir>/<patch key>-<backbone>-<key>/`
holds `embeddings.f32` ([rows, embedding_dim] float32) and `meta.json`; the key hashes the patch
cache key, the backbone's class and settings (its repr) and the sha256 of its loaded weights.
As for patches: built in `.partial/`, resumable after a kill, renamed into place atomically,
one builder at a time under a file lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from segser.data.cache import PatchCache

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


def embedding_key(patch_key: str, backbone: nn.Module) -> str:
    """Entry name: the patch cache it embeds, the backbone's name, and a hash of the rest."""
    digest = hashlib.sha256(
        json.dumps(
            [EMBEDDING_FORMAT_VERSION, patch_key, repr(backbone), weights_sha256(backbone)]
        ).encode()
    )
    return f"{patch_key}-{type(backbone).__name__.lower()}-{digest.hexdigest()[:16]}"


@dataclass
class EmbeddingCache:
    """A finished entry: embeddings [rows, dim] float32, memory-mapped read-only."""

    directory: Path
    embeddings: np.ndarray

    @classmethod
    def open(cls, directory: Path) -> EmbeddingCache:
        meta = json.loads((directory / "meta.json").read_text())
        rows, dim = meta["rows"], meta["embedding_dim"]
        embeddings = (
            np.memmap(directory / "embeddings.f32", dtype=np.float32, mode="r", shape=(rows, dim))
            if rows
            else np.zeros((0, dim), dtype=np.float32)
        )
        return cls(directory, embeddings)


def _write_json_atomically(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _build(patches: PatchCache, backbone: nn.Module, partial: Path, batch_rows: int) -> None:
    """Append embeddings of the patch rows in order, checkpointing so a kill loses little."""
    partial.mkdir(parents=True, exist_ok=True)
    progress_path = partial / "progress.json"
    total = len(patches.patches)
    rows_done = 0
    if progress_path.exists():
        rows_done = json.loads(progress_path.read_text())["rows_done"]
        log.info("Resuming the embedding cache build at row %d/%d", rows_done, total)
    dim = int(backbone.embedding_dim)
    data_path = partial / "embeddings.f32"
    with open(data_path, "ab") as handle:
        handle.truncate(rows_done * dim * 4)  # drop rows written after the last checkpoint

    def checkpoint(handle) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        _write_json_atomically(progress_path, {"rows_done": rows_done})

    columns = (
        TextColumn("[bold]embedding cache"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    was_training = backbone.training
    backbone.eval()
    try:
        with open(data_path, "ab") as handle, Progress(*columns) as bar, torch.no_grad():
            task = bar.add_task("segments", total=total, completed=rows_done)
            for batch, start in enumerate(range(rows_done, total, batch_rows), start=1):
                patch = torch.from_numpy(np.array(patches.patches[start : start + batch_rows]))
                embedding = backbone(patch.unsqueeze(1)).float().numpy()
                handle.write(np.ascontiguousarray(embedding).tobytes())
                rows_done = start + len(patch)
                if batch % CHECKPOINT_EVERY_BATCHES == 0:
                    checkpoint(handle)
                bar.update(task, completed=rows_done)
            checkpoint(handle)
    finally:
        backbone.train(was_training)
    meta = {
        "format_version": EMBEDDING_FORMAT_VERSION,
        "rows": total,
        "embedding_dim": dim,
        "patch_cache": patches.directory.name,
        "backbone": repr(backbone),
        "weights_sha256": weights_sha256(backbone),
    }
    _write_json_atomically(partial / "meta.json", meta)
    progress_path.unlink()


def build_or_open_embeddings(
    patches: PatchCache, backbone: nn.Module, batch_rows: int = ROWS_PER_BATCH
) -> EmbeddingCache:
    """Open the embeddings of these patches under this frozen backbone, computing them if needed."""
    cache_dir = patches.directory.parent
    key = embedding_key(patches.directory.name, backbone)
    final = cache_dir / key
    if (final / "meta.json").exists():
        return EmbeddingCache.open(final)
    with FileLock(str(cache_dir / f"{key}.lock")):
        if not (final / "meta.json").exists():  # another job may have finished it meanwhile
            _build(patches, backbone, cache_dir / f"{key}.partial", batch_rows)
            os.replace(cache_dir / f"{key}.partial", final)
            log.info("Embedding cache written to %s", final)
    return EmbeddingCache.open(final)

"""Benchmark: the frozen SSL cache of an IEMOCAP-sized corpus, on disk and as served.

91,000 overlapping 1 s segments (IEMOCAP's 5531 utterances at hop 0.5 s) with every hidden
state of a base model pooled: 13 x 768 numbers per segment (segser's default, SUPERB's 13
states: the transformer's input and its 12 layers; LAYERS reads them from the code). The entry
is written by segser's own embedding cache build (float16, centred, resumable) from a stand-in
backbone that returns seeded random embeddings shaped like a transformer's (a large
per-dimension offset, a small per-segment spread), so the figure needs no weights and no hour
of CPU. Printed: the entry's size on disk
against the 2 GB target; the process's own (anonymous) memory while an epoch of shuffled head
batches is served from the memory map, against the entry's size; and the largest change of a
fitted head's logits between the float16 rows as served and the exact float32 embeddings.
Example:
    python experiments/bench_ssl_cache.py [--rows 91000] [--work-dir /tmp/segser-ssl-cache]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segser.data.batches import SegmentBatchSampler, SegmentRows
from segser.data.cache.embeddings import build_or_open_embeddings
from segser.models.heads import ClassificationHead
from segser.models.ssl import SpeechTransformer
from segser.models.ssl_bundles import ssl_bundle

# what SpeechTransformer stores for a base model by default (embedding_layers=null)
LAYERS = SpeechTransformer.num_layers({"bundle": "WAVLM_BASE_PLUS"})  # every state
WIDTH = ssl_bundle("WAVLM_BASE_PLUS").architecture["encoder_embed_dim"]
TARGET_BYTES = 2e9


class StandInSegments:
    """What the embedding build reads from a segment cache: its rows (here, row numbers)."""

    def __init__(self, directory: Path, rows: int) -> None:
        self.directory, self.rows = directory, rows

    def __len__(self) -> int:
        return self.rows

    def inputs(self, start: int, stop: int) -> torch.Tensor:
        return torch.arange(start, stop, dtype=torch.float64)[:, None]


class StandInTransformer(nn.Module):
    """Seeded embeddings per row: offset ~ N(0, 20) per dimension, spread ~ N(0, 1) per row."""

    embedding_dim = LAYERS * WIDTH
    layer_dims = (WIDTH,) * LAYERS
    embedding_cache_dtype = "float16"

    def __init__(self) -> None:
        super().__init__()
        offset = 20 * torch.randn(self.embedding_dim, generator=torch.Generator().manual_seed(0))
        self.register_buffer("offset", offset)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        first = int(rows[0, 0])
        noise = torch.randn(len(rows), self.embedding_dim,
                            generator=torch.Generator().manual_seed(first))  # fmt: skip
        return self.offset + noise

    def exact(self, rows: np.ndarray, batch_rows: int) -> torch.Tensor:
        """The float32 embeddings of `rows`, regenerated batch by batch as the build drew them."""
        out = []
        for row in rows:
            start = row // batch_rows * batch_rows
            batch = self(torch.tensor([[float(start)]]).expand(batch_rows, 1))
            out.append(batch[row - start])
        return torch.stack(out)


def status_mb(key: str) -> float:
    with open("/proc/self/status") as handle:
        line = next(x for x in handle if x.startswith(key + ":"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=91_000)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="segser-ssl-cache-"))
    segments = StandInSegments(work / "waveform-standin", args.rows)
    segments.directory.mkdir(parents=True, exist_ok=True)
    backbone = StandInTransformer()
    batch_rows = 256
    try:
        start = time.perf_counter()
        cache = build_or_open_embeddings(segments, backbone, batch_rows)
        built_s = time.perf_counter() - start
        size = sum(f.stat().st_size for f in cache.directory.iterdir())
        print(f"entry: {args.rows} rows x {LAYERS} x {WIDTH} float16, {size / 1e9:.3f} GB on "
              f"disk ({'under' if size < TARGET_BYTES else 'OVER'} the 2 GB target); built in "
              f"{built_s:.0f} s")  # fmt: skip

        rows = cache.rows()
        dataset = SegmentRows(rows, np.arange(args.rows), np.zeros(args.rows), np.zeros(args.rows))
        anon_before = status_mb("RssAnon")
        peak = anon_before
        start = time.perf_counter()
        served = 0
        for batch in SegmentBatchSampler(args.rows, args.batch_size, shuffle=True):
            features, _, _ = dataset[batch]
            served += len(features)
            peak = max(peak, status_mb("RssAnon"))
        epoch_s = time.perf_counter() - start
        print(f"one shuffled epoch of head batches ({args.batch_size}): {served} rows in "
              f"{epoch_s:.1f} s ({served / epoch_s:,.0f} rows/s); own memory (RssAnon) "
              f"{anon_before:.0f} MB before, peak {peak:.0f} MB (+{peak - anon_before:.0f} MB) "
              f"against the entry's {size / 1e6:.0f} MB: served from the memory map, "
              "not loaded whole")  # fmt: skip

        check = np.random.default_rng(0).choice(args.rows, 512, replace=False)
        exact = backbone.exact(check, batch_rows)
        stored = torch.from_numpy(rows.take(check))
        head = ClassificationHead(backbone.embedding_dim, 200, 4, input_norm=True,
                                  layer_sum=True, layer_dims=backbone.layer_dims)  # fmt: skip
        head.standardizer.fit(exact.sum(0), exact.square().sum(0), len(exact))
        with torch.no_grad():
            change = float((head(stored) - head(exact)).abs().max())
        print(f"head logits, float16 rows as served vs exact float32, 512 rows: max change "
              f"{change:.2e} ({'within' if change < 1e-3 else 'OVER'} 1e-3)")  # fmt: skip
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Training rows of `make bench`: the loader's share of a step, and Lightning vs a bare loop.

Batches come from a memory-mapped patch array like the feature cache's. "Today" is the
per-segment path this replaced (one `__getitem__` per segment, then the default collate),
rebuilt here as the comparison; ours is one fancy index per batch (segser.data.batches).
The patch file and both training loops are bench_gpu's, run here in float32 on the CPU.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_loops import FLOAT32, bare_loop, lightning_loop, patch_file, segment_rows
from bench_units import rate
from torch.utils.data import DataLoader, Dataset

ROWS = 8192
CPU = torch.device("cpu")


class PerSegment(Dataset):
    """The replaced path: one memmap read and one small tensor per segment."""

    def __init__(self, patches: np.ndarray) -> None:
        self.patches = patches

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int, int]:
        patch = torch.from_numpy(np.array(self.patches[item], dtype=np.float32))
        return patch.unsqueeze(0), item % 4, item // 8


def loaders(patches: np.memmap, batch_size: int) -> dict[str, DataLoader]:
    ours, sampler = segment_rows(patches, batch_size)
    return {
        "today": DataLoader(PerSegment(patches), batch_size=batch_size, shuffle=True),
        "ours": DataLoader(ours, sampler=sampler, batch_size=None),
    }


def seconds_per_batch(loader: DataLoader, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        batches = sum(1 for _ in loader)
        best = min(best, (time.perf_counter() - start) / batches)
    return best


def training_rows(batch_size: int, steps: int, repeats: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        patches = patch_file(Path(tmp), ROWS)
        found = loaders(patches, batch_size)
        today = seconds_per_batch(found["today"], repeats)
        ours = seconds_per_batch(found["ours"], repeats)
        batches = [b for _, b in zip(range(steps + 1), found["ours"], strict=False)]
    bare = bare_loop(batches, CPU, warmup=1, lever=FLOAT32)
    step_s = batch_size / bare
    lightning = lightning_loop(batches, CPU, warmup=1, lever=FLOAT32)
    rows = [
        [
            f"CPU loader, batch {batch_size} (s per batch)",
            f"{ROWS} segments",
            f"{today * 1e3:.2f} ms (per segment)",
            f"{ours * 1e3:.2f} ms",
            f"{today / ours:.1f}x",
            f"loader share of a VGGish CPU step: today {today / (today + step_s):.3%}, "
            f"ours {ours / (ours + step_s):.3%}",
        ],
        [
            f"CPU training, VGGish fine-tuning, batch {batch_size} (segments/s)",
            f"{steps} steps",
            f"{rate(bare)} (bare loop)",
            f"{rate(lightning)} (Lightning)",
            f"{lightning / bare:.2f}x",
            "same batches, one process each; first step untimed",
        ],
    ]
    for row in rows:
        print(" | ".join(row), flush=True)
    return rows

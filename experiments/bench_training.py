"""Training rows of `make bench`: the loader's share of a step, and Lightning vs a bare loop.

Batches come from a memory-mapped patch array like the feature cache's. "Today" is the
per-segment path this replaced (one `__getitem__` per segment, then the default collate),
rebuilt here as the comparison; ours is one fancy index per batch (segser.data.batches).
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from segser.data.batches import MappedRows, SegmentBatchSampler, SegmentRows
from segser.models.heads import ClassificationHead
from segser.models.module import SegmentEmotionClassifier
from segser.models.vggish import VGGish

ROWS = 8192


class PerSegment(Dataset):
    """The replaced path: one memmap read and one small tensor per segment."""

    def __init__(self, patches: np.ndarray) -> None:
        self.patches = patches

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int, int]:
        patch = torch.from_numpy(np.array(self.patches[item], dtype=np.float32))
        return patch.unsqueeze(0), item % 4, item // 8


def patch_file(directory: Path) -> np.memmap:
    data = np.memmap(directory / "patches.f32", np.float32, "w+", shape=(ROWS, 96, 64))
    data[:] = np.random.default_rng(0).standard_normal((ROWS, 96, 64), dtype=np.float32)
    data.flush()
    return np.memmap(directory / "patches.f32", np.float32, "r", shape=(ROWS, 96, 64))


def loaders(patches: np.memmap, batch_size: int) -> dict[str, DataLoader]:
    rows = np.arange(ROWS)
    ours = SegmentRows(MappedRows(patches), rows, rows % 4, rows // 8)
    sampler = SegmentBatchSampler(ROWS, batch_size, shuffle=True, seed=0)
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


def classifier() -> SegmentEmotionClassifier:
    torch.manual_seed(0)
    head = ClassificationHead(embedding_dim=128, units=200, num_classes=4)
    return SegmentEmotionClassifier(VGGish(), head, ["a", "b", "c", "d"], partial(torch.optim.Adam))


def bare_loop(batches: list[tuple[torch.Tensor, ...]]) -> float:
    """Segments/s of a plain PyTorch loop over `batches` (the first one warms up, untimed)."""
    model = classifier().train()
    optimizer = model.configure_optimizers()
    start, seen = 0.0, 0
    for step, (patches, labels, _) in enumerate(batches):
        if step == 1:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model.loss(model(patches), labels).backward()
        optimizer.step()
        seen += len(labels) if step else 0
    return seen / (time.perf_counter() - start)


class _StepClock(L.Callback):
    def __init__(self) -> None:
        self.start, self.seen = 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 1:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += len(batch[1]) if batch_idx else 0
        self.end = time.perf_counter()


def lightning_loop(batches: list[tuple[torch.Tensor, ...]]) -> float:
    clock = _StepClock()
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(classifier(), train_dataloaders=DataLoader(batches, batch_size=None))
    return clock.seen / (clock.end - clock.start)


def training_rows(batch_size: int, steps: int, repeats: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        patches = patch_file(Path(tmp))
        found = loaders(patches, batch_size)
        today = seconds_per_batch(found["today"], repeats)
        ours = seconds_per_batch(found["ours"], repeats)
        batches = [b for _, b in zip(range(steps + 1), found["ours"], strict=False)]
    bare = bare_loop(batches)
    step_s = batch_size / bare
    lightning = lightning_loop(batches)
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
            f"{bare:.1f} (bare loop)",
            f"{lightning:.1f} (Lightning)",
            f"{lightning / bare:.2f}x",
            "same batches, one process each; first step untimed",
        ],
    ]
    for row in rows:
        print(" | ".join(row), flush=True)
    return rows

"""Training loops and inputs the CPU and GPU benchmarks share (bench_training, bench_gpu).

The paper's VGGish classifier, seeded patch files and batches, a bare PyTorch loop and the
same steps through Lightning, each timed after `warmup` steps with the device synchronised.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from segser.data.batches import MappedRows, SegmentBatchSampler, SegmentRows
from segser.models.heads import ClassificationHead
from segser.models.module import SegmentEmotionClassifier
from segser.models.vggish import VGGish

TABLE3_UNITS = 200


def classifier(units: int = TABLE3_UNITS) -> SegmentEmotionClassifier:
    """VGGish + the paper's head (random weights: speed does not depend on them)."""
    torch.manual_seed(0)
    head = ClassificationHead(embedding_dim=128, units=units, num_classes=4)
    return SegmentEmotionClassifier(VGGish(), head, ["a", "b", "c", "d"], partial(torch.optim.Adam))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall-clock time covers it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_batches(
    batch_size: int, count: int, device: torch.device
) -> list[tuple[torch.Tensor, ...]]:
    """`count` random batches (patches, labels, clips) already on `device`."""
    generator = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(batch_size, 1, 96, 64, generator=generator).to(device),
            torch.randint(0, 4, (batch_size,), generator=generator).to(device),
            torch.zeros(batch_size, dtype=torch.int64, device=device),
        )
        for _ in range(count)
    ]


def patch_file(directory: Path, rows: int) -> np.memmap:
    """`rows` random patches, memory-mapped float32 like the feature cache's, opened read-only."""
    path = directory / "patches.f32"
    data = np.memmap(path, np.float32, "w+", shape=(rows, 96, 64))
    data[:] = np.random.default_rng(0).standard_normal((rows, 96, 64), dtype=np.float32)
    data.flush()
    return np.memmap(path, np.float32, "r", shape=data.shape)


def segment_rows(patches: np.memmap, batch_size: int) -> tuple[SegmentRows, SegmentBatchSampler]:
    """The training path's dataset over `patches` (4 classes, 8 segments a clip) and its sampler."""
    index = np.arange(len(patches))
    dataset = SegmentRows(MappedRows(patches), index, index % 4, index // 8)
    return dataset, SegmentBatchSampler(len(patches), batch_size, shuffle=True, seed=0)


def trained_model(device: torch.device, bf16: bool = True) -> SegmentEmotionClassifier:
    """The classifier on `device` in training mode; channels-last with `bf16` (the GPU setup)."""
    model = classifier().to(device).train()
    if bf16:
        model.speed_up(channels_last=True)
    return model


def bare_loop(
    batches: list[tuple[torch.Tensor, ...]], device: torch.device, warmup: int, bf16: bool = True
) -> float:
    """Segments/s of a plain loop (bf16 autocast with `bf16`); the first `warmup` steps untimed."""
    model = trained_model(device, bf16)
    optimizer = model.configure_optimizers()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    start, seen = 0.0, 0
    for step, (patches, labels, _) in enumerate(batches):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        with autocast:
            loss = model.loss(model(patches), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(labels) if step >= warmup else 0
    sync(device)
    return seen / (time.perf_counter() - start)


class _StepClock(L.Callback):
    """Times training steps from step `warmup` on, synchronising the device at both ends."""

    def __init__(self, device: torch.device, warmup: int) -> None:
        self.device, self.warmup = device, warmup
        self.start = self.end = 0.0
        self.seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.seen += len(batch[1])
            sync(self.device)
            self.end = time.perf_counter()


def lightning_loop(
    batches: list[tuple[torch.Tensor, ...]], device: torch.device, warmup: int, bf16: bool = True
) -> float:
    """Segments/s of Lightning on the same batches (bf16-mixed + channels-last with `bf16`)."""
    clock = _StepClock(device, warmup)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision="bf16-mixed" if bf16 else "32-true",
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[clock], limit_val_batches=0,
    )  # fmt: skip
    model = trained_model(device, bf16)
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    return clock.seen / (clock.end - clock.start)

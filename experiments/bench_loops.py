"""Training loops and inputs the CPU and GPU benchmarks share (bench_training, bench_gpu).

The paper's VGGish classifier, seeded patch files and batches, a bare PyTorch loop and the
same steps through Lightning. Both are timed the same way: the device is synchronised when
the timed steps start (after `warmup` steps) and once after the last one, never in between,
so the CPU queues kernels ahead of the GPU in both. A `Lever` says how the step runs (bf16,
channels-last, fused Adam, a CUDA graph of the whole step, torch.compile).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
Step = Callable[[torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class Lever:
    """How a training step runs; bench rows name it by `name`."""

    name: str
    bf16: bool = True  # bf16 autocast (Lightning: bf16-mixed)
    channels_last: bool = True
    fused_adam: bool = False  # torch.optim.Adam(fused=True): one kernel per parameter group
    cuda_graph: bool = False  # the whole step (forward, backward, Adam) captured and replayed
    compile_mode: str | None = None  # torch.compile(model, mode=...)


FLOAT32 = Lever("float32", bf16=False, channels_last=False)
BF16_CHANNELS_LAST = Lever("bf16-mixed + channels-last")


def classifier(
    units: int = TABLE3_UNITS, channels_last: bool = False, **adam: bool
) -> SegmentEmotionClassifier:
    """VGGish + the paper's head (random weights: speed does not depend on them)."""
    torch.manual_seed(0)
    head = ClassificationHead(embedding_dim=128, units=units, num_classes=4)
    optimizer = partial(torch.optim.Adam, **adam)
    classes = ["a", "b", "c", "d"]
    return SegmentEmotionClassifier(VGGish(), head, classes, optimizer, channels_last=channels_last)


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


def adam_options(lever: Lever, device: torch.device) -> dict[str, bool]:
    on_cuda = device.type == "cuda"
    return {"fused": lever.fused_adam and on_cuda, "capturable": lever.cuda_graph and on_cuda}


def trained_model(
    device: torch.device, lever: Lever = BF16_CHANNELS_LAST
) -> SegmentEmotionClassifier:
    """The classifier on `device` in training mode, laid out as `lever` says."""
    # .to() keeps the channels-last layout (memory_format=torch.preserve_format)
    model = classifier(channels_last=lever.channels_last, **adam_options(lever, device))
    model = model.to(device).train()
    if lever.compile_mode:
        model.compile(mode=lever.compile_mode)
    return model


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def eager_step(loss_fn: LossFn, optimizer, lever: Lever, device: torch.device) -> Step:
    autocast = partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=lever.bf16)

    def step(patches: torch.Tensor, labels: torch.Tensor) -> None:
        with autocast():
            loss = loss_fn(patches, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def graphed_step(
    loss_fn: LossFn, optimizer, lever: Lever, device: torch.device, example: Sequence[torch.Tensor]
) -> Step:
    """The whole step captured once in a CUDA graph (PyTorch's whole-network capture recipe):
    a replay launches every kernel of forward, backward and Adam at once. Shapes must not change.
    """
    patches, labels = (t.clone() for t in example[:2])
    autocast = partial(torch.autocast, "cuda", dtype=torch.bfloat16, enabled=lever.bf16)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm up (cuDNN autotuning, Adam state) outside the capture
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            with autocast(cache_enabled=False):
                loss = loss_fn(patches, labels)
            loss.backward()
            optimizer.step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)  # grads are allocated from the graph's pool
    with torch.cuda.graph(graph):
        with autocast(cache_enabled=False):
            loss = loss_fn(patches, labels)
        loss.backward()
        optimizer.step()

    def step(new_patches: torch.Tensor, new_labels: torch.Tensor) -> None:
        patches.copy_(new_patches)
        labels.copy_(new_labels)
        graph.replay()

    return step


def lever_step(
    loss_fn: LossFn, optimizer, lever: Lever, device: torch.device, example: Sequence[torch.Tensor]
) -> Step:
    """The step `lever` asks for: CUDA-graphed on CUDA when it says so, else eager."""
    if lever.cuda_graph and device.type == "cuda":
        return graphed_step(loss_fn, optimizer, lever, device, example)
    return eager_step(loss_fn, optimizer, lever, device)


def training_step(
    device: torch.device, lever: Lever, example: Sequence[torch.Tensor]
) -> tuple[SegmentEmotionClassifier, Step]:
    model = trained_model(device, lever)
    optimizer = model.configure_optimizers()

    def loss_fn(patches: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return model.loss(model(patches), labels)

    return model, lever_step(loss_fn, optimizer, lever, device, example)


def bare_loop(
    batches: list[tuple[torch.Tensor, ...]],
    device: torch.device,
    warmup: int,
    lever: Lever = BF16_CHANNELS_LAST,
) -> float:
    """Segments/s of a plain loop run as `lever` says; the first `warmup` steps untimed."""
    _, step = training_step(device, lever, batches[0])
    start, seen = 0.0, 0
    for index, (patches, labels, _) in enumerate(batches):
        if index == warmup:
            sync(device)
            start = time.perf_counter()
        step(patches, labels)
        seen += len(labels) if index >= warmup else 0
    sync(device)
    return seen / (time.perf_counter() - start)


class StepClock(L.Callback):
    """Times training steps from step `warmup` to the end of the last one, synchronising the
    device only at those two points (as bare_loop does)."""

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
        if batch_idx == trainer.num_training_batches - 1:
            sync(self.device)
            self.end = time.perf_counter()


def lightning_loop(
    batches: list[tuple[torch.Tensor, ...]],
    device: torch.device,
    warmup: int,
    lever: Lever = BF16_CHANNELS_LAST,
) -> float:
    """Segments/s of Lightning on the same batches, run as `lever` says (no CUDA graph)."""
    clock = StepClock(device, warmup)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision="bf16-mixed" if lever.bf16 else "32-true",
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[clock], limit_val_batches=0,
    )  # fmt: skip
    model = trained_model(device, lever)
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    return clock.seen / (clock.end - clock.start)

"""What Lightning and segser add to each training step, with a model that costs almost nothing.

A 1-unit linear backbone and the paper's N=200 head on batches of 32 patches, one CPU thread:
the step's own maths is tiny, so the per-step wall time of each loop is mostly its overhead.
Loops, each on the same batches: a bare PyTorch loop; Lightning with a plain LightningModule
(Lightning's own cost); Lightning with segser's SegmentEmotionClassifier; and the same with
the shipped callbacks and logger (conf/callbacks/default.yaml: early stopping, checkpoints,
the Rich progress bar; conf/logger/csv.yaml). Each figure is the median step (between the
starts of consecutive steps), the best of `repeats` interleaved rounds. Example:
    python experiments/bench_step_overhead.py [--steps 300 --repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from segser.models.heads import ClassificationHead
from segser.models.module import SegmentEmotionClassifier
from segser.setup.components import build_callbacks, build_loggers
from segser.setup.entry import composed

BATCH, UNITS = 32, 200
TITLE = (
    f"CPU per-step overhead over a bare loop, near-free model (1-unit linear backbone, "
    f"N={UNITS} head, batch {BATCH}, 1 thread; target <= 0.3 ms)"
)


class LinearBackbone(nn.Module):
    """One unit: a dot product of the flattened patch, so the step's maths costs almost nothing."""

    embedding_dim = 1

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(96 * 64, 1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.linear(patches.flatten(1))


def segser_module() -> SegmentEmotionClassifier:
    torch.manual_seed(0)
    head = ClassificationHead(embedding_dim=1, units=UNITS, num_classes=4)
    return SegmentEmotionClassifier(
        LinearBackbone(), head, list("abcd"), partial(torch.optim.Adam, lr=1e-3)
    )


class PlainModule(L.LightningModule):
    """The same network in the smallest LightningModule: what Lightning itself costs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = segser_module()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        patches, labels, _ = batch
        return self.net.loss(self.net(patches), labels)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.net.configure_optimizers()


def batches(count: int) -> list[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(0)
    clips = torch.arange(BATCH) // 4  # 4 segments a clip, each batch its own clips
    return [
        (torch.randn(BATCH, 1, 96, 64, generator=generator), (clips + i) % 4, clips + i * BATCH)
        for i in range(count)
    ]


def median_step(starts: list[float]) -> float:
    return statistics.median(b - a for a, b in itertools.pairwise(starts))


def bare(data: list[tuple[torch.Tensor, ...]]) -> float:
    model = segser_module().train()
    optimizer = model.configure_optimizers()
    starts = []
    for patches, labels, _ in data:
        starts.append(time.perf_counter())
        loss = model.loss(model(patches), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    starts.append(time.perf_counter())
    return median_step(starts)


class StepStarts(L.Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())


def lightning(
    data: list[tuple[torch.Tensor, ...]], module: L.LightningModule, shipped: bool
) -> float:
    """Median step of Lightning fitting `module` for one epoch; `shipped`: with the shipped
    callbacks and CSV logger (one validation batch, so early stopping has its metric)."""
    clock = StepStarts()
    with tempfile.TemporaryDirectory() as tmp:
        extra: dict = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
        if shipped:
            cfg = composed("train", ["dataset=demo"])
            extra = {
                "logger": build_loggers(cfg, Path(tmp), None),
                "callbacks": [*build_callbacks(cfg, Path(tmp)), clock],
                "log_every_n_steps": cfg.trainer.log_every_n_steps,
            }
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_epochs=1, enable_model_summary=False,
            num_sanity_val_steps=0, default_root_dir=tmp, **{"callbacks": [clock], **extra},
        )  # fmt: skip
        trainer.fit(
            module,
            train_dataloaders=DataLoader(data, batch_size=None),
            val_dataloaders=DataLoader(data[:1], batch_size=None) if shipped else None,
        )
    clock.starts.append(clock.starts[-1])  # the last step has no following start: drop it
    return median_step(clock.starts[:-1])


LOOPS: dict[str, Callable[[list], float]] = {
    "bare": bare,
    "Lightning, plain module": lambda data: lightning(data, PlainModule(), shipped=False),
    "Lightning + segser module": lambda data: lightning(data, segser_module(), shipped=False),
    "Lightning + segser, shipped callbacks + logger": lambda data: lightning(
        data, segser_module(), shipped=True
    ),
}


def overhead_row(steps: int = 300, repeats: int = 3) -> list[str]:
    """One bench row: median ms per step of each loop and what each adds over the bare loop."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = batches(steps)
    best: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            for name, loop in LOOPS.items():
                best[name] = min(best.get(name, float("inf")), loop(data))
    torch.set_num_threads(threads)
    ms = {name: seconds * 1e3 for name, seconds in best.items()}
    added = {name: value - ms["bare"] for name, value in ms.items() if name != "bare"}
    segser_part = ms["Lightning + segser module"] - ms["Lightning, plain module"]
    shipped = ms["Lightning + segser, shipped callbacks + logger"] - ms["Lightning + segser module"]
    row = [
        TITLE,
        f"{steps} steps x {repeats}",
        f"{ms['bare']:.3f} ms/step (bare)",
        f"{ms['Lightning + segser module']:.3f} ms/step (Lightning + segser module)",
        f"+{added['Lightning + segser module']:.3f} ms",
        f"of which segser's module {segser_part:+.3f} ms, Lightning's own "
        f"{added['Lightning, plain module']:+.3f} ms; shipped callbacks + logger "
        f"{shipped:+.3f} ms more",
    ]
    print(" | ".join(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    overhead_row(args.steps, args.repeats)


if __name__ == "__main__":
    main()

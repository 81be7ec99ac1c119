"""Benchmark: transfer learning on 2 CPU cores, with a frozen backbone's cached embeddings.

Prints (a) the wall time and mean test ALCA of the paper's Table 4 grid (head.units 100, 200, 400 x
6 seeds) and Table 3 grid (overlap/non-overlap x 6 seeds) on the demo corpus with the packaged
YAMNet frozen, run exactly as a user types them, embedding passes included (target < 3 min); (b)
the time of one training epoch on cached embeddings vs through the frozen backbone, measured in
this one process, for YAMNet and VGGish (target >= 50x); (c) fine-tuning training segments/s for
YAMNet and VGGish (random weights: speed only). Example:
    python experiments/bench_transfer.py --work-dir /tmp/segser-bench-transfer
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch
from bench_units import rate
from lightning.pytorch import Callback

from segser.models.factory import build_classifier
from segser.setup.components import build_datamodule, model_config, read_corpus
from segser.setup.entry import composed

REPO = Path(__file__).resolve().parents[1]
# The grids exactly as a user types them (docs/sweeps-and-predict.md): no hidden overrides. A frozen
# backbone takes the frozen-head training settings, and each of the two parallel jobs takes
# its share of the cores, by themselves. Data and outputs go where SEGSER_DATA_DIR and
# SEGSER_OUTPUT_DIR point, as for a user who sets them.
GRIDS = {
    "Table 4": [
        "experiment=paper_table4",
        "dataset=demo",
        "backbone=yamnet",
        "backbone.freeze=true",
    ],
    "Table 3": [
        "experiment=paper_table3",
        "dataset=demo",
        "backbone=yamnet",
        "backbone.freeze=true",
    ],
}


def user_grid(name: str, work: Path) -> None:
    """(a) one grid through `python -m segser.train -m`, from an empty feature cache."""
    data, out = work / "data", work / "outputs" / name.replace(" ", "")
    shutil.rmtree(data / "cache", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "SEGSER_DATA_DIR": str(data), "SEGSER_OUTPUT_DIR": str(out)}
    # Write the demo corpus first: it stands in for a corpus already on disk.
    read_corpus(composed("train", ["dataset=demo", f"paths.data_dir={data}"]).dataset)
    command = [sys.executable, "-m", "segser.train", "-m", *GRIDS[name]]
    print(f"{name} grid: python -m segser.train -m {' '.join(GRIDS[name])}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    runs = [json.loads(p.read_text()) for p in out.glob("multirun/*/*/*/metrics.json")]
    alca = [run["metrics"]["ALCA"] for run in runs]
    epochs = [run["epochs_trained"] for run in runs]
    status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr[-400:]}"
    print(
        f"(a) {name} grid, {len(runs)} jobs: {seconds:.0f} s wall (target < 180 s), "
        f"test ALCA mean {statistics.mean(alca):.3f} +- {statistics.stdev(alca):.3f}, "
        f"epochs {min(epochs)}-{max(epochs)} [{status}]",
        flush=True,
    )


class EpochTimer(Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def epoch_seconds(cfg, cache_embeddings: bool, epochs: int) -> float:
    """Seconds of one training epoch (best of `epochs`), caches built beforehand."""
    L.seed_everything(0)
    model = build_classifier(model_config(cfg))
    datamodule = build_datamodule(cfg, read_corpus(cfg.dataset), backbone=model.backbone)
    if not cache_embeddings:
        datamodule.frozen_backbone = None  # the same run, through the frozen backbone
    datamodule.prepare_data()
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=epochs,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=datamodule)
    return min(timer.seconds)


# (b) for the demo's frozen YAMNet, and for the paper's VGGish (random weights: the epoch time
# does not depend on them), whose forward costs about 10x YAMNet's on these cores.
FROZEN_BACKBONES = {
    "YAMNet (packaged weights)": [],
    "VGGish (random weights, timing only)": ["backbone=vggish", "backbone.weights=none"],
}


def cached_vs_backbone(work: Path) -> None:
    """(b) one epoch of the demo's frozen-backbone head: cached embeddings vs the backbone."""
    for label, overrides in FROZEN_BACKBONES.items():
        cfg = composed("train", ["experiment=demo", f"paths.data_dir={work / 'data'}", *overrides])
        cached = epoch_seconds(cfg, cache_embeddings=True, epochs=3)
        direct = epoch_seconds(cfg, cache_embeddings=False, epochs=1)
        print(
            f"(b) one training epoch, frozen {label}: cached embeddings {cached:.2f} s, "
            f"backbone each epoch {direct:.1f} s: {direct / cached:.0f}x (target >= 50x)",
            flush=True,
        )


def fine_tuning_speed(backbone: str, steps: int, batch_size: int = 32) -> float:
    """Training segments/s of the whole network (forward, backward, Adam step), random weights."""
    cfg = composed("train", [f"backbone={backbone}", "backbone.weights=none"])
    model = build_classifier(model_config(cfg)).train()
    optimizer = model.configure_optimizers()
    patches, labels = torch.randn(batch_size, 1, 96, 64), torch.arange(batch_size) % 4
    start = 0.0
    for step in range(steps + 1):
        if step == 1:  # the first step warms up allocators and kernels
            start = time.perf_counter()
        optimizer.zero_grad()
        model.loss(model(patches), labels).backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/segser-bench-transfer"))
    parser.add_argument("--parts", default="abc", help="which of a, b, c to run")
    parser.add_argument("--steps", type=int, default=5, help="fine-tuning steps per backbone")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "a" in args.parts:
        for name in GRIDS:
            user_grid(name, args.work_dir)
    if "b" in args.parts:
        cached_vs_backbone(args.work_dir)
    if "c" in args.parts:
        speeds = {name: fine_tuning_speed(name, args.steps) for name in ("yamnet", "vggish")}
        print(
            "(c) fine-tuning, training segments/s: "
            + ", ".join(f"{name} {rate(speed)}" for name, speed in speeds.items())
            + f" (YAMNet {speeds['yamnet'] / speeds['vggish']:.1f}x VGGish)"
        )


if __name__ == "__main__":
    main()

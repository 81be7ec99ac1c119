"""GPU rows of `make bench` (issues 11 and 22): VGGish fine-tuning speed lever by lever, the
loader's share, Lightning vs a bare loop, and several seeds on one GPU.

On a GPU, each row is printed as soon as it is measured (a time limit keeps what came before):
- levers: segments/s, achieved TFLOP/s and share of the card's dense bf16 peak of VGGish
  fine-tuning (the paper's network, N=200 head) at batch 32 and 256, one lever added per row:
  strict float32, the fast path (TF32 + cuDNN autotuning, segser's CUDA default), bf16-mixed,
  channels-last, fused Adam, a CUDA graph of the whole step; then batch 1024 with all of them;
- loader: its share of a training step (split resident on the GPU, pinned host batches);
- lightning: Lightning vs a bare loop on the same device-resident batches, timed alike;
- sweep: the Table 3 model trained by 1, 2 and 4 concurrent processes on one GPU;
- stacked: 1, 2, 4 and 6 seeds stacked in one process (segser.models.stacked, torch.func);
- compile: torch.compile of the model (default and reduce-overhead modes; compiles first).
`--smoke` runs the same code on CPU at toy sizes so a test can check its rows. Example:
    python experiments/bench_gpu.py [--smoke] [--rows levers,loader,lightning,sweep,stacked]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from bench_loops import (
    BF16_CHANNELS_LAST,
    Lever,
    bare_loop,
    device_batches,
    lever_step,
    lightning_loop,
    patch_file,
    segment_rows,
    sync,
    trained_model,
)
from bench_units import per_second
from torch import nn
from torch.utils.data import DataLoader

from segser.data.batches import DeviceBatches
from segser.models.heads import ClassificationHead
from segser.models.stacked import StackedSeeds, summed_loss
from segser.models.vggish import VGGish
from segser.setup.cuda_numerics import FAST, STRICT_FP32, CudaNumerics, cuda_numerics

# VGGish forward is ~1.73 GFLOP per 96x64 patch; a training step (forward + backward) ~3x that.
TRAIN_FLOP_PER_SEGMENT = 3 * 1.73e9
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), first matching name wins.
BF16_PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
]
BATCH_SIZES = (32, 256)
BIG_BATCH = 1024
SWEEP_JOBS = (1, 2, 4)
STACKED_SEEDS = (1, 2, 4, 6)
FUSED = Lever("bf16-mixed + channels-last + fused Adam", fused_adam=True)
GRAPHED = Lever(FUSED.name + " + CUDA graph of the step", fused_adam=True, cuda_graph=True)
# Each lever with the float32 settings it runs under; each row adds one thing to the one before.
LEVERS: tuple[tuple[CudaNumerics, Lever], ...] = (
    (STRICT_FP32, Lever("float32 strict (IEEE, no autotuning)", bf16=False, channels_last=False)),
    (FAST, Lever("float32 fast path (TF32 + cuDNN autotuning)", bf16=False, channels_last=False)),
    (FAST, Lever("bf16-mixed", channels_last=False)),
    (FAST, BF16_CHANNELS_LAST),
    (FAST, FUSED),
    (FAST, GRAPHED),
)
COMPILED = (
    Lever(FUSED.name + " + torch.compile", fused_adam=True, compile_mode="default"),
    Lever(FUSED.name + " + torch.compile reduce-overhead (CUDA graphs)", fused_adam=True,
          compile_mode="reduce-overhead"),
)  # fmt: skip
ROWS = ("levers", "loader", "lightning", "sweep", "stacked", "compile")


def bf16_peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak from BF16_PEAK_TFLOPS, or None when it is not listed."""
    return next((peak for name, peak in BF16_PEAK_TFLOPS if name in device_name), None)


def lever_title(lever: Lever, batch_size: int) -> str:
    return f"GPU VGGish fine-tuning, {lever.name}, batch {batch_size}"


def figures(
    sizes: tuple[int, ...] = BATCH_SIZES,
    jobs: tuple[int, ...] = SWEEP_JOBS,
    seeds: tuple[int, ...] = STACKED_SEEDS,
) -> tuple[str, ...]:
    """gpu_rows' row titles in its order; bench.py prints them as "not measured" without CUDA."""
    batch = sizes[0]
    return (
        *(lever_title(lever, b) for _, lever in LEVERS for b in sizes),
        lever_title(GRAPHED, BIG_BATCH),
        f"GPU loader share of a training step, batch {batch} (target <= 5%)",
        f"GPU Lightning vs bare loop, batch {batch} (target >= 0.95x)",
        f"GPU Table 3 sweep on one GPU, {'/'.join(map(str, jobs))} jobs, batch {batch}",
        f"GPU Table 3 seeds stacked in one process, {'/'.join(map(str, seeds))} seeds, "
        f"batch {batch} each",
        *(lever_title(lever, b) for lever in COMPILED for b in sizes),
    )


def speed_row(title: str, rate: float, steps: int, peak: float | None, name: str) -> list[str]:
    tflops = rate * TRAIN_FLOP_PER_SEGMENT / 1e12
    share = f"{tflops / peak:.1%} of {peak:g} bf16 peak" if peak else "bf16 peak unknown"
    return [title, f"{steps} steps", "-", per_second(rate, "segments"), f"{tflops:.1f} TFLOP/s",
            f"{share}; {name}"]  # fmt: skip


def seconds_per_batch(loader, device: torch.device, batches: int) -> float:
    """Wall time per batch of fetching it and having it on `device` (non-blocking copies)."""
    sync(device)
    start, done = time.perf_counter(), 0
    for features, labels, _ in loader:
        features = features.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        done += 1
        if done == batches:
            break
    sync(device)
    return (time.perf_counter() - start) / done


def loader_shares(batch_size: int, rows: int, step_s: float, device: torch.device) -> dict:
    """Loader seconds per batch and share of a step: split resident on the device, and pinned
    host batches from a memory-mapped cache-like array."""
    with tempfile.TemporaryDirectory() as tmp:
        dataset, sampler = segment_rows(patch_file(Path(tmp), rows), batch_size)
        found = {
            "resident": DeviceBatches(dataset, sampler, device),
            "pinned": DataLoader(
                dataset, sampler=sampler, batch_size=None, pin_memory=device.type == "cuda"
            ),
        }
        batches = len(sampler)
        seconds = {
            name: seconds_per_batch(loader, device, batches) for name, loader in found.items()
        }
    return {name: (s, s / (s + step_s)) for name, s in seconds.items()}


def loader_row(
    title: str, batch: int, step_s: float, smoke: bool, device: torch.device
) -> list[str]:
    shares = loader_shares(batch, 64 if smoke else 8192, step_s, device)
    return [title, f"{step_s * 1e3:.2f} ms step", f"pinned host {shares['pinned'][1]:.1%}",
            f"resident {shares['resident'][1]:.1%}", "-",
            f"per batch: pinned {shares['pinned'][0] * 1e3:.3f} ms, resident "
            f"{shares['resident'][0] * 1e3:.3f} ms"]  # fmt: skip


def sweep_worker(
    batch_size: int, steps_warmup: int, seconds: float, barrier: Path, jobs: int
) -> None:
    """One Table 3 job's training steps: warm up, wait for every job, count segments in a window."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = device_batches(batch_size, 4, device)
    model = trained_model(device, BF16_CHANNELS_LAST)
    optimizer = model.configure_optimizers()
    step = lever_step(
        lambda x, y: model.loss(model(x), y), optimizer, BF16_CHANNELS_LAST, device, batches[0]
    )
    with cuda_numerics(FAST if device.type == "cuda" else None):
        for patches, labels, _ in batches[:steps_warmup]:
            step(patches, labels)
        sync(device)
        (barrier / str(time.time_ns())).touch()
        while len(list(barrier.iterdir())) < jobs:  # every job starts its window together
            time.sleep(0.01)
        start, seen, k = time.perf_counter(), 0, 0
        while time.perf_counter() - start < seconds:
            patches, labels, _ = batches[k % len(batches)]
            step(patches, labels)
            seen, k = seen + batch_size, k + 1
        sync(device)
    print(f"SEGMENTS_PER_S {seen / (time.perf_counter() - start)}", flush=True)


def sweep_throughput(jobs: int, batch_size: int, seconds: float, warmup: int) -> float:
    """Segments/s summed over `jobs` concurrent worker processes on one device."""
    with tempfile.TemporaryDirectory() as barrier:
        command = [sys.executable, __file__, "--worker", "--batch-size", str(batch_size),
                   "--seconds", str(seconds), "--barrier", barrier, "--jobs", str(jobs),
                   "--warmup", str(warmup)]  # fmt: skip
        root = str(Path(__file__).resolve().parents[1])  # workers import this checkout's segser
        paths = [root, *filter(None, [os.environ.get("PYTHONPATH")])]  # extend, never replace
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(jobs)
        ]
        outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise RuntimeError(f"a sweep worker failed: {[p.returncode for p in processes]}")
    rates = [float(line.split()[1]) for out in outputs for line in out.splitlines()
             if line.startswith("SEGMENTS_PER_S")]  # fmt: skip
    return sum(rates)


def table3_net(seed: int) -> nn.Module:
    """VGGish + the N=200 head as one plain module (what StackedSeeds stacks), seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(VGGish(), ClassificationHead(embedding_dim=128, units=200, num_classes=4))


def stacked_throughput(
    seeds: int, batch_size: int, steps: int, warmup: int, device: torch.device
) -> float:
    """Segments/s summed over `seeds` copies trained in one process, each on its own batches,
    with bf16 autocast, fused Adam and (on CUDA) a CUDA graph of the stacked step."""
    lever = Lever("stacked", channels_last=False, fused_adam=True, cuda_graph=True)
    stacked = StackedSeeds([table3_net(seed) for seed in range(seeds)]).to(device)
    on_cuda = device.type == "cuda"
    optimizer = torch.optim.Adam(stacked.parameters(), fused=on_cuda, capturable=on_cuda)
    loss = nn.CrossEntropyLoss()
    batches = [
        (torch.stack([patches] * seeds), torch.stack([labels] * seeds))
        for patches, labels, _ in device_batches(batch_size, 4, device)
    ]
    step = lever_step(lambda x, y: summed_loss(stacked(x), y, loss), optimizer, lever, device,
                      batches[0])  # fmt: skip
    start = 0.0
    for index in range(warmup + steps):
        if index == warmup:
            sync(device)
            start = time.perf_counter()
        step(*batches[index % len(batches)])
    sync(device)
    return seeds * batch_size * steps / (time.perf_counter() - start)


def gpu_rows(
    device: torch.device, smoke: bool = False, rows: tuple[str, ...] = ROWS
) -> list[list[str]]:
    """The GPU figures as bench table rows (on CPU with `smoke`: toy sizes, same code)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke)"
    peak = bf16_peak_tflops(name)
    sizes = (1, 2) if smoke else BATCH_SIZES
    jobs = SWEEP_JOBS[:2] if smoke else SWEEP_JOBS
    seeds = STACKED_SEEDS[:2] if smoke else STACKED_SEEDS
    titles = iter(figures(sizes, jobs, seeds))
    on_cuda = device.type == "cuda"
    warmup = 1 if smoke else 5
    steps = {b: 2 if smoke else (100 if b <= 32 else 40) for b in (*sizes, BIG_BATCH)}
    batch = sizes[0]
    out: list[list[str]] = []

    def emit(row: list[str]) -> None:
        out.append(row)
        print(" | ".join(row), flush=True)

    @contextmanager
    def guarded(title: str) -> Iterator[None]:
        """One row's failure becomes a row saying so; the rows after it are still measured."""
        try:
            yield
        except Exception as error:  # any failure: report it, go on
            if smoke:
                raise
            emit([title, "-", "-", "failed", "-", f"{type(error).__name__}: {error}"[:300]])
            traceback.print_exc()

    def lever_rows(levers: tuple[tuple[CudaNumerics, Lever], ...], batch_sizes) -> dict:
        rates = {}
        for numerics, lever in levers:
            for b in batch_sizes:
                title = next(titles)
                with guarded(title), cuda_numerics(numerics if on_cuda else None):
                    batches = device_batches(b, warmup + steps[b], device)
                    rates[lever.name, b] = bare_loop(batches, device, warmup, lever)
                    emit(speed_row(title, rates[lever.name, b], steps[b], peak, name))
                    del batches
        return rates

    rates: dict = {}
    skip = len(LEVERS) * len(sizes) + 1
    if "levers" in rows:
        rates = lever_rows(LEVERS, sizes)
        if not smoke:
            rates.update(lever_rows(((FAST, GRAPHED),), (BIG_BATCH,)))
        else:
            next(titles)
    else:
        for _ in range(skip):
            next(titles)
    loader, lightning_vs_bare, sweep, stacked = (next(titles) for _ in range(4))
    if {"loader", "lightning"} & set(rows):
        with guarded(f"{loader} / {lightning_vs_bare}"), cuda_numerics(FAST if on_cuda else None):
            batches = device_batches(batch, warmup + steps[batch], device)
            bare = rates.get((BF16_CHANNELS_LAST.name, batch)) or bare_loop(batches, device, warmup)
            if "loader" in rows:
                emit(loader_row(loader, batch, batch / bare, smoke, device))
            if "lightning" in rows:
                lightning = lightning_loop(batches, device, warmup)
                emit([lightning_vs_bare, f"{steps[batch]} steps",
                      per_second(bare, "segments") + " (bare)",
                      per_second(lightning, "segments") + " (Lightning)",
                      f"{lightning / bare:.2f}x",
                      "same device-resident batches, one process, bf16-mixed + channels-last; "
                      "both synchronised only at the ends"])  # fmt: skip
    if "sweep" in rows:
        with guarded(sweep):
            window = 0.5 if smoke else 6.0
            summed = {j: sweep_throughput(j, batch, window, warmup) for j in jobs}
            emit([sweep, "segments/s summed", f"{summed[1]:,.0f} (1 job)",
                  ", ".join(f"{j} jobs {r:,.0f}" for j, r in summed.items() if j > 1),
                  f"{summed[jobs[-1]] / summed[1]:.2f}x",
                  "one process per job (VGGish + N=200 head, bf16, channels-last); "
                  f"common timed window of {window:g} s"])  # fmt: skip
    if "stacked" in rows:
        with guarded(stacked), cuda_numerics(FAST if on_cuda else None):
            summed = {k: stacked_throughput(k, batch, steps[batch], warmup, device) for k in seeds}
            emit([stacked, "segments/s summed", f"{summed[1]:,.0f} (1 seed)",
                  ", ".join(f"{k} seeds {r:,.0f}" for k, r in summed.items() if k > 1),
                  f"{summed[seeds[-1]] / summed[1]:.2f}x",
                  "torch.func.vmap over stacked parameters, each seed its own batches; bf16, "
                  "fused Adam, CUDA graph of the stacked step"])  # fmt: skip
    if "compile" in rows:
        lever_rows(tuple((FAST, lever) for lever in COMPILED), sizes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes, runs on CPU")
    parser.add_argument(
        "--rows", default=None, help=f"some of {','.join(ROWS)} (default: all; --smoke: no compile)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=8.0, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sweep_worker(args.batch_size, args.warmup, args.seconds, args.barrier, args.jobs)
        return
    default = ROWS[:-1] if args.smoke else ROWS  # compiling on CPU takes minutes
    rows = tuple(r for r in args.rows.split(",") if r) if args.rows else default
    if unknown := set(rows) - set(ROWS):
        parser.error(f"unknown rows {sorted(unknown)}; choose from {','.join(ROWS)}")
    if not args.smoke and not torch.cuda.is_available():
        print("not measured (no CUDA); --smoke runs the code on CPU")
        return
    on_cuda = torch.cuda.is_available() and not args.smoke
    gpu_rows(torch.device("cuda" if on_cuda else "cpu"), smoke=args.smoke, rows=rows)


if __name__ == "__main__":
    main()

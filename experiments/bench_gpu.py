"""GPU rows of `make bench` (issue 11 §2-§4): VGGish fine-tuning speed, loader share, sweeps.

On a GPU: segments/s and achieved TFLOP/s of VGGish fine-tuning (bf16-mixed, channels-last)
at batch 32 and 256 against the card's dense bf16 peak; the loader's share of a training step
(the whole split resident on the GPU, and pinned host batches); Lightning vs a bare loop on the
same device-resident batches; the Table 3 model trained by 1, 2 and 4 concurrent processes on
one GPU (segments/s summed over a common time window). `--smoke` runs the same code on CPU at
toy sizes so a test can check it prints its rows. Example:
    python experiments/bench_gpu.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_loops import (
    bare_loop,
    device_batches,
    lightning_loop,
    patch_file,
    segment_rows,
    sync,
    trained_model,
)
from torch.utils.data import DataLoader

from segser.data.batches import DeviceBatches

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
SWEEP_JOBS = (1, 2, 4)


def bf16_peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak from BF16_PEAK_TFLOPS, or None when it is not listed."""
    return next((peak for name, peak in BF16_PEAK_TFLOPS if name in device_name), None)


def figures(
    sizes: tuple[int, ...] = BATCH_SIZES, jobs: tuple[int, ...] = SWEEP_JOBS
) -> tuple[str, ...]:
    """gpu_rows' row titles in its order; bench.py prints them as "not measured" without CUDA."""
    batch = sizes[0]
    return (
        *(f"GPU VGGish fine-tuning, bf16-mixed + channels-last, batch {b}" for b in sizes),
        f"GPU loader share of a training step, batch {batch} (target <= 5%)",
        f"GPU Lightning vs bare loop, batch {batch} (target >= 0.95x)",
        f"GPU Table 3 sweep on one GPU, {'/'.join(map(str, jobs))} jobs, batch {batch}",
    )


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


def sweep_worker(
    batch_size: int, steps_warmup: int, seconds: float, barrier: Path, jobs: int
) -> None:
    """One Table 3 job's training steps: warm up, wait for every job, count segments in a window."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = device_batches(batch_size, 4, device)
    model = trained_model(device)
    optimizer = model.configure_optimizers()

    def step(patches: torch.Tensor, labels: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model.loss(model(patches), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

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
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        }
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


def gpu_rows(device: torch.device, smoke: bool = False) -> list[list[str]]:
    """The GPU figures as bench table rows (on CPU with `smoke`: toy sizes, same code)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke)"
    peak = bf16_peak_tflops(name)
    sizes = (1, 2) if smoke else BATCH_SIZES
    jobs = SWEEP_JOBS[:2] if smoke else SWEEP_JOBS
    *tuning, loader, lightning_vs_bare, sweep = figures(sizes, jobs)
    steps, warmup = (2, 1) if smoke else (30, 5)
    rows, batches, rates = [], {}, {}
    for title, batch_size in zip(tuning, sizes, strict=True):
        batches[batch_size] = device_batches(batch_size, steps, device)
        rate = rates[batch_size] = bare_loop(batches[batch_size], device, warmup)
        tflops = rate * TRAIN_FLOP_PER_SEGMENT / 1e12
        share = f"{tflops / peak:.1%} of {peak:g} bf16 peak" if peak else "bf16 peak unknown"
        target = " (target >= 40%)" if batch_size == sizes[-1] else ""
        rows.append([title, f"{steps - warmup} steps", "-", f"{rate:,.0f} segments/s",
                     f"{tflops:.1f} TFLOP/s", f"{share}{target}; {name}"])  # fmt: skip
    batch = sizes[0]
    step_s = batch / rates[batch]
    shares = loader_shares(batch, 64 if smoke else 8192, step_s, device)
    rows.append([loader, f"{step_s * 1e3:.2f} ms step", f"pinned host {shares['pinned'][1]:.1%}",
                 f"resident {shares['resident'][1]:.1%}", "-",
                 f"per batch: pinned {shares['pinned'][0] * 1e3:.3f} ms, resident "
                 f"{shares['resident'][0] * 1e3:.3f} ms"])  # fmt: skip
    bare = rates[batch]  # the fine-tuning row's bare loop, on the same batches
    lightning = lightning_loop(batches[batch], device, warmup)
    rows.append([lightning_vs_bare, f"{steps - warmup} steps", f"{bare:,.0f} segments/s (bare)",
                 f"{lightning:,.0f} segments/s (Lightning)", f"{lightning / bare:.2f}x",
                 "same device-resident batches, one process, bf16-mixed"])  # fmt: skip
    summed = {j: sweep_throughput(j, batch, 0.5 if smoke else 20.0, warmup) for j in jobs}
    rows.append([sweep, "segments/s summed", f"{summed[1]:,.0f} (1 job)",
                 ", ".join(f"{j} jobs {r:,.0f}" for j, r in summed.items() if j > 1),
                 f"{summed[jobs[-1]] / summed[1]:.2f}x",
                 "one process per job (VGGish + N=200 head, bf16, channels-last); "
                 "common timed window"])  # fmt: skip
    for row in rows:
        print(" | ".join(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes, runs on CPU")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sweep_worker(args.batch_size, args.warmup, args.seconds, args.barrier, args.jobs)
        return
    if not args.smoke and not torch.cuda.is_available():
        print("not measured (no CUDA); --smoke runs the code on CPU")
        return
    gpu_rows(torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"),
             smoke=args.smoke)  # fmt: skip


if __name__ == "__main__":
    main()

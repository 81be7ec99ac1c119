"""`make bench`: every performance figure in one Markdown table, printed and written to a file.

Rows: features (torchvggish reference vs ours) from 1 s clips to 10-minute recordings at
8-48 kHz, mono and stereo; the 12 h feature-cache build (`--cache-12h`, takes a while); the
CPU loader and its share of a training step; Lightning vs a bare loop; the transfer issue's
frozen-sweep figures (experiments/bench_transfer.py, when present); GPU rows
(experiments/bench_gpu.py) when CUDA is available, else "not measured (no CUDA)". Example:
    python experiments/bench.py --out outputs/bench.md [--cache-12h] [--hour]
"""

from __future__ import annotations

import os

# The reference's numpy BLAS threads only spin on its tiny [98, 257] x [257, 64] products (6-7x
# slower on a loaded 2-core machine); one thread is the reference at its best.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_cache_build import cache_row
from bench_feature_range import default_cases, feature_rows
from bench_gpu import gpu_rows
from bench_training import training_rows

HEADER = ["figure", "amount", "reference / today", "ours", "ratio", "notes"]
TRANSFER_SCRIPT = Path(__file__).resolve().parent / "bench_transfer.py"
NO_GPU = "not measured (no CUDA)"
GPU_FIGURES = [
    "GPU features: patches/s vs the reference (target >= 100x)",
    "GPU loader share of a training step (target <= 5%)",
    "GPU VGGish fine-tuning, bf16, batch 32: segments/s, TFLOP/s, share of bf16 peak",
    "GPU VGGish fine-tuning, bf16, batch 256: segments/s, TFLOP/s (target >= 40% of peak)",
    "GPU Lightning vs bare loop (target >= 0.95x)",
    "GPU Table 3 sweep on one GPU, 1/2/4 jobs: segments/s summed",
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, {gpu}; load average {load} at start "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
    )


def transfer_rows() -> list[list[str]]:
    """The transfer issue's figures: its Markdown rows, else its "(a) ..." figure lines."""
    name = "transfer (experiments/bench_transfer.py)"
    if not TRANSFER_SCRIPT.exists():
        return [[name, "-", "-", "not measured", "-", "script not present"]]
    output = subprocess.run(
        [sys.executable, str(TRANSFER_SCRIPT)], capture_output=True, text=True, check=False
    )
    lines = [line.strip() for line in output.stdout.splitlines()]
    table = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in lines
        if line.startswith("|") and not set(line) <= set("|-: ")
    ][1:]  # without the header
    figures = [[name, "-", "-", line, "-", "-"] for line in lines if re.match(r"\(\w\) ", line)]
    rows = [[*row, *["-"] * len(HEADER)][: len(HEADER)] for row in table] or figures
    if output.returncode != 0 or not rows:
        tail = (output.stderr.strip().splitlines() or ["no figures printed"])[-1]
        rows.append([name, "-", "-", "failed", "-", tail])
    return rows


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench.md"))
    parser.add_argument("--cache-12h", action="store_true", help="build a 12 h feature cache")
    parser.add_argument("--cache-work-dir", type=Path, default=Path("data/bench-cache"))
    parser.add_argument("--hour", action="store_true", help="add a one-hour recording")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs (best kept)")
    parser.add_argument("--train-steps", type=int, default=5, help="timed CPU training steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    where = machine()
    print(where, flush=True)
    rows = feature_rows(default_cases(args.hour), args.repeats, torch.device("cpu"))
    if args.cache_12h:
        rows.append(cache_row(12.0, 10.0, args.cache_work_dir))
    else:
        rows.append(["feature cache build, 12 h of audio", "-", "-", "not measured", "-",
                     "run with --cache-12h"])  # fmt: skip
    rows += training_rows(batch_size=32, steps=args.train_steps, repeats=args.repeats)
    rows += transfer_rows()
    if torch.cuda.is_available():
        rows += feature_rows(default_cases(False)[:5], args.repeats, torch.device("cuda"))
        rows += gpu_rows(torch.device("cuda"))
    else:
        rows += [[figure, "-", "-", NO_GPU, "-", "-"] for figure in GPU_FIGURES]
    table = f"Machine: {where}\n\n{markdown(rows)}\n"
    print("\n" + table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

"""`make bench`: every performance figure in one Markdown table, printed and written to a file.

Rows: features (torchvggish reference vs ours) from 1 s clips to 10-minute recordings at
8-48 kHz, mono and stereo; the 12 h feature-cache build (`--cache-12h`, takes a while); the
CPU loader and its share of a training step; Lightning vs a bare loop; the transfer issue's
frozen-sweep figures (experiments/bench_transfer.py); the SSL backbones' embedding and
fine-tuning speed (experiments/bench_ssl.py: base models on CPU, large ones with --ssl-large);
with CUDA, GPU rows (features on the GPU, experiments/bench_gpu.py, bench_ssl.py in bf16),
else the same figures "not measured (no CUDA)". Example:
    python experiments/bench.py --out outputs/bench.md [--cache-12h] [--hour] [--ssl-large]
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
from bench_feature_range import default_cases, feature_rows, figure
from bench_gpu import figures, gpu_rows
from bench_ssl import BACKBONES, BASE, ssl_rows
from bench_step_overhead import overhead_row
from bench_training import training_rows

HEADER = ["figure", "amount", "reference / today", "ours", "ratio", "notes"]
TRANSFER_SCRIPT = Path(__file__).resolve().parent / "bench_transfer.py"
NO_GPU = "not measured (no CUDA)"
CUDA = torch.device("cuda")
GPU_FEATURE_CASES = default_cases(False)[:5]  # the 16 kHz mono lengths


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
    """bench_transfer's "(a) ..." figure lines, and a failure row if it fails or prints none."""
    name = "transfer (experiments/bench_transfer.py)"
    output = subprocess.run(
        [sys.executable, str(TRANSFER_SCRIPT)], capture_output=True, text=True, check=False
    )
    lines = [line.strip() for line in output.stdout.splitlines()]
    rows = [[name, "-", "-", line, "-", "-"] for line in lines if re.match(r"\(\w\) ", line)]
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
    parser.add_argument("--ssl-large", action="store_true", help="CPU rows of the large SSL models")
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
    rows.append(overhead_row(repeats=max(args.repeats, 3)))
    rows += transfer_rows()
    rows += ssl_rows(torch.device("cpu"), BACKBONES if args.ssl_large else BASE)
    if not args.ssl_large:
        rows += [[f"{name} embedding pass and fine-tuning (CPU)", "-", "-", "not measured", "-",
                  "run with --ssl-large"] for name in BACKBONES[len(BASE):]]  # fmt: skip
    if torch.cuda.is_available():
        rows += feature_rows(GPU_FEATURE_CASES, args.repeats, CUDA)
        rows += gpu_rows(CUDA)
        rows += ssl_rows(CUDA)
    else:
        titles = [figure(case, CUDA) for case in GPU_FEATURE_CASES] + list(figures())
        titles += [f"{name} embedding pass and fine-tuning (GPU, bf16)" for name in BACKBONES]
        rows += [[title, "-", "-", NO_GPU, "-", "-"] for title in titles]
    table = f"Machine: {where}\n\n{markdown(rows)}\n"
    print("\n" + table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

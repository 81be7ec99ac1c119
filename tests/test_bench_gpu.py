"""The GPU benchmark's code path runs (toy sizes on CPU) and prints its rows; not timed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.segser_cli import child_pythonpath

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "bench_gpu.py"
FIGURES = [
    r"fine-tuning, float32 strict \(IEEE, no autotuning\), batch 1 \| 2 steps \| - \| [\d,.]+ segm",
    r"fine-tuning, float32 fast path \(TF32 \+ cuDNN autotuning\), batch 2 \|",
    r"fine-tuning, bf16-mixed \+ channels-last, batch 1 \| 2 steps \| - \| [\d,.]+ segments/s",
    r"fine-tuning, bf16-mixed \+ channels-last \+ fused Adam \+ CUDA graph of the step, batch 2 \|",
    r"loader share of a training step, batch 1 .*pinned host [\d.]+% \| resident [\d.]+%",
    r"Lightning vs bare loop, batch 1 .*\| [\d.]+x \|",
    r"Table 3 sweep on one GPU, 1/2 jobs, batch 1 \| segments/s summed \| [\d,.]+ \(1 job\) \| 2 ",
    r"seeds stacked in one process, 1/2 seeds, batch 1 each \| segments/s summed \| [\d,.]+ \(1 ",
]


def run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": child_pythonpath()}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_smoke_prints_every_gpu_figure() -> None:
    out = run("--smoke")
    for figure in FIGURES:
        assert re.search(figure, out), f"missing {figure!r} in:\n{out}"


def test_bf16_peak_table() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    from bench_gpu import bf16_peak_tflops

    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0  # not the SXM figure
    assert bf16_peak_tflops("NVIDIA A100-SXM4-40GB") == 312.0
    assert bf16_peak_tflops("Tesla T4") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_prints_batch_32_and_256() -> None:
    out = run("--rows", "levers")  # the other rows: experiments/gpu_pass.sh runs them all
    assert re.search(r"CUDA graph of the step, batch 256 \|.* TFLOP/s", out)
    assert re.search(r"float32 strict .*, batch 32 \|.* TFLOP/s", out)

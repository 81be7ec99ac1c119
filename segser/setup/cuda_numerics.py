"""How float32 maths runs on a CUDA device: the fast path by default, strict float32 on request.

Every patch has the same 96 x 64 shape, so cuDNN's autotuner picks each convolution's fastest
algorithm once and keeps it; TF32 tensor cores run float32 matmuls and convolutions with a
10-bit mantissa (PyTorch already does so for convolutions unless told otherwise). Both change
logits only at float rounding level. `gpu.strict_fp32=true` brings back IEEE float32 matmuls and
convolutions and no autotuning. Settings are process-wide in torch, so they hold for one run
and are put back afterwards; CPU runs are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from omegaconf import DictConfig


@dataclass(frozen=True)
class CudaNumerics:
    """torch's process-wide switches for float32 maths on CUDA."""

    matmul_precision: str  # torch.set_float32_matmul_precision: "highest" is IEEE float32
    cudnn_tf32: bool  # torch.backends.cudnn.allow_tf32: TF32 convolutions
    cudnn_benchmark: bool  # torch.backends.cudnn.benchmark: autotune convolution algorithms


FAST = CudaNumerics(matmul_precision="high", cudnn_tf32=True, cudnn_benchmark=True)
STRICT_FP32 = CudaNumerics(matmul_precision="highest", cudnn_tf32=False, cudnn_benchmark=False)


def current() -> CudaNumerics:
    return CudaNumerics(
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )


def apply(numerics: CudaNumerics) -> None:
    # The legacy setters on purpose: Lightning reads the legacy getter, and torch refuses a mix.
    torch.set_float32_matmul_precision(numerics.matmul_precision)
    torch.backends.cudnn.allow_tf32 = numerics.cudnn_tf32
    torch.backends.cudnn.benchmark = numerics.cudnn_benchmark


def chosen(on_cuda: bool, strict_fp32: bool, deterministic: bool) -> CudaNumerics | None:
    """The run's settings: None off CUDA (nothing changes); no autotuning when deterministic."""
    if not on_cuda:
        return None
    numerics = STRICT_FP32 if strict_fp32 else FAST
    if deterministic and numerics.cudnn_benchmark:  # autotuning may pick a different algorithm
        numerics = CudaNumerics(numerics.matmul_precision, numerics.cudnn_tf32, False)
    return numerics


@contextmanager
def cuda_numerics(numerics: CudaNumerics | None) -> Iterator[CudaNumerics | None]:
    """Apply `numerics` (None: leave everything as it is) and restore the previous ones after."""
    if numerics is None:
        yield None
        return
    before = current()
    apply(numerics)
    try:
        yield numerics
    finally:
        apply(before)


def run_numerics(cfg: DictConfig, device: torch.device) -> CudaNumerics | None:
    """The float32 settings a run on `device` trains with (None on CPU), from gpu.strict_fp32
    and trainer.deterministic."""
    strict = bool((cfg.get("gpu") or {}).get("strict_fp32", False))
    return chosen(device.type == "cuda", strict, bool(cfg.trainer.get("deterministic")))

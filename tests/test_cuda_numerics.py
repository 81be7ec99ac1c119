"""The shipped configs take the CUDA fast path (TF32, cuDNN autotuning) on a GPU, strict float32
with gpu.strict_fp32=true, and leave CPU runs and the process's settings as they were."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

import segser.train
from segser.setup.cuda_numerics import FAST, STRICT_FP32, CudaNumerics, current, run_numerics
from segser.train import train
from tests.hydra_app import composed, options

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
PAPER = ["dataset=demo", "segmentation=overlap", "head.units=400", "backbone.weights=none"]


@pytest.mark.parametrize("experiment", [None, *options("experiment")])
def test_every_shipped_preset_takes_the_fast_path_on_cuda_and_nothing_on_cpu(
    experiment: str | None,
) -> None:
    cfg = composed("train", [f"experiment={experiment}"] if experiment else PAPER)
    assert run_numerics(cfg, CUDA) == CudaNumerics("high", True, True)
    assert run_numerics(cfg, CPU) is None


def test_strict_switch_brings_back_ieee_float32_without_autotuning() -> None:
    cfg = composed("train", [*PAPER, "gpu.strict_fp32=true"])
    assert run_numerics(cfg, CUDA) == CudaNumerics("highest", False, False)
    assert run_numerics(cfg, CPU) is None


def test_deterministic_runs_keep_tf32_but_do_not_autotune() -> None:
    cfg = composed("train", [*PAPER, "trainer.deterministic=true"])
    assert run_numerics(cfg, CUDA) == CudaNumerics("high", True, False)


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("strict", "expected"), [("false", FAST), ("true", STRICT_FP32)])
def test_a_run_on_cuda_fits_with_them_and_restores_the_process_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strict: str, expected: CudaNumerics
) -> None:
    """train() as the CLI runs it, with the trainer's device reported as CUDA: fit sees the
    settings, and afterwards (here: fit raising) the process has its own back."""
    seen = []

    def fit(self, *args, **kwargs):
        seen.append(current())
        raise _Stop

    def numerics_as_if_on_cuda(cfg, device):
        return run_numerics(cfg, CUDA)

    monkeypatch.setattr(L.Trainer, "fit", fit)
    monkeypatch.setattr(segser.train, "run_numerics", numerics_as_if_on_cuda)
    cfg = composed(
        "train",
        [
            "experiment=demo_baseline",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'outputs'}",
            "dataset.num_clips=16",
            "trainer.accelerator=cpu",
            "callbacks.progress_bar=null",
            f"gpu.strict_fp32={strict}",
        ],
    )
    before = current()
    assert before != expected  # torch's defaults: highest matmuls, TF32 convolutions, no tuning
    with pytest.raises(_Stop):
        train(cfg, tmp_path / "run")
    assert seen == [expected]
    assert current() == before


def test_a_cpu_run_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fit(self, *args, **kwargs):
        seen.append(current())
        raise _Stop

    monkeypatch.setattr(L.Trainer, "fit", fit)
    cfg = composed(
        "train",
        [
            "experiment=demo_baseline",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.output_dir={tmp_path / 'outputs'}",
            "dataset.num_clips=16",
            "trainer.accelerator=cpu",
            "callbacks.progress_bar=null",
        ],
    )
    before = current()
    with pytest.raises(_Stop):
        train(cfg, tmp_path / "run")
    assert seen == [before]

"""GPU speed switches keep the maths: channels-last, compile, bf16; the summary counts FLOPs."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary
from torch.utils.data import DataLoader, TensorDataset

from segser.models.heads import ClassificationHead
from segser.models.module import SegmentEmotionClassifier
from segser.models.vggish import VGGish
from segser.train import gpu_for_job

CLASSES = ["angry", "happy", "sad", "neutral"]


def vggish_classifier() -> SegmentEmotionClassifier:
    torch.manual_seed(0)
    head = ClassificationHead(embedding_dim=128, units=200, num_classes=4)
    return SegmentEmotionClassifier(
        VGGish(), head, CLASSES, optimizer=partial(torch.optim.Adam, lr=1e-3)
    ).eval()


def patches(count: int = 4) -> torch.Tensor:
    return torch.randn(count, 1, 96, 64, generator=torch.Generator().manual_seed(1))


def vggish_forward_flops() -> int:
    """By hand: 2 x multiply-adds of each conv (3x3, same padding) and linear layer."""
    convs = [(96 * 64, 1, 64), (48 * 32, 64, 128), (24 * 16, 128, 256), (24 * 16, 256, 256)]
    convs += [(12 * 8, 256, 512), (12 * 8, 512, 512)]
    linears = [(512 * 6 * 4, 4096), (4096, 4096), (4096, 128), (128, 200), (200, 4)]
    return sum(2 * hw * c_in * c_out * 9 for hw, c_in, c_out in convs) + sum(
        2 * n_in * n_out for n_in, n_out in linears
    )


def test_model_summary_counts_the_forward_flops() -> None:
    summary = ModelSummary(vggish_classifier(), max_depth=1)
    assert summary.total_flops == vggish_forward_flops()  # about 1.73 GFLOP per patch


@torch.no_grad()
def _sped_up_and_plain_logits(**switches: bool):
    """The classifier with `speed_up(**switches)`, its logits and the plain classifier's."""
    x = patches()
    expected = vggish_classifier()(x)
    model = vggish_classifier()
    model.speed_up(**switches)
    return model, model(x), expected


def test_channels_last_gives_the_same_logits() -> None:
    model, logits, expected = _sped_up_and_plain_logits(channels_last=True)
    assert model.backbone.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert set(model.state_dict()) == set(vggish_classifier().state_dict())


@pytest.mark.slow
def test_compiled_backbone_gives_the_same_logits_and_keys() -> None:
    model, logits, expected = _sped_up_and_plain_logits(compile_backbone=True)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert set(model.state_dict()) == set(vggish_classifier().state_dict())


def test_bf16_mixed_runs_on_cpu_and_stays_close_to_float32() -> None:
    x = patches(8)
    batches = DataLoader(TensorDataset(x, torch.arange(8) // 2, torch.arange(8) // 2), batch_size=8)
    logits = {}
    for precision in ("32-true", "bf16-mixed"):
        model = vggish_classifier()
        trainer = L.Trainer(
            accelerator="cpu", precision=precision, logger=False, enable_progress_bar=False,
            enable_model_summary=False,
        )  # fmt: skip
        trainer.test(model, dataloaders=batches, verbose=False)
        logits[precision] = model.test_clips.segment_logits
    assert logits["bf16-mixed"].dtype == torch.float32  # outputs leave autocast as float32
    assert not torch.equal(logits["bf16-mixed"], logits["32-true"])  # bf16 really ran
    torch.testing.assert_close(logits["bf16-mixed"], logits["32-true"], atol=0.05, rtol=0.05)


@pytest.mark.parametrize(
    ("num_gpus", "expected"), [(1, [0, 0, 0, 0, 0]), (2, [0, 1, 0, 1, 0]), (3, [0, 1, 2, 0, 1])]
)
def test_sweep_job_j_uses_gpu_j_mod_g(num_gpus: int, expected: list[int]) -> None:
    assert [gpu_for_job(j, num_gpus) for j in range(5)] == expected


def test_gpu_assignment_needs_a_gpu() -> None:
    with pytest.raises(ValueError, match="num_gpus"):
        gpu_for_job(0, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_channels_last_on_gpu_matches_float32() -> None:
    x = patches(16).cuda()
    with torch.no_grad():
        expected = vggish_classifier().cuda()(x)
        model = vggish_classifier().cuda()
        model.speed_up(channels_last=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x).float()
    torch.testing.assert_close(logits, expected, atol=0.05, rtol=0.05)

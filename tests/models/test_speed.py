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
from segser.setup.sweep_job import gpu_for_job

CLASSES = ["angry", "happy", "sad", "neutral"]


def vggish_classifier(**switches: bool) -> SegmentEmotionClassifier:
    torch.manual_seed(0)
    head = ClassificationHead(embedding_dim=128, units=200, num_classes=4)
    return SegmentEmotionClassifier(
        VGGish(), head, CLASSES, optimizer=partial(torch.optim.Adam, lr=1e-3), **switches
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
    """The classifier built with the speed `switches`, its logits and the plain classifier's."""
    x = patches()
    expected = vggish_classifier()(x)
    model = vggish_classifier(**switches)
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
        logits[precision] = model.tested.clips.segment_logits
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
        model = vggish_classifier(channels_last=True).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x).float()
    torch.testing.assert_close(logits, expected, atol=0.05, rtol=0.05)


@pytest.mark.parametrize(
    ("overrides", "channels_last", "compiled"),
    [([], False, False), (["speed.channels_last=true"], True, False),
     (["speed.compile=true"], False, True)],
)  # fmt: skip
def test_the_speed_switches_reach_the_model_through_its_constructor(
    overrides: list[str], channels_last: bool, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """speed.* (train.yaml) -> build_classifier: the model is built with them, not changed after."""
    from segser.models.factory import build_classifier
    from segser.setup.components import model_config, model_options
    from tests.hydra_app import composed

    compiles: list[torch.nn.Module] = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiles.append(self))
    cfg = composed("train", ["backbone=vggish", "backbone.weights=none", *overrides])
    model = build_classifier(model_config(cfg), **model_options(cfg))
    convs = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    weight = convs[1].weight  # 64 input channels: NCHW and NHWC strides differ
    assert weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    assert model.channels_last is channels_last
    assert compiles == ([model.backbone] if compiled else [])


@pytest.mark.parametrize("key", ["compile", "channels_last"])
def test_the_old_model_keys_are_refused_in_one_line_naming_speed(key: str, tmp_path) -> None:
    """`model.compile=true` (the block's old name) on the command line: one line, no work."""
    from tests.segser_cli import run_segser

    result = run_segser("segser.train", "experiment=demo", f"model.{key}=true", tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == f"error: `model.*` is now `speed.*`: use speed.{key}=true"
    assert not (tmp_path / "data").exists()  # refused before the demo corpus is written

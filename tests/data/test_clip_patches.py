"""Whole-clip patches equal today's per-segment patches and the torchvggish reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segser.data.logmel.clip_patches import clip_patches, clips_patches, segment_start_samples
from segser.data.logmel.features import LogMelPatcher
from segser.data.signal.segmentation import SegmentationSettings, count_segments, segment_waveform

vggish_input = pytest.importorskip("torchvggish.vggish_input")

SR = 16000
ATOL = 1e-3


def per_segment(waveform: torch.Tensor, settings: SegmentationSettings) -> torch.Tensor:
    """Today's path: cut and zero-pad every segment, then one FFT pass per segment."""
    segments = segment_waveform(waveform, SR, settings.window_seconds, settings.hop_seconds)
    return LogMelPatcher(compute_dtype=torch.float64)(segments.double())[:, 0].float()


def reference(waveform: torch.Tensor, settings: SegmentationSettings) -> torch.Tensor:
    """torchvggish's numpy pipeline on each zero-padded segment: its first example."""
    segments = segment_waveform(waveform, SR, settings.window_seconds, settings.hop_seconds)
    firsts = [vggish_input.waveform_to_examples(s.numpy(), SR, False)[0] for s in segments]
    return torch.from_numpy(np.stack(firsts)).float()


def noisy_speechlike(num_samples: int, seed: int) -> torch.Tensor:
    """Noise with a loud tone and a quiet stretch, so loud and quiet bands sit side by side."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples, dtype=torch.float64) / SR
    tone = 0.8 * torch.sin(2 * torch.pi * (200 + 900 * t) * t)
    noise = 0.05 * torch.randn(num_samples, generator=generator, dtype=torch.float64)
    return (tone + noise).float()


# Odd lengths: the last patches overlap the clip's end by 1 sample, part of a frame, many frames.
@pytest.mark.parametrize("num_samples", [15599, 16001, 24161, 39999, 40000, 57123])
@pytest.mark.parametrize("hop_seconds", [0.5, 0.25, 1.0])
def test_whole_clip_equals_per_segment_and_reference(num_samples: int, hop_seconds: float) -> None:
    settings = SegmentationSettings(1.0, hop_seconds)
    waveform = noisy_speechlike(num_samples, seed=num_samples)
    ours = clip_patches(waveform, LogMelPatcher(), settings)
    expected = count_segments(num_samples, SR, 1.0, hop_seconds)
    assert ours.shape == (expected, 96, 64) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, per_segment(waveform, settings), atol=ATOL, rtol=0)
    torch.testing.assert_close(ours, reference(waveform, settings), atol=ATOL, rtol=0)


def test_tail_frames_see_zeros_exactly() -> None:
    # A clip of ones: a frame past the end holds a hand-countable number of ones.
    settings = SegmentationSettings(1.0, 0.5)
    waveform = torch.ones(20000)
    last = clip_patches(waveform, LogMelPatcher(compute_dtype=torch.float64), settings)[-1]
    start = int(segment_start_samples(20000, SR, settings)[-1])
    assert start == 16000
    frames = torch.zeros(96, 400)
    for k in range(96):  # samples of frame k that lie inside the clip are 1, the rest 0
        inside = max(0, min(400, 20000 - (start + 160 * k)))
        frames[k, :inside] = 1.0
    expected = LogMelPatcher(compute_dtype=torch.float64).log_mel_frames(
        torch.cat([frames[k, :160] for k in range(95)] + [frames[95]])
    )
    torch.testing.assert_close(last, expected.float(), atol=1e-5, rtol=0)
    assert torch.equal(last[30:], torch.full((66, 64), float(np.log(0.01))))


def test_blocks_do_not_change_the_patches() -> None:
    settings = SegmentationSettings(1.0, 0.5)
    waveform = noisy_speechlike(7 * SR + 333, seed=3)
    whole = clip_patches(waveform, LogMelPatcher(), settings)
    for block_frames in (1, 97, 150, 451):
        blocked = clip_patches(waveform, LogMelPatcher(), settings, block_frames=block_frames)
        torch.testing.assert_close(blocked, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("tail", ["pad", "stop"])
@pytest.mark.parametrize("block_frames", [8192, 300])  # 300: groups of a few clips, some alone
def test_clips_laid_end_to_end_equal_each_clip_alone(tail: str, block_frames: int) -> None:
    lengths = [16000, 15599, 16001, 24161, 40000, 8 * SR + 7, 16000, 57123]
    waveforms = [noisy_speechlike(n, seed=i) for i, n in enumerate(lengths)]
    waveforms[3] = waveforms[3].double()  # a float64 clip among float32 ones
    for hop_seconds in (0.5, 0.3337):  # on and off the frame grid
        settings = SegmentationSettings(1.0, hop_seconds, tail)
        together = clips_patches(waveforms, LogMelPatcher(), settings, block_frames)
        assert len(together) == len(waveforms)
        for waveform, ours in zip(waveforms, together, strict=True):
            alone = clip_patches(waveform, LogMelPatcher(), settings)
            torch.testing.assert_close(ours, alone, atol=1e-5, rtol=0)
        if tail == "pad":  # the reference pads every segment
            expected = reference(waveforms[1], settings)
            torch.testing.assert_close(together[1], expected, atol=ATOL, rtol=0)


def test_hop_off_the_frame_grid_falls_back_to_per_segment() -> None:
    settings = SegmentationSettings(1.0, 0.3337)  # 5339 samples: not a multiple of 160
    waveform = noisy_speechlike(3 * SR + 17, seed=4)
    assert np.any(segment_start_samples(waveform.shape[0], SR, settings) % 160)
    ours = clip_patches(waveform, LogMelPatcher(), settings, block_frames=200)
    torch.testing.assert_close(ours, per_segment(waveform, settings), atol=ATOL, rtol=0)
    torch.testing.assert_close(ours, reference(waveform, settings), atol=ATOL, rtol=0)


def test_window_shorter_than_a_patch_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than one patch"):
        clip_patches(torch.zeros(SR), LogMelPatcher(), SegmentationSettings(0.9, 0.5))


def test_float32_ffts_redo_loud_narrow_band_frames_in_float64() -> None:
    # A full-scale 7 kHz tone: float32 round-off alone drifts ~5e-4 in its quiet bands.
    t = torch.arange(2 * SR, dtype=torch.float64) / SR
    waveform = (0.99 * torch.sin(2 * torch.pi * 7000 * t)).float()
    patcher = LogMelPatcher()
    frames = torch.nn.functional.pad(waveform, (0, 112)).unfold(0, 512, 160)
    float64 = torch.log(patcher._mel(frames, torch.float64) + 0.01)
    float32_only = torch.log(patcher._mel(frames, torch.float32) + 0.01)
    assert float((float32_only - float64).abs().max()) > 2.5e-4
    mixed = patcher.log_mel_frames(waveform)
    assert float((mixed - float64).abs().max()) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    settings = SegmentationSettings(1.0, 0.5)
    waveform = noisy_speechlike(5 * SR + 99, seed=5)
    cpu = clip_patches(waveform, LogMelPatcher(), settings)
    gpu = clip_patches(waveform.cuda(), LogMelPatcher().cuda(), settings)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=ATOL, rtol=0)

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from segser.data.augment.passes import AugmentSettings, augment_settings, augmented_rows
from segser.data.augment.specaugment import PatchMasks
from segser.data.augment.waveform import WaveformAugmentation
from segser.data.logmel.features import LogMelSettings
from segser.data.logmel.path import LogMelPath
from segser.data.signal.segmentation import SegmentationSettings, count_segments
from segser.data.splits import random_split
from tests.data.test_datamodule import datamodule

LOGMEL = LogMelPath(LogMelSettings())
RATE = 16000


def tone(seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(round(seconds * RATE)) / RATE
    return 0.3 * torch.sin(2 * torch.pi * 440 * t)


def test_gain_scales_every_sample_by_one_factor_within_the_range() -> None:
    augment = WaveformAugmentation(gain_db=6.0, noise_snr_db=None, speed=None)
    clean = tone()
    out = augment(clean, RATE, torch.Generator().manual_seed(3))
    ratio = out[clean.abs() > 0.1] / clean[clean.abs() > 0.1]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)
    assert 10 ** (-6 / 20) <= float(ratio[0]) <= 10 ** (6 / 20)
    assert float(ratio[0]) != 1.0


def test_noise_is_added_at_the_drawn_snr() -> None:
    augment = WaveformAugmentation(gain_db=None, noise_snr_db=(20.0, 20.0), speed=None)
    clean = tone(4.0)
    noise = augment(clean, RATE, torch.Generator().manual_seed(0)) - clean
    snr_db = 10 * torch.log10(clean.square().mean() / noise.square().mean())
    assert abs(float(snr_db) - 20.0) < 0.2


def test_speed_two_halves_the_clip_and_doubles_its_pitch() -> None:
    augment = WaveformAugmentation(gain_db=None, noise_snr_db=None, speed=(2.0, 2.0))
    out = augment(tone(1.0), RATE, torch.Generator().manual_seed(0))
    assert abs(len(out) - RATE // 2) <= 2
    spectrum = torch.fft.rfft(out).abs()
    peak_hz = int(spectrum.argmax()) * RATE / len(out)
    assert abs(peak_hz - 880) < 5


def test_masks_cover_at_most_their_widths_with_the_patch_mean() -> None:
    patches = torch.arange(2 * 96 * 64, dtype=torch.float32).reshape(2, 96, 64)
    masks = PatchMasks(time_masks=1, time_mask_frames=10, freq_masks=0, freq_mask_bins=0)
    out = masks(patches, torch.Generator().manual_seed(1))
    for original, masked in zip(patches, out, strict=True):
        changed_frames = (masked != original).any(dim=1).nonzero().flatten()
        assert len(changed_frames) <= 10
        if len(changed_frames):  # one contiguous run of frames, set to the patch's mean
            assert int(changed_frames[-1] - changed_frames[0]) == len(changed_frames) - 1
            assert torch.allclose(masked[changed_frames], original.mean().expand(1))
    assert not torch.equal(out, patches)


def test_config_without_passes_means_no_augmentation() -> None:
    assert augment_settings({"passes": 0}) is None
    assert augment_settings(None) is None
    settings = augment_settings({"passes": 3, "seed": 1, "waveform": {"speed": [0.9, 1.1]}})
    assert settings.passes == 3 and settings.waveform.speed == (0.9, 1.1) and not settings.masks


def test_passes_cover_each_training_clip_and_are_reused(tone_clips, tmp_path: Path) -> None:
    segmentation = SegmentationSettings(1.0, 0.5)
    settings = AugmentSettings(passes=2, waveform=None, masks=PatchMasks())
    train = [0, 5, 7]
    rows = augmented_rows(tone_clips, train, segmentation, LOGMEL, settings, tmp_path)
    counts = {i: count_segments(round(tone_clips[i].duration_seconds * RATE), RATE, 1.0, 0.5)
              for i in train}  # fmt: skip
    assert len(rows.row_clip) == 2 * sum(counts.values())
    assert {i: int((rows.row_clip == i).sum()) for i in train} == {
        i: 2 * n for i, n in counts.items()
    }
    again = augmented_rows(tone_clips, train, segmentation, LOGMEL, settings, tmp_path)
    np.testing.assert_array_equal(again.inputs, rows.inputs)
    assert len(list(tmp_path.glob("augmented-*.npz"))) == 1


def test_only_training_clips_are_augmented(tone_clips, tmp_path: Path) -> None:
    split = partial(random_split, ratios=(0.6, 0.2, 0.2), seed=0)
    # no speed change: it would change the clips' segment counts
    waveform = WaveformAugmentation(gain_db=6.0, noise_snr_db=(15.0, 40.0), speed=None)
    settings = AugmentSettings(passes=1, waveform=waveform, masks=PatchMasks())
    plain = datamodule(tone_clips, tmp_path, split)
    plain.setup("fit")
    augmented = datamodule(tone_clips, tmp_path, split, augment=settings)
    augmented.setup("fit")
    clean_train = plain.datasets["train"]
    assert len(augmented.datasets["train"]) == 2 * len(clean_train)
    assert set(augmented.datasets["train"].clips.tolist()) == set(clean_train.clips.tolist())
    assert len(list(tmp_path.glob("cache/augmented-*.npz"))) == 1
    other = partial(random_split, ratios=(0.6, 0.2, 0.2), seed=1)  # another split: same passes
    refold = datamodule(tone_clips, tmp_path, other, augment=settings)
    refold.setup("fit")
    assert len(list(tmp_path.glob("cache/augmented-*.npz"))) == 1
    for name in ("val", "test"):
        assert len(augmented.datasets[name]) == len(plain.datasets[name])

"""data.speaker_norm with augment: the augmented training rows are standardised with their
speaker's statistics of the clean audio, as the clean rows are (not their own, not none)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from segser.data.augment.passes import AugmentSettings
from segser.data.augment.waveform import WaveformAugmentation
from segser.data.splits import random_split
from tests.data.test_datamodule import datamodule
from tests.data.test_speaker_norm import MeanBackbone


class WeightedMeanBackbone(MeanBackbone):
    """MeanBackbone with a (fixed) weight, as every real backbone has one."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1), requires_grad=False)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return super().forward(patches) * self.scale


def test_augmented_rows_take_the_clean_statistics_of_their_speaker(tone_clips, tmp_path: Path):
    split = partial(random_split, ratios=(0.6, 0.2, 0.2), seed=0)
    louder = WaveformAugmentation(gain_db=6.0, noise_snr_db=None, speed=None)
    settings = AugmentSettings(passes=1, waveform=louder, masks=None)
    backbone = WeightedMeanBackbone()
    plain = datamodule(tone_clips, tmp_path / "plain", split, frozen_backbone=backbone)
    plain.setup("fit")
    raw_clean = np.asarray(plain.embeddings.embeddings)  # unnormalised embeddings, every clip
    speakers = np.array([c.speaker for c in tone_clips])
    clean_speaker = speakers[plain.cache.row_clip]
    augmented_raw = datamodule(tone_clips, tmp_path / "raw", split, frozen_backbone=backbone,
                               augment=settings)  # fmt: skip
    augmented_raw.setup("fit")
    dm = datamodule(tone_clips, tmp_path / "norm", split, frozen_backbone=backbone,
                    speaker_norm=True, augment=settings)  # fmt: skip
    dm.setup("fit")
    clean_rows = len(plain.datasets["train"])
    served = dm.datasets["train"]
    raw = augmented_raw.datasets["train"]
    assert len(served) == len(raw) == 2 * clean_rows
    every = np.arange(len(served))
    added = raw[every][0].numpy()[clean_rows:]  # the augmented rows before normalisation
    owners = raw.clips.numpy()[clean_rows:]
    assert not np.allclose(added, raw[every][0].numpy()[:clean_rows])  # the gain changed them
    expected = np.empty_like(added)
    for speaker in np.unique(speakers[owners]):
        mine = raw_clean[clean_speaker == speaker]
        rows = speakers[owners] == speaker
        expected[rows] = (added[rows] - mine.mean(0)) / mine.std(0)
    np.testing.assert_allclose(served[every][0].numpy()[clean_rows:], expected, rtol=1e-4,
                               atol=1e-5)  # fmt: skip

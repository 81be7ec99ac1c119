from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from segser.data.corpora.clips import Clip
from segser.data.logmel.clip_patches import segment_patches
from segser.data.speaker_norm import (
    RunningMoments,
    speaker_statistics,
    standardize_by_speaker,
    training_statistics,
)
from segser.data.splits import random_split
from segser.errors import SegserError
from tests.data.test_datamodule import datamodule


def test_each_speaker_is_standardized_with_its_own_statistics() -> None:
    # speaker a: rows 1 and 3 (mean 2, std 1); speaker b: rows 10, 20, 30 (mean 20, std 8.165)
    embeddings = np.array([[1.0], [10.0], [3.0], [20.0], [30.0]], dtype=np.float32)
    speakers = np.array(["a", "b", "a", "b", "b"])
    out = standardize_by_speaker(
        embeddings, speakers, speaker_statistics([(embeddings, speakers, None)])
    )
    b_std = np.sqrt(200 / 3)
    expected = [[-1.0], [-10 / b_std], [1.0], [0.0], [10 / b_std]]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_a_constant_dimension_is_centred_not_blown_up() -> None:
    embeddings = np.array([[5.0, 1.0], [5.0, 3.0]], dtype=np.float32)
    speakers = np.array(["a", "a"])
    out = standardize_by_speaker(
        embeddings, speakers, speaker_statistics([(embeddings, speakers, None)])
    )
    np.testing.assert_allclose(out, [[0.0, -1.0], [0.0, 1.0]])


class MeanBackbone(torch.nn.Module):
    """A stand-in frozen backbone: a patch's mean and spread of log-mel (2 numbers)."""

    embedding_dim = 2

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        flat = patches.flatten(1)
        return torch.stack([flat.mean(1), flat.std(1)], dim=1)


def test_datamodule_serves_speaker_standardized_embeddings(
    tone_clips, write_wav, tmp_path: Path
) -> None:
    """Issue 26.2: a speaker's statistics take in their clips outside the classes too."""
    speakers_of = sorted({c.speaker for c in tone_clips})
    unlabelled = [  # louder, higher tones: they move their speaker's mean if counted
        Clip(f"extra{i}", write_wav(f"extra{i}", 2.0, hz=900.0 + 50 * i), "fru", s, s[:5], 2.0)
        for i, s in enumerate(speakers_of)
    ]
    split = partial(random_split, ratios=(0.6, 0.2, 0.2), seed=0)
    dm = datamodule(tone_clips, tmp_path, split, frozen_backbone=MeanBackbone(),
                    speaker_norm=True, speaker_clips=unlabelled)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    raw = np.asarray(dm.embeddings.embeddings)
    speakers = np.array([c.speaker for c in tone_clips])[dm.cache.row_clip]
    backbone = MeanBackbone()
    extra = {  # each unlabelled clip's segment embeddings, computed here independently
        c.speaker: backbone(segment_patches(sf.read(c.path, dtype="float32")[0], 16000)).numpy()
        for c in unlabelled
    }
    for name in ("train", "val", "test"):
        rows = dm.datasets[name]
        served = rows[np.arange(len(rows))][0].numpy()
        for i, cache_row in enumerate(rows.cache_rows):
            speaker = speakers[cache_row]
            mine = np.concatenate([raw[speakers == speaker], extra[speaker]]).astype(np.float64)
            expected = (raw[cache_row] - mine.mean(0)) / mine.std(0)
            np.testing.assert_allclose(served[i], expected, rtol=1e-4, atol=1e-4)
    trained = sorted({tone_clips[i].speaker for i in dm.split.train})
    assert len(dm.training_statistics[0]) == 2 and trained


def test_training_statistics_are_the_typical_training_speakers() -> None:
    stats = {"a": (np.array([0.0]), np.array([1.0])), "b": (np.array([4.0]), np.array([7.0]))}
    stats["c"] = (np.array([100.0]), np.array([100.0]))  # not a training speaker
    mean, std = training_statistics(stats, ["a", "b"])
    np.testing.assert_allclose([mean[0], std[0]], [2.0, 5.0])


def test_running_moments_equal_the_whole_matrix_statistics() -> None:
    rows = torch.randn(101, 3, generator=torch.Generator().manual_seed(0)) * 5 + 1000
    moments = RunningMoments(torch.full((3,), 990.0))
    for start in range(0, 101, 17):
        moments.add(rows[start : start + 17])
    mean, std = moments.statistics()
    torch.testing.assert_close(mean, rows.double().mean(0))
    torch.testing.assert_close(std, rows.double().std(0, correction=0))


def test_speaker_norm_without_a_frozen_backbone_is_one_clear_error(tone_clips, tmp_path) -> None:
    with pytest.raises(SegserError, match=r"backbone\.freeze=true"):
        datamodule(tone_clips, tmp_path, speaker_norm=True)


def test_a_speaker_normalised_checkpoint_without_statistics_is_one_clear_error(tmp_path) -> None:
    from segser.models.checkpoint import RUN_KEY, load_trained

    path = tmp_path / "best.ckpt"
    torch.save({RUN_KEY: {"speaker_norm": True}}, path)
    with pytest.raises(SegserError, match=r"data\.speaker_norm=true but lacks valid"):
        load_trained(path)

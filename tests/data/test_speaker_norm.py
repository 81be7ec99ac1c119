from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from segser.data.speaker_norm import speaker_statistics, standardize_by_speaker
from segser.data.splits import random_split
from segser.errors import SegserError
from tests.data.test_datamodule import datamodule


def test_each_speaker_is_standardized_with_its_own_statistics() -> None:
    # speaker a: rows 1 and 3 (mean 2, std 1); speaker b: rows 10, 20, 30 (mean 20, std 8.165)
    embeddings = np.array([[1.0], [10.0], [3.0], [20.0], [30.0]], dtype=np.float32)
    speakers = np.array(["a", "b", "a", "b", "b"])
    out = standardize_by_speaker(embeddings, speakers, speaker_statistics(embeddings, speakers))
    b_std = np.sqrt(200 / 3)
    expected = [[-1.0], [-10 / b_std], [1.0], [0.0], [10 / b_std]]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_a_constant_dimension_is_centred_not_blown_up() -> None:
    embeddings = np.array([[5.0, 1.0], [5.0, 3.0]], dtype=np.float32)
    speakers = np.array(["a", "a"])
    out = standardize_by_speaker(embeddings, speakers, speaker_statistics(embeddings, speakers))
    np.testing.assert_allclose(out, [[0.0, -1.0], [0.0, 1.0]])


class MeanBackbone(torch.nn.Module):
    """A stand-in frozen backbone: a patch's mean and spread of log-mel (2 numbers)."""

    embedding_dim = 2

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        flat = patches.flatten(1)
        return torch.stack([flat.mean(1), flat.std(1)], dim=1)


def test_datamodule_serves_speaker_standardized_embeddings(tone_clips, tmp_path: Path) -> None:
    split = partial(random_split, ratios=(0.6, 0.2, 0.2), seed=0)
    dm = datamodule(tone_clips, tmp_path, split, frozen_backbone=MeanBackbone(),
                    speaker_norm=True)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    raw = np.asarray(dm.embeddings.embeddings)
    speakers = np.array([c.speaker for c in tone_clips])[dm.cache.row_clip]
    for name in ("train", "val", "test"):
        rows = dm.datasets[name]
        served = rows[np.arange(len(rows))][0].numpy()
        for i, cache_row in enumerate(rows.cache_rows):
            mine = raw[speakers == speakers[cache_row]]
            expected = (raw[cache_row] - mine.mean(0)) / mine.std(0)
            np.testing.assert_allclose(served[i], expected, rtol=1e-4, atol=1e-5)


def test_speaker_norm_without_a_frozen_backbone_is_one_clear_error(tone_clips, tmp_path) -> None:
    with pytest.raises(SegserError, match=r"backbone\.freeze=true"):
        datamodule(tone_clips, tmp_path, speaker_norm=True)


def test_a_speaker_normalised_checkpoint_is_refused_by_evaluate_and_predict(tmp_path) -> None:
    from segser.models.checkpoint import RUN_KEY, load_trained

    path = tmp_path / "best.ckpt"
    torch.save({RUN_KEY: {"speaker_norm": True}}, path)
    with pytest.raises(SegserError, match=r"data\.speaker_norm=true"):
        load_trained(path)

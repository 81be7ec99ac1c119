from __future__ import annotations

import numpy as np
import pytest
import torch

from segser.errors import SegserError
from segser.models import clip_pooling
from segser.models.clip_pooling import (
    AttentionPooling,
    ClipBags,
    PoolingSettings,
    bags,
    clip_accuracy,
    fit_attention_pooling,
    pooled_clip_results,
)


def test_bags_group_segments_by_clip_in_order_with_a_mask() -> None:
    features = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    labels = torch.tensor([2, 0, 2, 2])
    clips = torch.tensor([7, 3, 7, 7])
    grouped = bags(features, labels, clips)
    assert grouped.clip_ids.tolist() == [3, 7]
    assert grouped.labels.tolist() == [0, 2]
    assert grouped.features[:, :, 0].tolist() == [[2.0, 0.0, 0.0], [1.0, 3.0, 4.0]]
    assert grouped.mask.tolist() == [[True, False, False], [True, True, True]]


def test_padding_never_changes_a_clip_decision() -> None:
    torch.manual_seed(0)
    pooling = AttentionPooling(dim=4, num_classes=3, attention_dim=8, dropout=0.0).eval()
    features = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    changed = features.clone()
    changed[0, 2:] = 1e3
    assert torch.allclose(pooling(features, mask), pooling(changed, mask))
    with torch.no_grad():
        weights = pooling.weights(features, mask)
    assert torch.allclose(weights.sum(1), torch.ones(2)) and float(weights[0, 2:].sum()) == 0


def _needle_clips(n: int, seed: int):
    """Clips of 6 segments; the class shows in one segment only (the rest is shared noise):
    the mean of the segments dilutes it, attention can find it."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    features = torch.randn(n, 6, 8, generator=generator) * 0.5
    features[:, :, 0] = 0.0
    features[torch.arange(n), 0, 0] = 4.0  # the flag: this segment carries the label
    features[torch.arange(n), 0, 1] = torch.where(labels == 1, 3.0, -3.0)
    segments = features.reshape(-1, 8)
    clip_ids = torch.arange(n).repeat_interleave(6)
    return bags(segments, labels.repeat_interleave(6), clip_ids)


def test_attention_pooling_learns_a_clip_label_carried_by_one_segment() -> None:
    train, val, test = (_needle_clips(n, s) for n, s in ((64, 0), (32, 1), (32, 2)))
    settings = PoolingSettings(attention_dim=16, lr=3e-2, max_epochs=60, patience=20)
    pooling = fit_attention_pooling(train, val, 2, settings, seed=0)
    with torch.no_grad():
        predicted = pooling(test.features, test.mask).argmax(1)
    assert float((predicted == test.labels).float().mean()) == 1.0


def test_clip_accuracy_matches_a_hand_count() -> None:
    labels = np.array([0, 0, 0, 1, 2])
    predicted = np.array([0, 1, 0, 1, 1])
    scores = clip_accuracy(predicted, labels, num_classes=4)  # class 3 absent: not in UA
    assert scores["WA"] == 3 / 5
    assert np.isclose(scores["UA"], (2 / 3 + 1 + 0) / 3)
    assert scores["confusion_matrix"][0] == [2, 1, 0, 0]


class FeatureRows:
    """A split as SegmentRows serves it: (inputs [N, D], labels, clips) rows."""

    def __init__(self, clips: ClipBags) -> None:
        self.inputs = clips.features[clips.mask]
        self.labels = clips.labels.repeat_interleave(clips.mask.sum(1))
        self.clips = clips.clip_ids.repeat_interleave(clips.mask.sum(1))

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index):
        return self.inputs[index], self.labels[index], self.clips[index]


class IdentityHead(torch.nn.Module):
    """A segment model whose hidden features are its (embedding) inputs."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.head = torch.nn.Module()
        self.head.layers = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(dim, 2))
        self.device = torch.device("cpu")


def _offset_ids(clips: ClipBags, offset: int) -> ClipBags:
    return ClipBags(clips.features, clips.mask, clips.labels, clips.clip_ids + offset)


def test_pooling_is_cross_fitted_on_clips_the_segment_head_never_trained_on(monkeypatch) -> None:
    """Issue 26.4: the training clips' features (over-confident, here even misleading: their
    label sign is flipped) are never fit on; every validation clip is scored out of fold."""
    train, val, test = (_needle_clips(n, s) for n, s in ((64, 0), (40, 1), (32, 2)))
    train.labels = 1 - train.labels  # what a memorised training set can look like
    datasets = {
        "train": FeatureRows(_offset_ids(train, 1000)),
        "val": FeatureRows(_offset_ids(val, 2000)),
        "test": FeatureRows(_offset_ids(test, 3000)),
    }
    fitted_on: list[tuple[set, set]] = []
    fit = clip_pooling.fit_attention_pooling

    def recording_fit(train_bags, stop_bags, *args, **kwargs):
        fitted_on.append((set(train_bags.clip_ids.tolist()), set(stop_bags.clip_ids.tolist())))
        return fit(train_bags, stop_bags, *args, **kwargs)

    monkeypatch.setattr(clip_pooling, "fit_attention_pooling", recording_fit)
    settings = PoolingSettings(attention_dim=16, lr=3e-2, max_epochs=60, patience=20, folds=4)
    results = pooled_clip_results(IdentityHead(8), datasets, 2, settings, seed=0, embedded=True)
    val_ids = set(range(2000, 2040))
    assert len(fitted_on) == 4
    for trained, stopped in fitted_on:
        assert trained | stopped <= val_ids and not trained & stopped
    assert set().union(*(stopped for _, stopped in fitted_on)) == val_ids  # each once out of fold
    assert results["test"]["WA"] == 1.0 and results["val"]["WA"] >= 0.9


def test_too_few_validation_clips_to_cross_fit_is_one_clear_error() -> None:
    one = _needle_clips(1, 0)
    datasets = {name: FeatureRows(one) for name in ("train", "val", "test")}
    with pytest.raises(SegserError, match="at least 2"):
        pooled_clip_results(IdentityHead(8), datasets, 2, PoolingSettings(), 0, embedded=True)

"""Attention clip pooling keeps the weights of its lowest validation loss, not its last epoch's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segser.models.clip_pooling import (
    AttentionPooling,
    PoolingSettings,
    bags,
    fit_attention_pooling,
)

CLASSES = 3


def _bags(seed: int, shift: int):
    """12 clips of 2-5 segments whose mean feature tells the class; `shift` relabels them."""
    generator = torch.Generator().manual_seed(seed)
    features, labels, clips = [], [], []
    for clip in range(12):
        label = clip % CLASSES
        count = 2 + clip % 4
        centre = torch.zeros(6)
        centre[label] = 2.0
        features.append(centre + torch.randn(count, 6, generator=generator))
        labels += [(label + shift) % CLASSES] * count
        clips += [clip] * count
    return bags(torch.cat(features), torch.tensor(labels), torch.tensor(clips))


def _by_hand(train, val, settings: PoolingSettings, seed: int) -> list[tuple[float, dict]]:
    """Reference: the same training, every epoch's validation loss and weights kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttentionPooling(6, CLASSES, settings.attention_dim, settings.dropout)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr,
                                     weight_decay=settings.weight_decay)  # fmt: skip
        loss = nn.CrossEntropyLoss()
        epochs = []
        for _ in range(settings.max_epochs):
            model.train()
            optimizer.zero_grad()
            loss(model(train.features, train.mask), train.labels).backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                value = float(loss(model(val.features, val.mask), val.labels))
            epochs.append((value, {k: v.clone() for k, v in model.state_dict().items()}))
    return epochs


@pytest.mark.parametrize(("val_shift", "max_epochs"), [(1, 12), (0, 12), (2, 30)])
def test_the_kept_weights_are_the_best_validation_epochs(val_shift: int, max_epochs: int) -> None:
    """val_shift 1/2: validation labels disagree with training, so the loss rises after the
    first steps and the best epoch lies early; 0: validation agrees, the best is late."""
    train, val = _bags(0, 0), _bags(1, val_shift)
    settings = PoolingSettings(attention_dim=8, lr=0.05, weight_decay=0.0, dropout=0.0,
                               max_epochs=max_epochs, patience=max_epochs)  # fmt: skip
    kept = fit_attention_pooling(train, val, CLASSES, settings, seed=3)
    epochs = _by_hand(train, val, settings, seed=3)
    losses = [value for value, _ in epochs]
    best = losses.index(min(losses))
    if val_shift:
        assert best < len(epochs) - 1, losses  # the case this test is about: best is not last
    for key, value in kept.state_dict().items():
        torch.testing.assert_close(value, epochs[best][1][key], msg=f"{key} (best epoch {best})")
    assert not kept.training


def test_early_stopping_waits_patience_epochs_then_restores_the_best() -> None:
    train, val = _bags(0, 0), _bags(1, 1)
    settings = PoolingSettings(attention_dim=8, lr=0.05, weight_decay=0.0, dropout=0.0,
                               max_epochs=200, patience=4)  # fmt: skip
    kept = fit_attention_pooling(train, val, CLASSES, settings, seed=3)
    losses = [value for value, _ in _by_hand(train, val, settings, seed=3)]
    best, waited = 0, 0  # the lowest loss before `patience` epochs without a lower one
    for epoch, value in enumerate(losses[1:], start=1):
        best, waited = (epoch, 0) if value < losses[best] - 1e-6 else (best, waited + 1)
        if waited >= settings.patience:
            break
    assert best < epoch  # it stopped after the best epoch, and long before 200
    with torch.no_grad():
        got = float(nn.CrossEntropyLoss()(kept(val.features, val.mask), val.labels))
    assert got == pytest.approx(losses[best], abs=1e-6)

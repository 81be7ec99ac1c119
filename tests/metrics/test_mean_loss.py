"""The epoch's mean segment loss: weighted by segments, NaN-propagating, never read on the host."""

from __future__ import annotations

import math

import pytest
import torch

from segser.metrics.mean_loss import MeanSegmentLoss


def test_mean_over_segments_weights_each_batch_by_its_size() -> None:
    metric = MeanSegmentLoss()
    metric.update(torch.tensor(1.0), 3)  # 3 segments of mean loss 1
    metric.update(torch.tensor(2.0), 1)  # 1 segment of loss 2
    assert metric.compute().item() == pytest.approx((3 * 1.0 + 1 * 2.0) / 4)
    metric.reset()
    metric.update(torch.tensor(0.5), 2)
    assert metric.compute().item() == pytest.approx(0.5)


def test_a_nan_batch_makes_the_epoch_mean_nan_instead_of_being_dropped() -> None:
    metric = MeanSegmentLoss()
    metric.update(torch.tensor(1.0), 3)
    metric.update(torch.tensor(float("nan")), 2)
    metric.update(torch.tensor(1.0), 3)
    assert math.isnan(metric.compute().item())


def test_update_never_asks_the_device_for_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python `if` on a tensor or .item() would wait for a GPU; on CPU they are caught here."""
    metric = MeanSegmentLoss()

    def refuse(*args, **kwargs):
        raise AssertionError("host read of a tensor in update")

    for name in ("__bool__", "item", "tolist", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    metric.update(torch.tensor(float("nan")), 2)
    monkeypatch.undo()
    assert math.isnan(metric.compute().item())

"""Seeds stacked in one process train as each would alone (issue 22 §4), on CPU."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from segser.models.stacked import StackedSeeds, summed_loss

COPIES, STEPS = 2, 3


def small_net(seed: int) -> nn.Module:
    """Conv, pool and linear layers: the kinds VGGish has, small enough for a CPU test."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(4 * 48 * 32, 16), nn.ReLU(), nn.Linear(16, 4),
    )  # fmt: skip


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each step: a different batch for each copy, [K, B, 1, 96, 64] and labels [K, B]."""
    generator = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(COPIES, 8, 1, 96, 64, generator=generator),
            torch.randint(0, 4, (COPIES, 8), generator=generator),
        )
        for _ in range(STEPS)
    ]


OPTIMIZERS = {
    "adam": partial(torch.optim.Adam, lr=1e-3),
    "sgd": partial(torch.optim.SGD, lr=0.1),  # sees a wrongly scaled gradient, Adam barely does
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_stacked_copy_ends_where_training_it_alone_ends(optimizer: str) -> None:
    make_optimizer, loss = OPTIMIZERS[optimizer], nn.CrossEntropyLoss()
    alone = []
    for k in range(COPIES):
        model = small_net(seed=k)
        opt = make_optimizer(model.parameters())
        for patches, labels in batches():
            opt.zero_grad()
            loss(model(patches[k]), labels[k]).backward()
            opt.step()
        alone.append(model.state_dict())
    stacked = StackedSeeds([small_net(seed=k) for k in range(COPIES)])
    opt = make_optimizer(stacked.parameters())
    for patches, labels in batches():
        opt.zero_grad()
        summed_loss(stacked(patches), labels, loss).backward()
        opt.step()
    for k in range(COPIES):
        trained = stacked.copy_state(k)
        assert set(trained) == set(alone[k])
        for name, value in trained.items():
            # vmap runs grouped convolutions and batched matmuls: equal up to float rounding
            torch.testing.assert_close(value, alone[k][name], rtol=1e-5, atol=1e-6)
        assert not torch.equal(trained["0.weight"], small_net(seed=k).state_dict()["0.weight"])


def test_networks_with_buffers_are_refused() -> None:
    with pytest.raises(ValueError, match="buffers"):
        StackedSeeds([nn.BatchNorm1d(4), nn.BatchNorm1d(4)])

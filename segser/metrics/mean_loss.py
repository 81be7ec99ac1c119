"""The epoch's mean segment loss, accumulated on the device without ever waiting for it.

torchmetrics' MeanMetric checks every update for NaN with a Python `if` on a tensor, which on
a GPU waits for the step to finish (one host sync per training step), and its
nan_strategy="disable" drops the weights. Here a NaN or Inf loss simply makes the sum
non-finite; the module checks that once per epoch (SegmentEmotionClassifier._stop_if_diverged).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class MeanSegmentLoss(Metric):
    """Sum of (batch mean loss x batch segments) over sum of segments; states summed over ranks."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    total: Tensor
    segments: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")
        self.add_state("segments", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, batch_mean_loss: Tensor, segments: int) -> None:
        self.total += batch_mean_loss.detach() * segments  # a Python int: no host-to-device copy
        self.segments += segments

    def compute(self) -> Tensor:
        return self.total / self.segments

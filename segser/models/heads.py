"""The classification head: embedding -> emotion logits for one segment (paper, section 4.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from segser.errors import SegserError


class InputStandardizer(nn.Module):
    """Zero mean, unit variance per embedding dimension, with the training embeddings' statistics.

    scikit-learn's StandardScaler as a layer (fitted once before training: see
    SegmentEmotionClassifier.on_fit_start), so that checkpoints carry it to evaluate and
    predict. Frozen embeddings come at scales a fresh head trains badly on: a randomly
    initialised YAMNet's share one large offset (mean 0.2, spread across clips 0.05), on which
    an unnormalised head stays at chance; concatenated layers differ in scale. Fixed statistics,
    not BatchNorm's batch ones: those cost the frozen-YAMNet head 0.04 UA on EmoDB (measured).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))  # 1 / std; 1 where the std is ~0
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, total: Tensor, total_squares: Tensor, count: float) -> None:
        """Set the statistics from the sums of the training embeddings and of their squares."""
        mean = total.double() / count
        std = (total_squares.double() / count - mean.square()).clamp_min(0).sqrt()
        constant = std <= 1e-6 * mean.abs().clamp_min(1.0)
        self.mean.copy_(mean)
        self.scale.copy_(torch.where(constant, torch.ones_like(std), 1 / std))
        self.fitted.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.scale


class LayerWeightedSum(nn.Module):
    """[B, L*D] (L layers of width D, concatenated) -> [B, D]: a softmax-weighted sum of layers.

    SUPERB's way of probing a frozen network: the head learns which layers to listen to
    instead of being told one, and stays as small as one layer's width.
    """

    def __init__(self, num_layers: int, width: int) -> None:
        super().__init__()
        self.num_layers, self.width = num_layers, width
        self.logits = nn.Parameter(torch.zeros(num_layers))  # equal weights to start

    def forward(self, x: Tensor) -> Tensor:
        weights = self.logits.softmax(0)
        return torch.einsum("bld,l->bd", x.view(len(x), self.num_layers, self.width), weights)


class ClassificationHead(nn.Module):
    """[standardize ->] Linear(embedding_dim, units) -> ReLU -> Dropout -> Linear(units, classes).

    `units=0` drops the hidden layer and keeps only the logits layer: that is what follows the
    baseline PatchMLP, whose own layers already form the paper's N hidden layers.
    `input_norm` standardizes the embedding first (InputStandardizer); the paper's head has none.
    """

    def __init__(
        self,
        embedding_dim: int,
        units: int,
        num_classes: int,
        dropout: float = 0.0,
        input_norm: bool = False,
        layer_sum: bool = False,
        layer_dims: Sequence[int] | None = None,
    ):
        super().__init__()
        if units < 0 or embedding_dim <= 0 or num_classes <= 0:
            raise ValueError(
                f"head sizes must be positive (units may be 0): embedding_dim={embedding_dim}, "
                f"units={units}, num_classes={num_classes}"
            )
        first: list[nn.Module] = [InputStandardizer(embedding_dim)] if input_norm else []
        width = embedding_dim
        if layer_sum:
            dims = list(layer_dims or [embedding_dim])
            if len(set(dims)) != 1 or sum(dims) != embedding_dim:
                raise SegserError(
                    f"head.layer_sum=true needs backbone layers of one width, got widths {dims}: "
                    "choose backbone.net.embedding_layers of one stage (YAMNet 6-11: 512 each) "
                    "or set head.layer_sum=false to concatenate them"
                )
            width = dims[0]
            first.append(LayerWeightedSum(len(dims), width))
        if units == 0:
            self.layers = nn.Sequential(*first, nn.Linear(width, num_classes))
        else:
            self.layers = nn.Sequential(
                *first,
                nn.Linear(width, units),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(units, num_classes),
            )

    @property
    def standardizer(self) -> InputStandardizer | None:
        """The input standardizer (the first layer), if `input_norm`; a view, not a second copy."""
        first = self.layers[0]
        return first if isinstance(first, InputStandardizer) else None

    def forward(self, embedding: Tensor) -> Tensor:
        return self.layers(embedding)

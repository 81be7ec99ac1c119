"""The classification head: embedding -> emotion logits for one segment (paper, section 4.3)."""

from __future__ import annotations

from torch import Tensor, nn


class ClassificationHead(nn.Module):
    """Linear(embedding_dim, units) -> ReLU -> Dropout -> Linear(units, num_classes).

    `units=0` drops the hidden layer and keeps only the logits layer: that is what follows the
    baseline PatchMLP, whose own layers already form the paper's N hidden layers.
    """

    def __init__(self, embedding_dim: int, units: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if units < 0 or embedding_dim <= 0 or num_classes <= 0:
            raise ValueError(
                f"head sizes must be positive (units may be 0): embedding_dim={embedding_dim}, "
                f"units={units}, num_classes={num_classes}"
            )
        if units == 0:
            self.layers = nn.Sequential(nn.Linear(embedding_dim, num_classes))
        else:
            self.layers = nn.Sequential(
                nn.Linear(embedding_dim, units),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(units, num_classes),
            )

    def forward(self, embedding: Tensor) -> Tensor:
        return self.layers(embedding)

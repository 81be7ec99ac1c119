"""The paper's baseline (section 4.3): a fully connected network on the flattened 96x64 patch."""

from __future__ import annotations

from torch import Tensor, nn

from segser.models.backbone import Backbone


class PatchMLP(Backbone):
    """Flat patch -> `num_layers` x [Linear(units) -> ReLU -> BatchNorm -> Dropout] -> embedding.

    The paper puts batch norm and dropout "between every fully connected layer", the logits layer
    included, so each block ends with them. A logits layer (ClassificationHead with units=0)
    follows; `embedding_dim` = `units`. Paper's best: num_layers=2, units=200, dropout=0.5.
    """

    def __init__(
        self, num_layers: int, units: int, dropout: float = 0.5, in_features: int = 96 * 64
    ) -> None:
        super().__init__()
        if num_layers <= 0 or units <= 0:
            raise ValueError(f"num_layers and units must be positive, got {num_layers}, {units}")
        self.embedding_dim = units
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(num_layers):
            layers += [
                nn.Linear(in_features if i == 0 else units, units),
                nn.ReLU(),
                nn.BatchNorm1d(units),
                nn.Dropout(dropout),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, patch: Tensor) -> Tensor:
        return self.layers(patch)

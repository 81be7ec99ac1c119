"""VGGish (Hershey et al., 2017): the pre-trained CNN that turns a log-mel patch into an embedding.

Layer for layer the torchvggish port, so its state-dict keys (`features.0.weight` ...
`embeddings.4.bias`) and released weights load unchanged. No PCA/quantisation post-processing:
the paper feeds the raw 128-d embedding to its classification head.
"""

from __future__ import annotations

from types import MappingProxyType

from torch import Tensor, nn

from segser.models.backbone import Backbone
from segser.models.weights import load_vggish

# Output channels of the four conv blocks; "M" is a 2x2 max-pool (paper, Table 2).
_CONV_BLOCKS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
# A 96x64 patch after four 2x2 pools: 512 channels x 6 frames x 4 mel bands.
_FLAT_FEATURES = 512 * 6 * 4


class VGGish(Backbone):
    """Patch [B, 1, 96 frames, 64 mel bands] -> raw embedding [B, 128].

    `final_relu`: whether a ReLU follows the last 128-d layer. The paper (2019) and torchvggish
    keep it; the TF reference dropped it in 2020 (same weights). Runs record which one they used.
    """

    embedding_dim = 128
    required_features = MappingProxyType({"log_offset": 0.01})

    def __init__(self, final_relu: bool = True) -> None:
        super().__init__()
        self.final_relu = final_relu
        layers: list[nn.Module] = []
        in_channels = 1
        for block in _CONV_BLOCKS:
            if block == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, block, kernel_size=3, padding=1), nn.ReLU(True)]
                in_channels = block
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(_FLAT_FEATURES, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Linear(4096, self.embedding_dim),
            # Identity keeps the module indices (and so the state-dict keys) the same either way.
            nn.ReLU(True) if final_relu else nn.Identity(),
        )

    def forward(self, patch: Tensor) -> Tensor:
        x = self.features(patch)  # [B, 512, 6, 4]
        # The TF model flattens channels-last (NHWC); its fully connected weights expect that order.
        # flatten (not view) copies only when needed: channels_last and contiguous inputs both work.
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.embeddings(x)

    def load_weights(self, source: str) -> None:
        """ "torchvggish" (the released file via torch.hub, hash-checked), a path, or "none"."""
        load_vggish(self, source)

    def extra_repr(self) -> str:
        return f"final_relu={self.final_relu}"

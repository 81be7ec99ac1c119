"""YAMNet (Plakal & Ellis, Google's research/audioset): MobileNetV1 on VGGish's log-mel patch.

Pre-trained on AudioSet like VGGish, 3.7M parameters instead of 72M. Batch norm is folded into
the convolutions (every conv has a bias), each conv is followed by ReLU, and padding is
TensorFlow's SAME: for stride 2 the extra row/column goes at the bottom/right. Weights:
segser/models/pretrained/ (see its README) or a file; see yamnet_weights.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segser.errors import SegserError
from segser.models.backbone import Backbone, LayerRange
from segser.models.yamnet_weights import load_yamnet

# (stride, out channels) of layers 1-13, the depthwise-separable ones (layer 0: 3x3 conv, s2, 32).
_SEPARABLE_LAYERS = (
    (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024),
)  # fmt: skip
AUDIOSET_CLASSES = 521
LAYER_CHANNELS = (32, *(channels for _, channels in _SEPARABLE_LAYERS))  # layers 0-13
FINAL_LAYER = len(LAYER_CHANNELS) - 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME: output ceil(size / stride); the odd pixel of padding goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d padded as TensorFlow's SAME (which `padding=1` is not for stride 2)."""

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if (top, left) == (bottom, right):  # symmetric: let the convolution pad (no copy)
            x = F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, self.groups)
        else:
            x = F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias,
                         self.stride, 0, 1, self.groups)  # fmt: skip
        return F.relu_(x)


class _Conv(nn.Module):
    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = SameConv2d(1, out_channels, 3, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _Separable(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.depthwise = SameConv2d(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = SameConv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


# The layers the embedding may pool: a non-empty list of 0-13 (no null for all of them).
LAYERS = LayerRange(
    count=FINAL_LAYER + 1,
    null_means_all=False,
    give=f"YAMNet layer indices 0-{FINAL_LAYER}, e.g. [{FINAL_LAYER}] (Google's embedding) or "
    f"[6,7,...,{FINAL_LAYER}].",
    allowed=f"a non-empty list of YAMNet layer indices 0-{FINAL_LAYER}, e.g. [{FINAL_LAYER}] "
    "or [6,7,8,9,10,11]",
)


class YAMNet(Backbone):
    """Patch [B, 1, 96 frames, 64 mel bands] -> embedding: the chosen layers, average-pooled.

    Google's YAMNet embedding is the last layer's pooled output (1024-d, `embedding_layers=
    [13]`). For emotion that layer is the worst pre-trained one: it is specialised to
    AudioSet's event classes. A linear probe on EmoDB speakers it never saw (docs/backbones.md,
    "Which YAMNet layers") scores 0.71 WA on layer 13 and 0.76-0.83 on layers 4-12, so
    segser's config takes the six 512-channel layers 6-11 and the head learns a weighted sum
    of them (heads.LayerWeightedSum), as SUPERB's probes weigh every layer.

    `classifier` (AudioSet's 521 scores) is kept so the released file loads strictly and for
    `audioset_logits`; it is frozen and unused by emotion training.
    """

    required_features = MappingProxyType({"log_offset": 0.001})

    def __init__(self, embedding_layers: Sequence[int] = (FINAL_LAYER,)) -> None:
        super().__init__()
        self.embedding_layers = LAYERS.checked(embedding_layers)
        self.layer_dims = tuple(LAYER_CHANNELS[i] for i in self.embedding_layers)
        self.embedding_dim = sum(self.layer_dims)
        layers: list[nn.Module] = [_Conv(32, stride=2)]
        channels = 32
        for stride, out_channels in _SEPARABLE_LAYERS:
            layers.append(_Separable(channels, out_channels, stride))
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(LAYER_CHANNELS[FINAL_LAYER], AUDIOSET_CLASSES)
        self.classifier.requires_grad_(False)  # DDP must not wait for gradients it never gets
        self.layers[self.embedding_layers[-1] + 1 :].requires_grad_(False)  # nor from unused layers
        # From scratch (backbone.weights=none) the network needs a signal-preserving init:
        # PyTorch's default conv init shrinks activations through the 14 ReLU layers until the
        # embedding is the same for every input (spread across inputs ~1e-9, measured), which
        # would make the random-init control a constant. He-normal weights, zero biases.
        for module in self.layers.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        # Depthwise convolutions run ~1.6x faster on CPU with channels-last weights (measured
        # with experiments/bench_transfer.py's model); outputs agree to 1e-7.
        self.to(memory_format=torch.channels_last)

    @classmethod
    def check_net_config(cls, net: Mapping[str, Any]) -> None:
        """`embedding_layers` within 0-13 (absent: the constructor's default)."""
        if "embedding_layers" in net:
            LAYERS.check_config(net["embedding_layers"])

    def extra_repr(self) -> str:  # part of the embedding cache's key
        return f"embedding_layers={list(self.embedding_layers)}"

    def forward(self, patch: Tensor) -> Tensor:
        pooled = []
        x = patch
        for index, layer in enumerate(self.layers[: self.embedding_layers[-1] + 1]):
            x = layer(x)
            if index in self.embedding_layers:
                pooled.append(x.mean(dim=(2, 3)))
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)

    def train_last_layers(self, count: int) -> None:
        """Fine-tune only the last `count` of the layers the embedding reads (backbone.
        trainable_layers): the earlier ones keep their AudioSet weights and get no gradients."""
        used = self.layers[: self.embedding_layers[-1] + 1]
        if not 1 <= count <= len(used):
            raise SegserError(
                f"backbone.trainable_layers={count}: give 1-{len(used)} (the embedding reads "
                f"layers 0-{len(used) - 1}), or null to fine-tune them all"
            )
        used.requires_grad_(False)
        used[len(used) - count :].requires_grad_(True)

    def audioset_logits(self, patch: Tensor) -> Tensor:
        """AudioSet class logits [B, 521] (sigmoid gives YAMNet's scores), from layer 13."""
        return self.classifier(self.layers(patch).mean(dim=(2, 3)))

    def load_weights(self, source: str) -> None:
        """ "packaged" (the vendored, hash-checked file), a path (BN folded if separate), "none"."""
        load_yamnet(self, source)

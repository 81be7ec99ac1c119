"""YAMNet's weights: the packaged AudioSet file (sha256-checked), a file of yours, or none.

The packaged file already has batch norm folded into its convolutions. A float port that keeps
separate BatchNorm layers (torch_audioset's layout: `layer{N}.fused|depthwise_conv|pointwise_conv
.{conv,bn}.*`, N = 1..14) is folded at load with torch's own `fuse_conv_bn_weights`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor
from torch.nn.utils.fusion import fuse_conv_bn_weights

from segser.errors import SegserError
from segser.models.weights import file_sha256, load_state_dict_file, load_strictly

PACKAGED_YAMNET = Path(__file__).parent / "pretrained" / "yamnet-dequantized.pt"
PACKAGED_YAMNET_SHA256 = "a734781bd666fb9c74a11c6d70bfa5a1095515d3aa00a9a027d3af61937f739a"
# YAMNet's batch norm epsilon (yamnet params.py); a state dict does not record it.
PORT_BATCHNORM_EPS = 1e-4
_FIX = "Pass the packaged weights (backbone.weights=packaged), a YAMNet state dict, or 'none'"
_PORT_KEY = re.compile(r"^layer(\d+)\.(fused|depthwise_conv|pointwise_conv)\.(conv|bn)\.(\w+)$")
_PORT_PART = {"fused": "conv", "depthwise_conv": "depthwise", "pointwise_conv": "pointwise"}


def packaged_state_dict(path: Path = PACKAGED_YAMNET) -> dict[str, Tensor]:
    """The vendored AudioSet weights, refused unless their sha256 is the published one."""
    if not path.is_file():
        raise SegserError(f"{path}: packaged YAMNet weights are missing. Reinstall segser.")
    digest = file_sha256(path)
    if digest != PACKAGED_YAMNET_SHA256:
        raise SegserError(
            f"{path}: sha256 is {digest}, not the packaged YAMNet's {PACKAGED_YAMNET_SHA256} "
            "(corrupt or replaced). Reinstall segser, or pass your file as backbone.weights=PATH."
        )
    return load_state_dict_file(str(path), fix=_FIX)


def fold_batch_norm(
    state: Mapping[str, Tensor], eps: float = PORT_BATCHNORM_EPS
) -> dict[str, Tensor]:
    """torch_audioset layout (conv + separate BN) -> segser's YAMNet keys with folded biases."""
    parts: dict[str, dict[str, Tensor]] = {}
    folded: dict[str, Tensor] = {}
    for key, value in state.items():
        match = _PORT_KEY.match(key)
        if match is None:
            folded[key] = value  # classifier.{weight,bias}
            continue
        layer, part, kind, name = match.groups()
        target = f"layers.{int(layer) - 1}.{_PORT_PART[part]}"
        parts.setdefault(target, {})[f"{kind}.{name}"] = value
    for target, tensors in parts.items():
        conv_weight = tensors.get("conv.weight")
        mean, var = tensors.get("bn.running_mean"), tensors.get("bn.running_var")
        if conv_weight is None or mean is None or var is None:
            raise SegserError(
                f"{target}: needs conv.weight, bn.running_mean and bn.running_var to fold batch "
                f"norm, found {sorted(tensors)}. {_FIX}"
            )
        ones, zeros = torch.ones_like(mean), torch.zeros_like(mean)
        weight, bias = fuse_conv_bn_weights(
            conv_weight,
            tensors.get("conv.bias"),
            mean,
            var,
            eps,
            tensors.get("bn.weight", ones),  # YAMNet's batch norm has no scale (gamma = 1)
            tensors.get("bn.bias", zeros),
        )
        folded[f"{target}.weight"] = weight.detach()
        folded[f"{target}.bias"] = bias.detach()
    return folded


def load_yamnet(model: torch.nn.Module, source: str) -> None:
    """Load "packaged", "none" (random init) or a file into `model`, strictly."""
    if source == "none":
        return
    if source == "packaged":
        state = packaged_state_dict()
    else:
        state = load_state_dict_file(source, "'packaged' or 'none'", _FIX)
        if any(_PORT_KEY.match(key) for key in state):
            state = fold_batch_norm(state)
    load_strictly(model, state, source, _FIX)

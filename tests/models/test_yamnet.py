"""YAMNet vs an independent forward (F.conv2d, explicit TF SAME padding), BN folding, hashes."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from segser.errors import SegserError
from segser.models.yamnet import YAMNet, same_padding
from segser.models.yamnet_weights import (
    PACKAGED_YAMNET,
    PACKAGED_YAMNET_SHA256,
    fold_batch_norm,
    packaged_state_dict,
)

SHARED_README = Path(__file__).resolve().parents[3] / "shared" / "weights" / "yamnet" / "README.md"
# (stride, out channels) of YAMNet's 14 layers, written out again from the shared README's table.
STRIDES = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
CHANNELS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]


def reference_conv(x, weight, bias, stride, bn=None):
    """One TF-slim conv (+ optional eval-mode BN) + ReLU; SAME padding written out by hand: the
    inputs here are even-sized, so stride 2 pads one row/column at the bottom/right only."""
    if weight.shape[-1] == 3:
        pad = (0, 1, 0, 1) if stride == 2 else (1, 1, 1, 1)
        x = F.pad(x, pad)
    groups = x.shape[1] if weight.shape[1] == 1 and weight.shape[0] == x.shape[1] > 1 else 1
    x = F.conv2d(x, weight, bias, stride=stride, groups=groups)
    if bn is not None:
        x = F.batch_norm(x, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"],
                         training=False, eps=1e-4)  # fmt: skip
    return F.relu(x)


def reference_forward(patch, state, layers=(13,)):
    """YAMNet's embedding from segser-layout tensors, without the module under test: the
    average-pooled outputs of `layers`, concatenated in order."""
    x = reference_conv(patch, state["layers.0.conv.weight"], state["layers.0.conv.bias"], 2)
    pooled = [x.mean(dim=(2, 3))]
    for i in range(1, 14):
        x = reference_conv(
            x,
            state[f"layers.{i}.depthwise.weight"],
            state[f"layers.{i}.depthwise.bias"],
            STRIDES[i],
        )
        x = reference_conv(
            x, state[f"layers.{i}.pointwise.weight"], state[f"layers.{i}.pointwise.bias"], 1
        )
        pooled.append(x.mean(dim=(2, 3)))
    return torch.cat([pooled[i] for i in layers], dim=1)


def test_same_padding_matches_tensorflow_by_hand() -> None:
    assert same_padding(96, 3, 2) == (0, 1)  # out 48: (47*2 + 3) - 96 = 1, after
    assert same_padding(5, 3, 2) == (1, 1)  # out 3: (2*2 + 3) - 5 = 2
    assert same_padding(3, 3, 1) == (1, 1)
    assert same_padding(7, 1, 1) == (0, 0)


def test_packaged_forward_matches_independent_reference() -> None:
    state = packaged_state_dict()
    model = YAMNet()
    model.load_weights("packaged")
    patch = torch.randn(3, 1, 96, 64, generator=torch.Generator().manual_seed(0)) * 3 - 4
    with torch.no_grad():
        embedding = model.eval()(patch)
        expected = reference_forward(patch, state)
    assert embedding.shape == (3, 1024)
    assert expected.abs().max() > 1e-2  # a dead network would match trivially
    torch.testing.assert_close(embedding, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layers", [[6, 7, 8, 9, 10, 11, 12, 13], [0, 9], [4]])
def test_chosen_layers_are_pooled_and_concatenated_like_the_reference(layers) -> None:
    state = packaged_state_dict()
    model = YAMNet(embedding_layers=list(reversed(layers)))  # order given does not matter
    model.load_weights("packaged")
    patch = torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(1)) * 3 - 4
    with torch.no_grad():
        embedding = model.eval()(patch)
        expected = reference_forward(patch, state, layers)
    assert model.embedding_dim == sum(CHANNELS[i] for i in layers) == embedding.shape[1]
    torch.testing.assert_close(embedding, expected, rtol=1e-4, atol=1e-5)
    assert f"embedding_layers={layers}" in repr(model)  # part of the embedding cache key


def test_layers_after_the_last_embedding_layer_get_no_gradient() -> None:
    """Fine-tuned under DDP, a parameter that never receives a gradient stalls the reduction."""
    model = YAMNet(embedding_layers=[6, 11])
    model(torch.randn(2, 1, 96, 64)).sum().backward()
    for name, parameter in model.named_parameters():
        used = name.startswith("layers.") and int(name.split(".")[1]) <= 11
        assert parameter.requires_grad == used, name
        assert (parameter.grad is not None) == used, name


@pytest.mark.parametrize("layers", [[], [14], [-1], [True], ["6"]])
def test_bad_embedding_layers_are_one_line(layers) -> None:
    with pytest.raises(SegserError, match=r"embedding_layers=.*layer indices 0-13"):
        YAMNet(embedding_layers=layers)


def test_packaged_hash_is_the_published_one() -> None:
    digest = hashlib.sha256(PACKAGED_YAMNET.read_bytes()).hexdigest()
    assert digest == PACKAGED_YAMNET_SHA256
    if SHARED_README.is_file():  # the provenance README beside the original file
        assert PACKAGED_YAMNET_SHA256 in SHARED_README.read_text()
    beside = (PACKAGED_YAMNET.parent / "README.md").read_text()
    assert PACKAGED_YAMNET_SHA256 in beside


def test_tampered_packaged_copy_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "yamnet-dequantized.pt"
    shutil.copyfile(PACKAGED_YAMNET, tampered)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit inside a weight tensor
    tampered.write_bytes(bytes(data))
    with pytest.raises(SegserError, match="sha256") as err:
        packaged_state_dict(tampered)
    assert str(tampered) in str(err.value) and "\n" not in str(err.value)


def _port_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A float YAMNet in torch_audioset's layout: bias-free convs, separate BatchNorm layers."""

    def bn(channels: int, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.bn.weight": torch.rand(channels, generator=generator) + 0.5,
            f"{prefix}.bn.bias": torch.randn(channels, generator=generator) * 0.1,
            f"{prefix}.bn.running_mean": torch.randn(channels, generator=generator) * 0.1,
            f"{prefix}.bn.running_var": torch.rand(channels, generator=generator) + 0.5,
            f"{prefix}.bn.num_batches_tracked": torch.tensor(100),
        }

    def conv(shape: tuple[int, ...], prefix: str) -> dict[str, torch.Tensor]:
        fan_in = shape[1] * shape[2] * shape[3]
        weight = torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5
        return {f"{prefix}.conv.weight": weight, **bn(shape[0], prefix)}

    state = conv((32, 1, 3, 3), "layer1.fused")
    for i in range(1, 14):
        c_in, c_out = CHANNELS[i - 1], CHANNELS[i]
        state |= conv((c_in, 1, 3, 3), f"layer{i + 1}.depthwise_conv")
        state |= conv((c_out, c_in, 1, 1), f"layer{i + 1}.pointwise_conv")
    state["classifier.weight"] = torch.randn(521, 1024, generator=generator) * 0.01
    state["classifier.bias"] = torch.zeros(521)
    return state


def test_batch_norm_port_is_folded_at_load(tmp_path: Path) -> None:
    state = _port_state(torch.Generator().manual_seed(1))
    path = tmp_path / "yamnet_port.pth"
    torch.save(state, path)
    model = YAMNet()
    model.load_weights(str(path))
    patch = torch.randn(2, 1, 96, 64, generator=torch.Generator().manual_seed(2))

    def ref(x, prefix, stride):
        bn = {
            k: state[f"{prefix}.bn.{k}"] for k in ("running_mean", "running_var", "weight", "bias")
        }
        return reference_conv(x, state[f"{prefix}.conv.weight"], None, stride, bn)

    x = ref(patch, "layer1.fused", 2)
    for i in range(1, 14):
        x = ref(x, f"layer{i + 1}.depthwise_conv", STRIDES[i])
        x = ref(x, f"layer{i + 1}.pointwise_conv", 1)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(patch), x.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)
    assert set(fold_batch_norm(state)) == set(YAMNet().state_dict())


def test_foreign_state_dict_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(SegserError, match=re.escape(str(path))) as err:
        YAMNet().load_weights(str(path))
    assert "missing keys" in str(err.value) and "\n" not in str(err.value)


def test_random_init_keeps_inputs_apart() -> None:
    """backbone.weights=none is the no-transfer control: its embedding must still depend on the
    input (PyTorch's default init gave every input the same embedding, spread ~1e-9)."""
    torch.manual_seed(0)
    model = YAMNet().eval()
    model.load_weights("none")
    with torch.no_grad():
        embeddings = model(torch.randn(8, 1, 96, 64) * 2 - 5)
    assert embeddings.std(dim=0).mean() > 1e-2

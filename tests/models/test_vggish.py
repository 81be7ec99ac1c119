"""VGGish against torchvggish, the reference port, loaded through the real weight-file code path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvggish.torchvggish import _vgg

from segser.models.vggish import VGGish
from segser.models.weights import load_vggish

# Hand count (paper, Table 2): 3x3 convs 1->64->128->256->256->512->512, FC 12288->4096->4096->128.
CONV_PARAMS = sum(
    9 * i * o + o for i, o in [(1, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
)
FC_PARAMS = (512 * 6 * 4 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 128 + 128)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    torch.manual_seed(0)
    return _vgg(postprocess=False).eval()


@pytest.fixture(scope="module")
def weights_file(reference: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "random-vggish.pth"
    torch.save(reference.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def patches() -> torch.Tensor:
    # Log-mel-like values: log(mel + 0.01) spans roughly -4.6 .. 3.
    return torch.randn(3, 1, 96, 64, generator=torch.Generator().manual_seed(1)) * 2.0


def _reference_pre_relu(reference: torch.nn.Module, patches: torch.Tensor) -> torch.Tensor:
    """torchvggish's forward up to, not including, the last ReLU (its own transposes)."""
    x = reference.features(patches)
    x = torch.transpose(torch.transpose(x, 1, 3), 1, 2).contiguous().view(x.size(0), -1)
    return reference.embeddings[:-1](x)


def test_state_dict_keys_and_shapes_match_torchvggish(reference: torch.nn.Module) -> None:
    with torch.device("meta"):  # shapes only: skip allocating 72M parameters
        model = VGGish()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert ours == theirs
    assert "features.13.weight" in ours and "embeddings.4.bias" in ours


def test_parameter_count_matches_hand_count_and_torchvggish(reference: torch.nn.Module) -> None:
    with torch.device("meta"):
        count = sum(p.numel() for p in VGGish().parameters())
    assert count == CONV_PARAMS + FC_PARAMS == 72_141_184
    assert count == sum(p.numel() for p in reference.parameters())


@torch.no_grad()
def test_parity_with_torchvggish_final_relu(
    reference: torch.nn.Module, weights_file: Path, patches: torch.Tensor
) -> None:
    model = load_vggish(VGGish(final_relu=True), str(weights_file)).eval()
    expected = reference(patches.clone())
    assert (expected > 0).sum() > 10, "reference output is degenerate; parity would prove nothing"
    torch.testing.assert_close(model(patches), expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_without_final_relu_equals_torchvggish_pre_relu(
    reference: torch.nn.Module, weights_file: Path, patches: torch.Tensor
) -> None:
    model = load_vggish(VGGish(final_relu=False), str(weights_file)).eval()
    expected = _reference_pre_relu(reference, patches.clone())
    assert (expected < 0).any(), "need negative pre-ReLU values to tell the variants apart"
    torch.testing.assert_close(model(patches), expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_flatten_order_is_channels_last(reference: torch.nn.Module, patches: torch.Tensor) -> None:
    """The NHWC flatten matters: flattening NCHW with the same weights gives another embedding."""
    model = VGGish(final_relu=False).eval()
    model.load_state_dict(reference.state_dict())
    nchw = model.embeddings(model.features(patches).flatten(1))
    assert not torch.allclose(model(patches), nchw, atol=1e-3)


@torch.no_grad()
def test_channels_last_input_and_model_equal_contiguous(
    reference: torch.nn.Module, patches: torch.Tensor
) -> None:
    model = VGGish().eval()
    model.load_state_dict(reference.state_dict())
    expected = model(patches)
    out = model.to(memory_format=torch.channels_last)(patches.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_bf16_autocast_runs_and_stays_close(
    reference: torch.nn.Module, patches: torch.Tensor
) -> None:
    model = VGGish(final_relu=False).eval().to(memory_format=torch.channels_last)
    model.load_state_dict(reference.state_dict())
    expected = model(patches)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(patches.to(memory_format=torch.channels_last))
    assert out.dtype == torch.bfloat16 and out.shape == (3, 128)
    relative = (out.float() - expected).norm() / expected.norm()
    assert relative < 0.05


def test_final_relu_is_recorded_in_repr() -> None:
    with torch.device("meta"):
        assert "final_relu=False" in repr(VGGish(final_relu=False))
        assert VGGish().embedding_dim == 128

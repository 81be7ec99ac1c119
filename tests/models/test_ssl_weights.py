"""torchaudio's released SSL files: the old weight-norm layout loads as the current one does."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch.nn.utils import parametrize

from segser.errors import SegserError
from segser.models.ssl import SpeechTransformer
from tests.ssl_tiny import tiny_architecture

OLD_KEYS = ("encoder.transformer.pos_conv_embed.conv.weight_g",
            "encoder.transformer.pos_conv_embed.conv.weight_v")  # fmt: skip


def old_layout(model: SpeechTransformer) -> dict[str, torch.Tensor]:
    """The state dict as torchaudio's released files hold it: the positional convolution under
    torch's old `weight_norm` (weight_g, weight_v), made by torch itself, not by renaming."""
    conv = model.model.encoder.transformer.pos_conv_embed.conv
    parametrize.remove_parametrizations(conv, "weight")  # the plain weight, g * v / |v|
    with warnings.catch_warnings():  # torch deprecates the old weight_norm
        warnings.simplefilter("ignore", FutureWarning)
        torch.nn.utils.weight_norm(conv, name="weight", dim=2)
    return {key: value.clone() for key, value in model.model.state_dict().items()}


@pytest.mark.parametrize("bundle", ["WAV2VEC2_BASE", "WAVLM_LARGE"])
def test_old_weight_norm_layout_gives_the_same_embeddings(bundle: str, tmp_path: Path) -> None:
    torch.manual_seed(4)
    params = tiny_architecture(bundle)
    saved = SpeechTransformer(bundle, architecture=params).eval()
    segments = torch.randn(2, 1, 16000)
    with torch.no_grad():
        want = saved(segments)
    old = old_layout(saved)
    assert set(OLD_KEYS) <= set(old) and not any("parametrizations" in key for key in old)
    path = tmp_path / "released.pth"
    torch.save(old, path)
    model = SpeechTransformer(bundle, architecture=params).eval()
    model.load_weights(str(path))
    with torch.no_grad():
        torch.testing.assert_close(model(segments), want, atol=1e-6, rtol=1e-6)


def test_a_misfit_is_still_named_after_renaming(tmp_path: Path) -> None:
    torch.manual_seed(5)
    old = old_layout(
        SpeechTransformer("HUBERT_BASE", architecture=tiny_architecture("HUBERT_BASE"))
    )
    old.pop(OLD_KEYS[1])
    torch.save(old, tmp_path / "cut.pth")
    model = SpeechTransformer("HUBERT_BASE", architecture=tiny_architecture("HUBERT_BASE"))
    with pytest.raises(SegserError, match=r"cut.pth: does not fit .*missing keys .*original1"):
        model.load_weights(str(tmp_path / "cut.pth"))

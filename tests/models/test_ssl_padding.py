"""A zero-padded segment with its valid length embeds as the unpadded segment does."""

from __future__ import annotations

import pytest
import torch

from segser.models.ssl import SpeechTransformer
from tests.ssl_tiny import SSL_BACKBONES, tiny_architecture

NO_DROPOUT = {
    "encoder_projection_dropout": 0.0,
    "encoder_attention_dropout": 0.0,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.0,
}


def padded_pair(valid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A short segment alone, and a batch of it zero-padded to 1 s beside a whole one."""
    short = 0.1 * torch.randn(1, 1, valid) + 0.05  # an offset, so waveform norm matters
    whole = 0.1 * torch.randn(1, 1, 16000)
    batch = torch.cat([torch.nn.functional.pad(short, (0, 16000 - valid)), whole])
    return short, batch, torch.tensor([valid, 16000])


# torch deprecates a boolean key padding mask beside WavLM's float position bias
@pytest.mark.filterwarnings("error:Support for mismatched key_padding_mask:UserWarning")
@pytest.mark.parametrize("bundle", sorted(set(SSL_BACKBONES.values())))
def test_padded_segment_with_its_length_embeds_as_the_unpadded_one(bundle: str) -> None:
    torch.manual_seed(6)
    model = SpeechTransformer(bundle, architecture=tiny_architecture(bundle, layers=3)).eval()
    short, batch, lengths = padded_pair(7250)  # 0.45 s: 22 frames of the 49, not a whole stride
    with torch.no_grad():
        alone, whole = model(short), model(batch[1:])
        padded = model(batch, lengths)
        unmasked = model(batch)
    torch.testing.assert_close(padded[:1], alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(padded[1:], whole, atol=1e-4, rtol=0)
    # without lengths the zeros count (today's behaviour); with whole rows nothing changes
    assert (unmasked[:1] - alone).abs().max() > 1e-2
    torch.testing.assert_close(unmasked[1:], whole)
    with torch.no_grad():
        torch.testing.assert_close(model(batch[1:], lengths[1:]), whole, atol=1e-5, rtol=0)


def test_wavlm_masks_padding_when_layer_drop_skips_its_first_layer(monkeypatch) -> None:
    """WavLM masks padded keys beside the relative position bias its first layer makes."""
    torch.manual_seed(7)
    params = (
        tiny_architecture("WAVLM_BASE_PLUS", layers=3) | NO_DROPOUT | {"encoder_layer_drop": 0.5}
    )
    model = SpeechTransformer("WAVLM_BASE_PLUS", architecture=params).train()
    short, batch, lengths = padded_pair(7250)
    draws = iter([0.0, 1.0, 1.0] * 2)  # drop the first layer, keep the others, twice
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor([next(draws)]))
    with torch.no_grad():
        alone, padded = model(short), model(batch, lengths)
    torch.testing.assert_close(padded[:1], alone, atol=1e-4, rtol=0)

"""Small random Whisper encoders for the tests, built by openai-whisper's own AudioEncoder."""

from __future__ import annotations

import torch

# two small sizes: 80 mel bins like tiny-large-v2, 128 like large-v3
SMALL_DIMS = (
    {"n_mels": 80, "n_audio_state": 64, "n_audio_head": 4, "n_audio_layer": 2},
    {"n_mels": 128, "n_audio_state": 96, "n_audio_head": 6, "n_audio_layer": 3},
)


def openai_encoder(dims: dict[str, int], n_ctx: int = 1500, seed: int = 0) -> torch.nn.Module:
    """openai-whisper's AudioEncoder with random weights, layer norms included (so a swapped
    attn_ln / mlp_ln would show)."""
    from whisper.model import AudioEncoder

    torch.manual_seed(seed)
    encoder = AudioEncoder(
        dims["n_mels"], n_ctx, dims["n_audio_state"], dims["n_audio_head"], dims["n_audio_layer"]
    )
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if "ln" in name:
                param.add_(0.1 * torch.randn_like(param))
    return encoder.eval()


def openai_state(dims: dict[str, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A random encoder's state dict under OpenAI's names (positions for 1500 frames)."""
    return dict(openai_encoder(dims, seed=seed).state_dict())

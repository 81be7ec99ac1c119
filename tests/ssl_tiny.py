"""Small networks of the SSL bundles' own layouts, so tests run in seconds on CPU.

The convolutional encoder keeps its 7 layers, kernels and strides (400-sample receptive field,
320-sample stride) with 16 channels; the transformer keeps its kind (post- or pre-norm, WavLM's
relative position bias) with 2 layers of width 32. Everything else is the bundle's.
"""

from __future__ import annotations

from typing import Any

CONV = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]
SSL_BACKBONES = {  # conf/backbone name -> bundle
    "wav2vec2_base": "WAV2VEC2_BASE",
    "hubert_base": "HUBERT_BASE",
    "wavlm_base_plus": "WAVLM_BASE_PLUS",
    "wav2vec2_large": "WAV2VEC2_LARGE_LV60K",
    "hubert_large": "HUBERT_LARGE",
    "wavlm_large": "WAVLM_LARGE",
}


def tiny_architecture(bundle: str, layers: int = 2) -> dict[str, Any]:
    """Arguments of torchaudio.models.wav2vec2_model / wavlm_model over the bundle's own."""
    params: dict[str, Any] = {
        "extractor_conv_layer_config": CONV,
        "encoder_embed_dim": 32,
        "encoder_num_heads": 2,
        "encoder_ff_interm_features": 64,
        "encoder_num_layers": layers,
        "encoder_pos_conv_kernel": 16,
        "encoder_pos_conv_groups": 4,
    }
    if bundle.startswith("WAVLM"):  # wavlm_model's relative position bias
        params |= {"encoder_num_buckets": 16, "encoder_max_distance": 40}
    return params


def tiny_override(bundle: str, layers: int = 2) -> str:
    """The Hydra override that shrinks `backbone.net.architecture` to tiny_architecture."""
    items = ",".join(
        f"{key}:{value}".replace(" ", "")
        for key, value in tiny_architecture(bundle, layers).items()
    )
    return f"backbone.net.architecture={{{items}}}"

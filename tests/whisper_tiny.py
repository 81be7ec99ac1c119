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


def write_ctranslate2_dir(
    state: dict[str, torch.Tensor], n_head: int, folder, seed: int = 0, quantize: str = "float32"
):
    """A CTranslate2 Whisper model dir written by ctranslate2's own WhisperSpec: the encoder
    from `state` (OpenAI names), a one-layer random decoder with an 8-token vocabulary (the
    spec needs one; `encode` never runs it). Float32 unless `quantize` says otherwise."""
    import numpy as np
    from ctranslate2.specs import whisper_spec

    def arr(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().float().numpy().copy()

    layers = len({key.split(".")[1] for key in state if key.startswith("blocks.")})
    width = state["conv1.weight"].shape[0]
    spec = whisper_spec.WhisperSpec(layers, n_head, 1, n_head)
    enc = spec.encoder
    for conv in ("conv1", "conv2"):
        getattr(enc, conv).weight = arr(state[f"{conv}.weight"])
        getattr(enc, conv).bias = arr(state[f"{conv}.bias"])
    enc.position_encodings.encodings = arr(state["positional_embedding"])
    enc.layer_norm.gamma, enc.layer_norm.beta = (
        arr(state["ln_post.weight"]),
        arr(state["ln_post.bias"]),
    )
    for i, layer in enumerate(enc.layer):
        b = f"blocks.{i}."
        attn = layer.self_attention
        attn.layer_norm.gamma = arr(state[b + "attn_ln.weight"])
        attn.layer_norm.beta = arr(state[b + "attn_ln.bias"])
        attn.linear[0].weight = np.concatenate(
            [arr(state[b + f"attn.{p}.weight"]) for p in ("query", "key", "value")]
        )
        zeros = np.zeros(width, dtype=np.float32)
        attn.linear[0].bias = np.concatenate(
            [arr(state[b + "attn.query.bias"]), zeros, arr(state[b + "attn.value.bias"])]
        )
        attn.linear[1].weight, attn.linear[1].bias = (
            arr(state[b + "attn.out.weight"]),
            arr(state[b + "attn.out.bias"]),
        )
        layer.ffn.layer_norm.gamma = arr(state[b + "mlp_ln.weight"])
        layer.ffn.layer_norm.beta = arr(state[b + "mlp_ln.bias"])
        layer.ffn.linear_0.weight, layer.ffn.linear_0.bias = (
            arr(state[b + "mlp.0.weight"]),
            arr(state[b + "mlp.0.bias"]),
        )
        layer.ffn.linear_1.weight, layer.ffn.linear_1.bias = (
            arr(state[b + "mlp.2.weight"]),
            arr(state[b + "mlp.2.bias"]),
        )
    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.02

    dec, vocab = spec.decoder, 8
    dec.embeddings.weight = rand(vocab, width)
    dec.position_encodings.encodings = rand(16, width)
    dec.layer_norm.gamma, dec.layer_norm.beta = np.ones(width, np.float32), rand(width)
    dec.projection.weight = rand(vocab, width)
    dl = dec.layer[0]
    for ln in (dl.self_attention.layer_norm, dl.attention.layer_norm, dl.ffn.layer_norm):
        ln.gamma, ln.beta = np.ones(width, np.float32), rand(width)
    dl.self_attention.linear[0].weight = rand(3 * width, width)
    dl.self_attention.linear[1].weight = rand(width, width)
    dl.attention.linear[0].weight = rand(width, width)
    dl.attention.linear[1].weight = rand(2 * width, width)
    dl.attention.linear[2].weight = rand(width, width)
    dl.ffn.linear_0.weight, dl.ffn.linear_1.weight = rand(4 * width, width), rand(width, 4 * width)
    spec.register_vocabulary([f"<|tok{i}|>" for i in range(vocab)])
    spec.validate()
    spec.optimize(quantization=quantize)
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(str(folder))
    return folder

"""WhisperEncoder layer for layer against openai-whisper's own AudioEncoder."""

from __future__ import annotations

import pytest
import torch

from segser.errors import SegserError
from segser.models.whisper import WHISPER_DIMS, WhisperEncoder, whisper_dims
from tests.whisper_tiny import SMALL_DIMS, openai_encoder, openai_state

pytest.importorskip("whisper", reason="openai-whisper (dev extra) absent")


def openai_layers(encoder: torch.nn.Module, mel: torch.Tensor) -> list[torch.Tensor]:
    """Their input to block 0, each block's output and ln_post's, read with hooks."""
    seen: list[torch.Tensor] = []
    hooks = [encoder.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))]
    hooks += [b.register_forward_hook(lambda m, a, out: seen.append(out)) for b in encoder.blocks]
    with torch.no_grad():
        seen.append(encoder(mel))
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("dims", SMALL_DIMS, ids=["80-mel", "128-mel"])
@pytest.mark.parametrize("mel_frames", [100, 37])
def test_every_layer_equals_openai_audio_encoder(dims: dict, mel_frames: int) -> None:
    state = openai_state(dims)
    ours = WhisperEncoder(whisper_dims("tiny", dims)).eval()
    ours.load_state_dict(state, strict=True)  # OpenAI's names, as they are
    frames = (mel_frames + 1) // 2
    # theirs asserts the input fills its positions: build it for this input's frames
    theirs = openai_encoder(dims, n_ctx=frames)
    theirs.load_state_dict(
        {**state, "positional_embedding": state["positional_embedding"][:frames]}
    )
    mel = torch.randn(2, dims["n_mels"], mel_frames)
    with torch.no_grad():
        layers = ours.layer_outputs(mel)
    expected = openai_layers(theirs, mel)
    assert len(layers) == dims["n_audio_layer"] + 2 == len(expected)
    for index, (got, want) in enumerate(zip(layers, expected, strict=True)):
        assert got.shape == (2, frames, dims["n_audio_state"]), index
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=f"layer {index}")


def test_layer_outputs_stop_at_last_layer() -> None:
    dims = SMALL_DIMS[1]
    encoder = WhisperEncoder(whisper_dims("tiny", dims)).eval()
    mel = torch.randn(1, dims["n_mels"], 20)
    full = encoder.layer_outputs(mel)
    early = encoder.layer_outputs(mel, last_layer=2)
    assert len(early) == 3
    for got, want in zip(early, full[:3], strict=False):
        torch.testing.assert_close(got, want)


def test_published_dims() -> None:
    assert WHISPER_DIMS["tiny.en"].n_audio_state == 384
    assert WHISPER_DIMS["large-v3"].n_mels == 128
    assert WHISPER_DIMS["large-v2"].n_mels == 80
    assert WHISPER_DIMS["medium"].n_audio_layer == 24


def test_too_long_input_is_one_line() -> None:
    encoder = WhisperEncoder(whisper_dims("tiny", {**SMALL_DIMS[0], "n_audio_ctx": 10}))
    with pytest.raises(SegserError, match="longer than its 10 positions"):
        encoder.layer_outputs(torch.randn(1, 80, 22))


def test_unknown_size_and_dims_are_one_line() -> None:
    with pytest.raises(SegserError, match="size='huge'"):
        whisper_dims("huge")
    with pytest.raises(SegserError, match="unknown keys \\['n_layers'\\]"):
        whisper_dims("tiny", {"n_layers": 2})

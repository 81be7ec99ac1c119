"""WhisperBackbone: pooling over valid frames, Whisper's padded 30 s input, clip context,
which blocks train."""

from __future__ import annotations

import pytest
import torch

from segser.errors import SegserError
from segser.models.whisper import WhisperBackbone
from tests.whisper_tiny import SMALL_DIMS

DIMS = SMALL_DIMS[0]  # 2 blocks: layer_outputs has 4 entries


def backbone(**kwargs) -> WhisperBackbone:
    torch.manual_seed(0)
    net = WhisperBackbone("tiny", dims=kwargs.pop("dims", DIMS), **kwargs).eval()
    with torch.no_grad():  # default layer norms are the identity: make them matter
        for name, param in net.named_parameters():
            if "ln" in name:
                param.add_(0.1 * torch.randn_like(param))
    return net


def speech_like(samples: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    return 0.3 * torch.sin(2 * torch.pi * 180 * t * (1 + 0.2 * t)) + 0.02 * torch.randn(
        samples, generator=gen
    )


def test_embedding_shape_and_attributes() -> None:
    net = backbone(embedding_layers=[1, 3])
    out = net(torch.randn(3, 1, 16000) * 0.1)
    assert out.shape == (3, 2 * 64) and net.embedding_dim == 128 and net.layer_dims == (64, 64)
    assert net.input_shape == (1, 16000)
    assert WhisperBackbone.num_layers({"size": "tiny", "dims": DIMS}) == 4
    assert WhisperBackbone.num_layers({"size": "large-v3"}) == 34
    assert "input=segment" in repr(net) and "embedding_layers=[1, 3]" in repr(net)


def test_pooled_layers_are_the_means_of_layer_outputs() -> None:
    net = backbone()
    segments = torch.stack([speech_like(16000), speech_like(16000, seed=1)])
    with torch.no_grad():
        layers = net.encoder.layer_outputs(net.logmel(segments))
        expected = torch.cat([x.mean(dim=1) for x in layers], dim=1)
        torch.testing.assert_close(net(segments[:, None]), expected)


@pytest.mark.parametrize("valid", [9600, 8100, 250, 150])
def test_zero_padded_row_pools_only_its_valid_frames(valid: int) -> None:
    """A last segment zero-padded to 1 s, with its length, embeds as the short segment alone."""
    net = backbone()
    short = speech_like(valid, seed=2)
    padded = torch.stack([speech_like(16000), torch.nn.functional.pad(short, (0, 16000 - valid))])
    with torch.no_grad():
        batch = net(padded, lengths=torch.tensor([16000, valid]))
        alone = net(short[None] if valid >= 201 else padded[1:, :201])
        full = net(padded[:1])
    torch.testing.assert_close(batch[1], alone[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(batch[0], full[0], rtol=0, atol=1e-5)  # the full row: untouched


def test_padded_30s_input_is_whispers_own() -> None:
    """input=padded_30s: Whisper's 30 s zero-padded input (openai-whisper's pad_or_trim and
    log_mel_spectrogram, the encoder at all 1500 positions), pooled over the segment's frames."""
    whisper_audio = pytest.importorskip("whisper.audio", reason="openai-whisper absent")
    net = backbone(input="padded_30s", embedding_layers=[3])
    segment = speech_like(16000)
    with torch.no_grad():
        ours = net(segment[None, None])
        mel = whisper_audio.log_mel_spectrogram(whisper_audio.pad_or_trim(segment))
        frames = net.encoder(mel[None])
        assert frames.shape[1] == 1500
        torch.testing.assert_close(ours[0], frames[0, :50].mean(dim=0), rtol=0, atol=1e-5)
        # a shorter last segment: only its own 25 frames
        half = torch.nn.functional.pad(segment[:8000], (0, 8000))
        short = net(half[None], lengths=torch.tensor([8000]))
        mel = whisper_audio.log_mel_spectrogram(whisper_audio.pad_or_trim(segment[:8000]))
        expected = net.encoder(mel[None])[0, :25].mean(dim=0)
    torch.testing.assert_close(short[0], expected, rtol=0, atol=1e-5)


def test_embed_clip_one_segment_spanning_the_clip_equals_segment_mode() -> None:
    net = backbone()
    clip = speech_like(16000)
    with torch.no_grad():
        pooled = net.embed_clip(clip, torch.tensor([0]), 16000)
        torch.testing.assert_close(pooled, net(clip[None]), rtol=0, atol=1e-5)


def test_embed_clip_pools_each_window_of_the_clip_frames() -> None:
    """Overlapping windows of one encoding: frames start//320 .. ceil(end/320), clipped."""
    net = backbone()
    clip = speech_like(40000)  # 2.5 s: 125 encoder frames
    starts = torch.tensor([0, 8100, 24000, 39000])
    with torch.no_grad():
        frames = net.encoder.layer_outputs(net.logmel(clip[None]))
        pooled = net.embed_clip(clip, starts, 16000)
    for row, (first, end) in enumerate([(0, 50), (25, 76), (75, 125), (121, 125)]):
        expected = torch.cat([x[0, first:end].mean(dim=0) for x in frames])
        torch.testing.assert_close(pooled[row], expected, rtol=0, atol=1e-5)


def test_embed_clip_longer_than_30s_encodes_equal_pieces() -> None:
    """35 s: two pieces of 17.5 s (875 frames each, positions restarting), pooled across."""
    net = backbone(embedding_layers=[3])
    clip = speech_like(560000) * 0.5
    with torch.no_grad():
        pieces = [clip[:280000], clip[280000:]]
        frames = torch.cat([net.encoder(net.logmel(p[None]))[0] for p in pieces])
        pooled = net.embed_clip(clip, torch.tensor([320000, 272000]), 16000)
    torch.testing.assert_close(pooled[0], frames[1000:1050].mean(dim=0), rtol=0, atol=1e-5)
    torch.testing.assert_close(pooled[1], frames[850:900].mean(dim=0), rtol=0, atol=1e-5)


def trainable_blocks(net: WhisperBackbone) -> list[int]:
    return [
        i for i, block in enumerate(net.encoder.blocks)
        if all(p.requires_grad for p in block.parameters())
    ]  # fmt: skip


def test_train_last_layers_freezes_exactly_the_earlier_blocks() -> None:
    dims = SMALL_DIMS[1]  # 3 blocks; layer_outputs indices 0-4
    net = backbone(dims=dims)
    net.train_last_layers(2)
    assert trainable_blocks(net) == [1, 2]
    assert not any(p.requires_grad for p in net.encoder.conv1.parameters())
    assert all(p.requires_grad for p in net.encoder.ln_post.parameters())  # layer 4 is read
    net = backbone(dims=dims, embedding_layers=[0, 2])  # reads blocks 0 and 1 only
    assert trainable_blocks(net) == [0, 1]  # block 2 unused: frozen from the start
    net.train_last_layers(1)
    assert trainable_blocks(net) == [1]
    assert not any(p.requires_grad for p in net.encoder.ln_post.parameters())
    for bad in (0, 3):
        with pytest.raises(SegserError, match=f"trainable_layers={bad}: give 1-2"):
            net.train_last_layers(bad)


def test_bad_settings_are_one_line() -> None:
    with pytest.raises(SegserError, match="input='30s'"):
        WhisperBackbone("tiny", dims=DIMS, input="30s")
    with pytest.raises(SegserError, match="embedding_layers=\\[4\\]: give Whisper layer"):
        WhisperBackbone("tiny", dims=DIMS, embedding_layers=[4])
    with pytest.raises(SegserError, match="up to 30 s"):
        backbone(input="padded_30s")(torch.zeros(1, 480001))
    assert WhisperBackbone.min_samples({}) == 201

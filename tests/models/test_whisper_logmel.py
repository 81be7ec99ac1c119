"""WhisperLogMel against openai-whisper's own log_mel_spectrogram and mel_filters.npz."""

from __future__ import annotations

import pytest
import torch

from segser.data.whisper.logmel import WhisperLogMel, whisper_mel_filters

whisper_audio = pytest.importorskip("whisper.audio", reason="openai-whisper (dev extra) absent")


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_equal_whisper_npz(n_mels: int) -> None:
    ours = whisper_mel_filters(n_mels)
    theirs = whisper_audio.mel_filters("cpu", n_mels)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-8)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_equals_whisper_per_row(n_mels: int) -> None:
    torch.manual_seed(0)
    # rows of very different loudness, so a batch-wide maximum would differ from Whisper's
    t = torch.arange(16000) / 16000
    rows = torch.stack([
        0.5 * torch.sin(2 * torch.pi * 220 * t) + 0.01 * torch.randn(16000),
        1e-3 * torch.randn(16000),
        torch.zeros(16000).index_fill_(0, torch.arange(4000, 4400), 0.8),
    ])  # fmt: skip
    ours = WhisperLogMel(n_mels)(rows)
    assert ours.shape == (3, n_mels, 100)
    for row in range(3):
        theirs = whisper_audio.log_mel_spectrogram(rows[row], n_mels=n_mels)
        torch.testing.assert_close(ours[row], theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_torchaudio_slaney_filters_agree(n_mels: int) -> None:
    """torchaudio's slaney filters are the same triangles (float32, so only to 1e-6)."""
    from torchaudio.functional import melscale_fbanks

    theirs = melscale_fbanks(201, 0.0, 8000.0, n_mels, 16000, norm="slaney", mel_scale="slaney")
    torch.testing.assert_close(whisper_mel_filters(n_mels), theirs.T, rtol=0, atol=1e-6)

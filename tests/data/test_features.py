"""Our torch log-mel patches equal the VGGish reference (torchvggish / Google mel_features)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr
import torch
import torchaudio.functional as AF

from segser.data import segment_patches
from segser.data.logmel.features import LogMelPatcher, LogMelSettings, mel_matrix
from segser.data.signal.segmentation import segment_waveform

vggish_input = pytest.importorskip("torchvggish.vggish_input")
mel_features = pytest.importorskip("torchvggish.mel_features")

SR = 16000
ATOL = 1e-3
EMODB_DIR = Path("/work/shared/data/emodb-2s/wav")


def reference_patches(segments: torch.Tensor) -> torch.Tensor:
    """The reference's first example of each 16 kHz segment, one numpy call per segment."""
    firsts = [
        vggish_input.waveform_to_examples(segment.numpy(), SR, return_tensor=False)[0]
        for segment in segments
    ]
    return torch.from_numpy(np.stack(firsts)).float().unsqueeze(1)


def assert_parity(waveform_16k: torch.Tensor, hop: float = 0.5) -> None:
    segments = segment_waveform(waveform_16k, SR, 1.0, hop)
    ours = LogMelPatcher()(segments)
    expected = reference_patches(segments)
    assert ours.shape == expected.shape == (segments.shape[0], 1, 96, 64)
    torch.testing.assert_close(ours, expected, atol=ATOL, rtol=0)


def test_settings_derive_the_reference_sizes() -> None:
    settings = LogMelSettings()
    assert settings.stft_window_samples == 400
    assert settings.stft_hop_samples == 160
    assert settings.fft_length == 512
    assert settings.num_fft_bins == 257
    assert settings.frames_per_patch == 96
    assert settings.patch_samples == 15600


def test_settings_reject_mel_band_above_nyquist() -> None:
    with pytest.raises(ValueError, match="Nyquist"):
        LogMelSettings(sample_rate_hz=8000, mel_max_hz=7500.0)


def test_mel_matrix_matches_reference() -> None:
    expected = mel_features.spectrogram_to_mel_matrix(
        num_mel_bins=64,
        num_spectrogram_bins=257,
        audio_sample_rate=16000,
        lower_edge_hertz=125.0,
        upper_edge_hertz=7500.0,
    )
    ours = mel_matrix(LogMelSettings())
    assert ours.shape == (257, 64)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)
    assert torch.all(ours[0] == 0)  # DC bin zeroed


def test_parity_on_random_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    assert_parity(torch.rand(round(2.7 * SR), generator=generator) * 2 - 1)


def test_parity_on_quiet_noise() -> None:
    generator = torch.Generator().manual_seed(1)
    assert_parity(torch.randn(round(1.6 * SR), generator=generator) * 1e-3)


@pytest.mark.parametrize("frequency_hz", [60.0, 440.0, 1000.0, 3150.5, 7000.0])
def test_parity_on_pure_tones(frequency_hz: float) -> None:
    t = torch.arange(round(2.2 * SR), dtype=torch.float64) / SR
    assert_parity((0.5 * torch.sin(2 * torch.pi * frequency_hz * t)).float(), hop=1.0)


def test_parity_on_full_scale_chirp() -> None:
    # Loud and quiet bins side by side: float32 FFT round-off alone drifts ~1.3e-3 here.
    t = torch.arange(2 * SR, dtype=torch.float64) / SR
    assert_parity(torch.sin(2 * torch.pi * (100 + 1000 * t) * t).float())


def test_parity_on_silence() -> None:
    assert_parity(torch.zeros(round(1.5 * SR)))
    # log(0 + 0.01) everywhere: a hand-worked value.
    patches = LogMelPatcher()(torch.zeros(2, SR))
    torch.testing.assert_close(patches, torch.full((2, 1, 96, 64), float(np.log(0.01))))


def test_parity_on_real_speech() -> None:
    if not EMODB_DIR.is_dir():
        pytest.skip(f"{EMODB_DIR} not present")
    import soundfile as sf

    for name in sorted(p.name for p in EMODB_DIR.glob("*.wav"))[:4]:
        data, rate = sf.read(EMODB_DIR / name, dtype="float32")
        waveform = AF.resample(torch.from_numpy(data), orig_freq=rate, new_freq=SR)
        assert_parity(waveform)


def test_float64_segments_also_match() -> None:
    generator = torch.Generator().manual_seed(2)
    segments = torch.rand(3, SR, generator=generator, dtype=torch.float64) - 0.5
    ours = LogMelPatcher()(segments)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours.float(), reference_patches(segments), atol=ATOL, rtol=0)


def test_patcher_rejects_segments_shorter_than_a_patch() -> None:
    with pytest.raises(ValueError, match="15600"):
        LogMelPatcher()(torch.zeros(2, 15599))


def test_segment_patches_at_16k_matches_reference_on_sliced_windows() -> None:
    generator = torch.Generator().manual_seed(3)
    waveform = torch.rand(round(2.3 * SR), generator=generator) - 0.5
    patches = segment_patches(waveform.numpy(), SR, window=1.0, hop=0.5)
    assert patches.shape == (5, 1, 96, 64)
    for i in range(5):
        window = np.zeros(SR, dtype=np.float32)
        piece = waveform.numpy()[i * 8000 : i * 8000 + SR]
        window[: len(piece)] = piece
        expected = vggish_input.waveform_to_examples(window, SR, return_tensor=False)[0]
        np.testing.assert_allclose(patches[i, 0].numpy(), expected, atol=ATOL, rtol=0)


def test_segment_patches_resamples_to_16k_first() -> None:
    rate = 22050
    t = torch.arange(round(1.4 * rate), dtype=torch.float64) / rate
    waveform = (0.3 * torch.sin(2 * torch.pi * 523.25 * t)).float()
    patches = segment_patches(waveform, rate, window=1.0, hop=1.0)
    resampled = torch.from_numpy(soxr.resample(waveform.numpy(), rate, SR, quality="HQ"))
    assert patches.shape == (2, 1, 96, 64)
    expected = reference_patches(segment_waveform(resampled, SR, 1.0, 1.0))
    torch.testing.assert_close(patches, expected, atol=ATOL, rtol=0)


def test_segment_patches_returns_float32_for_float64_audio() -> None:
    # soundfile reads float64 by default; the VGGish weights are float32.
    patches = segment_patches(np.full(SR, 0.1), SR, window=1.0, hop=1.0)
    assert patches.dtype == torch.float32
    expected = reference_patches(torch.full((1, SR), 0.1, dtype=torch.float64))
    torch.testing.assert_close(patches, expected, atol=ATOL, rtol=0)


def test_segment_patches_rejects_integer_and_2d_audio() -> None:
    with pytest.raises(ValueError, match="float"):
        segment_patches(np.zeros(SR, dtype=np.int16), SR)
    with pytest.raises(ValueError, match="1-D"):
        segment_patches(np.zeros((2, SR), dtype=np.float32), SR)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_reference() -> None:
    generator = torch.Generator().manual_seed(4)
    waveform = torch.rand(round(2.5 * SR), generator=generator) - 0.5
    on_gpu = segment_patches(waveform.cuda(), SR)
    assert on_gpu.device.type == "cuda"
    expected = reference_patches(segment_waveform(waveform, SR, 1.0, 0.5))
    torch.testing.assert_close(on_gpu.cpu(), expected, atol=ATOL, rtol=0)

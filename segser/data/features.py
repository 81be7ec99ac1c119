"""VGGish log-mel patches in torch, batched over segments, matching Google's mel_features.

The reference (torchvggish.vggish_input / mel_features) is numpy, one clip at a time; this
module computes the same 96x64 patch for a whole batch of segments on CPU or CUDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from segser.data.audio import resample
from segser.data.segmentation import Tail, segment_waveform

# HTK mel scale constants used by the reference (mel_features.hertz_to_mel).
_MEL_BREAK_FREQUENCY_HZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


@dataclass(frozen=True)
class LogMelSettings:
    """The VGGish reference feature parameters (vggish_params), named once with their units."""

    sample_rate_hz: int = 16000
    stft_window_seconds: float = 0.025
    stft_hop_seconds: float = 0.010
    num_mel_bins: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.01
    example_window_seconds: float = 0.96

    def __post_init__(self) -> None:
        nyquist_hz = self.sample_rate_hz / 2
        if not 0.0 <= self.mel_min_hz < self.mel_max_hz <= nyquist_hz:
            raise ValueError(
                f"need 0 <= mel_min_hz < mel_max_hz <= {nyquist_hz} Hz (Nyquist), "
                f"got {self.mel_min_hz} and {self.mel_max_hz}"
            )

    @property
    def stft_window_samples(self) -> int:
        return round(self.sample_rate_hz * self.stft_window_seconds)

    @property
    def stft_hop_samples(self) -> int:
        return round(self.sample_rate_hz * self.stft_hop_seconds)

    @property
    def fft_length(self) -> int:
        """Next power of two at or above the window, as the reference pads each frame."""
        return 2 ** math.ceil(math.log2(self.stft_window_samples))

    @property
    def num_fft_bins(self) -> int:
        return self.fft_length // 2 + 1

    @property
    def frames_per_patch(self) -> int:
        return round(self.example_window_seconds / self.stft_hop_seconds)

    @property
    def patch_samples(self) -> int:
        """Samples a segment needs for one full patch (15600 at the defaults, 0.975 s)."""
        return (self.frames_per_patch - 1) * self.stft_hop_samples + self.stft_window_samples


def hertz_to_mel(frequencies_hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale, as in the reference."""
    return _MEL_HIGH_FREQUENCY_Q * torch.log1p(frequencies_hz / _MEL_BREAK_FREQUENCY_HZ)


def mel_matrix(settings: LogMelSettings) -> torch.Tensor:
    """[num_fft_bins, num_mel_bins] weights built like mel_features.spectrogram_to_mel_matrix.

    Triangles are linear in mel (not Hz, unlike torchaudio) and the DC bin is zeroed.
    """
    f64 = torch.float64
    bins_hz = torch.linspace(0.0, settings.sample_rate_hz / 2, settings.num_fft_bins, dtype=f64)
    bins_mel = hertz_to_mel(bins_hz)[:, None]
    low_mel, high_mel = hertz_to_mel(
        torch.tensor([settings.mel_min_hz, settings.mel_max_hz], dtype=f64)
    )
    edges_mel = torch.linspace(
        float(low_mel), float(high_mel), settings.num_mel_bins + 2, dtype=f64
    )
    lower, center, upper = edges_mel[:-2], edges_mel[1:-1], edges_mel[2:]
    lower_slope = (bins_mel - lower) / (center - lower)
    upper_slope = (upper - bins_mel) / (upper - center)
    weights = torch.minimum(lower_slope, upper_slope).clamp(min=0.0)
    weights[0, :] = 0.0
    return weights


class LogMelPatcher(torch.nn.Module):
    """Segments [S, samples] at 16 kHz -> patches [S, 1, 96, 64]: each segment's first example.

    Frames are cut without centring and each windowed 400-sample frame is zero-padded at its
    end to 512 before the FFT, exactly as the reference does (torch.stft would centre it).
    """

    def __init__(
        self, settings: LogMelSettings | None = None, compute_dtype: torch.dtype = torch.float64
    ) -> None:
        """`compute_dtype` is the FFT's: float64 keeps round-off of loud bins out of quiet ones
        (a full-scale chirp drifts 1.3e-3 from the reference in float32, ~1e-7 in float64)."""
        super().__init__()
        self.settings = settings or LogMelSettings()
        self.compute_dtype = compute_dtype
        window = torch.hann_window(
            self.settings.stft_window_samples, periodic=True, dtype=torch.float64
        )
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_weights", mel_matrix(self.settings), persistent=False)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        s = self.settings
        if segments.ndim != 2 or segments.shape[1] < s.patch_samples:
            raise ValueError(
                f"expected segments [S, >= {s.patch_samples} samples at {s.sample_rate_hz} Hz], "
                f"got shape {tuple(segments.shape)}"
            )
        out_dtype = segments.dtype if segments.is_floating_point() else torch.float32
        fft_dtype = self.compute_dtype
        frames = (
            segments[:, : s.patch_samples]
            .to(fft_dtype)
            .unfold(-1, s.stft_window_samples, s.stft_hop_samples)
        )
        spectrum = torch.fft.rfft(frames * self.window.to(fft_dtype), n=s.fft_length)
        # |X| as a norm over (re, im): same values as .abs(), ~1.7x faster on CPU.
        magnitude = torch.linalg.vector_norm(torch.view_as_real(spectrum), dim=-1)
        # Sums of non-negative terms are well conditioned: float32 suffices after the FFT.
        mel_dtype = torch.promote_types(out_dtype, torch.float32)
        mel = magnitude.to(mel_dtype) @ self.mel_weights.to(mel_dtype)
        return torch.log(mel + s.log_offset).to(out_dtype).unsqueeze(1)


@cache
def _default_patcher(device: torch.device) -> LogMelPatcher:
    return LogMelPatcher().to(device)


def segment_patches(
    waveform: torch.Tensor | np.ndarray,
    sample_rate: int,
    window: float = 1.0,
    hop: float = 0.5,
    tail: Tail = "pad",
) -> torch.Tensor:
    """Patches [num_segments, 1, 96, 64] of a 1-D clip, one per segment (window/hop in seconds).

    The clip is resampled to 16 kHz first; segment i is the zero-padded window starting at i*hop.
    """
    audio = torch.as_tensor(waveform)
    if audio.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise ValueError(f"expected a float waveform in [-1, 1], got dtype {audio.dtype}")
    patcher = _default_patcher(audio.device)
    rate = patcher.settings.sample_rate_hz
    if sample_rate != rate:
        audio = torch.from_numpy(resample(audio.cpu().numpy(), sample_rate, rate)).to(audio.device)
    segments = segment_waveform(audio, rate, window, hop, tail)
    return patcher(segments).float()  # float32 like the reference, even from float64 audio

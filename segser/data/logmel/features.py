"""VGGish log-mel frames and patches in torch, matching Google's mel_features.

The reference (torchvggish.vggish_input / mel_features) is numpy, one clip at a time; this
module computes the same 10 ms log-mel frames (and 96x64 patches of a batch of segments) on CPU
or CUDA. segser.data.logmel.clip_patches cuts a whole clip's patches from its frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


# float32 FFT round-off, relative to a frame's L2 norm, leaks into quiet mel bands next to loud
# ones. Bound on the log error: ROUNDOFF_FACTOR * eps32 * |frame|_2 * sum_k w_kj / (mel_j +
# offset); measured error/bound <= 4 on chirps, full-scale tones, noise and speech.
_FLOAT32_EPS = 2.0**-24
_ROUNDOFF_FACTOR = 5.0
# Frames whose bound exceeds this are recomputed in float64 (parity budget: 1e-3).
_FLOAT32_LOG_TOLERANCE = 2.5e-4


class LogMelPatcher(torch.nn.Module):
    """Segments [S, samples] at 16 kHz -> patches [S, 1, 96, 64]: each segment's first example.

    Frames are cut without centring and each windowed 400-sample frame is zero-padded at its
    end to 512 before the FFT, exactly as the reference does (torch.stft would centre it).
    """

    def __init__(
        self, settings: LogMelSettings | None = None, compute_dtype: torch.dtype = torch.float32
    ) -> None:
        """`compute_dtype` float32: float32 FFTs, with the few frames whose round-off bound
        exceeds the parity budget redone in float64; float64: every frame in float64."""
        super().__init__()
        self.settings = settings or LogMelSettings()
        self.compute_dtype = compute_dtype
        s = self.settings
        window = torch.hann_window(s.stft_window_samples, periodic=True, dtype=torch.float64)
        # Zero-padded to the FFT length: the padding the reference adds after windowing.
        window = F.pad(window, (0, s.fft_length - s.stft_window_samples))
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("window32", window.float(), persistent=False)
        weights = mel_matrix(s)
        # Only FFT bins some mel band weighs (the DC bin and bins above mel_max_hz drop out).
        used = torch.nonzero(weights.sum(dim=1)).flatten()
        self.mel_bins = slice(int(used[0]), int(used[-1]) + 1)
        self.register_buffer("mel_weights32", weights[self.mel_bins].float(), persistent=False)
        roundoff = _ROUNDOFF_FACTOR * _FLOAT32_EPS * weights.sum(dim=0)
        self.register_buffer("band_roundoff", roundoff.float(), persistent=False)

    def _mel(self, frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Mel magnitudes [..., F, 64] of frames [..., F, fft_length], FFT in `dtype`."""
        window = self.window if dtype == torch.float64 else self.window32
        spectrum = torch.fft.rfft(frames.to(dtype) * window)[..., self.mel_bins]
        # |X| from re^2 + im^2: same values as .abs(), ~3x faster on CPU.
        magnitude = (spectrum.real.square() + spectrum.imag.square()).sqrt_()
        # Sums of non-negative terms are well conditioned: float32 suffices after the FFT.
        return magnitude.float() @ self.mel_weights32

    def log_mel_frames(self, samples: torch.Tensor) -> torch.Tensor:
        """Log-mel frames [..., F, 64] of the 10 ms frames of `samples` [..., N] (no centring)."""
        s = self.settings
        padded = F.pad(samples, (0, s.fft_length - s.stft_window_samples))
        frames = padded.unfold(-1, s.fft_length, s.stft_hop_samples)
        if self.compute_dtype == torch.float64:
            return torch.log(self._mel(frames, torch.float64) + s.log_offset)
        mel = self._mel(frames, torch.float32)
        frame_norm = torch.linalg.vector_norm(
            frames[..., : s.stft_window_samples].float(), dim=-1, keepdim=True
        )
        bound = frame_norm * self.band_roundoff / (mel + s.log_offset)
        redo = bound.amax(dim=-1) > _FLOAT32_LOG_TOLERANCE
        if bool(redo.any()):  # loud, narrow-band frames: float64 keeps quiet bands exact
            mel[redo] = self._mel(frames[redo], torch.float64)
        return torch.log(mel + s.log_offset)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        s = self.settings
        if segments.ndim != 2 or segments.shape[1] < s.patch_samples:
            raise ValueError(
                f"expected segments [S, >= {s.patch_samples} samples at {s.sample_rate_hz} Hz], "
                f"got shape {tuple(segments.shape)}"
            )
        out_dtype = segments.dtype if segments.is_floating_point() else torch.float32
        patches = self.log_mel_frames(segments[:, : s.patch_samples])
        return patches.to(out_dtype).unsqueeze(1)

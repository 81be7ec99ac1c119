"""Whisper's log-mel spectrogram in torch, as openai-whisper's `log_mel_spectrogram` computes it.

Rule: a centred STFT (25 ms Hann window, 10 ms hop, reflect padding) of 16 kHz samples, its
power |X|^2 without the last frame, slaney mel filters (80 bins; 128 for large-v3), log10 with
a floor of 1e-10, everything more than 8 (80 dB) below the loudest bin raised to it, and
(x + 4) / 4. Whisper takes the loudest bin of the one input it is given; a batch here takes it
per row, so each segment is scaled as Whisper would scale it alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class WhisperLogMelSettings:
    """openai-whisper's audio.py constants, named once with their units."""

    sample_rate_hz: int = 16000
    stft_window_samples: int = 400  # N_FFT: 25 ms
    stft_hop_samples: int = 160  # HOP_LENGTH: 10 ms, 100 frames per second
    log_floor: float = 1e-10
    dynamic_range_log10: float = 8.0  # 80 dB below the row's maximum
    chunk_samples: int = 480000  # Whisper's 30 s input


SETTINGS = WhisperLogMelSettings()
_SLANEY_LINEAR_HZ_PER_MEL = 200.0 / 3  # linear up to 1 kHz (15 mel), logarithmic above
_SLANEY_LOG_STEP = math.log(6.4) / 27


def _slaney_hz_to_mel(hz: Tensor) -> Tensor:
    log_part = 15.0 + torch.log(hz.clamp(min=1e-10) / 1000.0) / _SLANEY_LOG_STEP
    return torch.where(hz >= 1000.0, log_part, hz / _SLANEY_LINEAR_HZ_PER_MEL)


def _slaney_mel_to_hz(mel: Tensor) -> Tensor:
    log_part = 1000.0 * torch.exp(_SLANEY_LOG_STEP * (mel - 15.0))
    return torch.where(mel >= 15.0, log_part, mel * _SLANEY_LINEAR_HZ_PER_MEL)


def whisper_mel_filters(n_mels: int, settings: WhisperLogMelSettings = SETTINGS) -> Tensor:
    """[n_mels, n_fft // 2 + 1] slaney-normalised triangles on the slaney scale, 0 Hz to
    Nyquist: librosa.filters.mel's defaults, which whisper's mel_filters.npz holds.

    Computed in float64 as librosa does: torchaudio's melscale_fbanks(norm="slaney",
    mel_scale="slaney") gives the same triangles in float32, 2e-7 off, which the log of a
    quiet mel bin turns into 1e-5."""
    f64 = torch.float64
    nyquist_hz = settings.sample_rate_hz / 2
    bins_hz = torch.linspace(0, nyquist_hz, settings.stft_window_samples // 2 + 1, dtype=f64)
    top_mel = float(_slaney_hz_to_mel(torch.tensor(nyquist_hz, dtype=f64)))
    edges_hz = _slaney_mel_to_hz(torch.linspace(0, top_mel, n_mels + 2, dtype=f64))
    widths_hz = edges_hz.diff()
    rising = (bins_hz[None, :] - edges_hz[:-2, None]) / widths_hz[:-1, None]
    falling = (edges_hz[2:, None] - bins_hz[None, :]) / widths_hz[1:, None]
    triangles = torch.minimum(rising, falling).clamp(min=0)
    area_norm = 2.0 / (edges_hz[2:] - edges_hz[:-2])  # slaney: every filter has the same area
    return (triangles * area_norm[:, None]).float()


class WhisperLogMel(nn.Module):
    """Samples [B, S] at 16 kHz -> Whisper's log-mel [B, n_mels, S // 160]."""

    def __init__(self, n_mels: int = 80, settings: WhisperLogMelSettings = SETTINGS) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.settings = settings
        # Not part of any checkpoint: both are fixed functions of the settings.
        window = torch.hann_window(settings.stft_window_samples)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("filters", whisper_mel_filters(n_mels, settings), persistent=False)

    def extra_repr(self) -> str:
        return f"n_mels={self.n_mels}"

    def forward(self, samples: Tensor) -> Tensor:
        s = self.settings
        stft = torch.stft(
            samples.float(),
            s.stft_window_samples,
            s.stft_hop_samples,
            window=self.window,
            return_complex=True,
        )
        power = stft[..., :-1].abs() ** 2
        log_spec = torch.clamp(self.filters @ power, min=s.log_floor).log10()
        row_max = log_spec.amax(dim=(-2, -1), keepdim=True)
        log_spec = torch.maximum(log_spec, row_max - s.dynamic_range_log10)
        return (log_spec + 4.0) / 4.0


def padded_rows_log_mel(logmel: WhisperLogMel, samples: Tensor, lengths: Tensor) -> Tensor:
    """Log-mel [B, n_mels, S // 160] of a zero-padded batch [B, S]: a row shorter than S
    (`lengths`: valid samples) gets the log-mel of its valid samples alone, zero after them,
    since Whisper scales each input by its own loudest bin and reflects at its own end."""
    mel = logmel(samples)
    shortest = logmel.settings.stft_window_samples // 2 + 1  # the centred STFT's minimum
    for row in (lengths < samples.shape[1]).nonzero().flatten().tolist():
        own = logmel(samples[row, : max(int(lengths[row]), shortest)][None])[0]
        mel[row] = F.pad(own, (0, mel.shape[-1] - own.shape[-1]))
    return mel


def clip_pieces(samples: Tensor, frame_samples: int, max_samples: int) -> tuple[Tensor, Tensor]:
    """A clip [S] as equal zero-padded pieces [P, piece] of at most `max_samples`, each a whole
    number of `frame_samples`, so frame k of piece p is clip frame p * piece / frame + k; and
    each piece's valid samples [P]."""
    total = samples.numel()
    count = max(1, -(-total // max_samples))
    piece = -(-total // count // frame_samples) * frame_samples
    piece = min(max_samples, max(piece, frame_samples))
    rows = F.pad(samples, (0, count * piece - total)).view(count, piece)
    lengths = (total - torch.arange(count, device=samples.device) * piece).clamp(max=piece)
    return rows, lengths

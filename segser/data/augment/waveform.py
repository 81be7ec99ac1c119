"""Gain, additive noise and speed perturbation of a 1-D waveform, for training clips only.

Works on any float waveform at any rate, so every input path (log-mel patches, a raw-waveform
backbone) can use it. Each draw comes from the `torch.Generator` passed in, so a pass over the
corpus is reproducible from (seed, pass, clip).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segser.data.signal.audio import resample
from segser.errors import SegserError


@dataclass(frozen=True)
class WaveformAugmentation:
    """Ranges the perturbations are drawn from, uniformly; None switches one off.

    `gain_db`: the clip scaled by 10^(g/20), g in [-gain_db, gain_db]. `noise_snr_db`: white
    noise at an SNR drawn from [low, high] dB. `speed`: a factor from [low, high]; the clip is
    resampled so it plays that much faster (pitch and tempo move together, as in Kaldi's
    speed perturbation of 0.9/1.0/1.1).
    """

    gain_db: float | None = 6.0
    noise_snr_db: tuple[float, float] | None = (15.0, 40.0)
    speed: tuple[float, float] | None = (0.9, 1.1)

    def __post_init__(self) -> None:
        for name in ("noise_snr_db", "speed"):
            span = getattr(self, name)
            if span is not None and (len(span) != 2 or span[0] > span[1]):
                raise SegserError(f"augment.{name}={list(span)}: give [low, high] with low <= high")
        if self.speed is not None and self.speed[0] <= 0:
            raise SegserError(f"augment.speed={list(self.speed)}: factors must be > 0")
        if self.gain_db is not None and self.gain_db < 0:
            raise SegserError(f"augment.gain_db={self.gain_db}: give a range in dB >= 0")

    def __call__(
        self, waveform: torch.Tensor, sample_rate: int, generator: torch.Generator
    ) -> torch.Tensor:
        """A perturbed copy of `waveform` [samples] (float), at the same sample rate."""
        audio = waveform.float()
        if self.speed is not None:
            factor = _uniform(*self.speed, generator)
            # Played `factor` times faster: the samples read as if taken at rate * factor.
            fast = resample(audio.numpy(), round(sample_rate * factor), sample_rate)
            audio = torch.from_numpy(fast)
        if self.gain_db is not None:
            audio = audio * 10 ** (_uniform(-self.gain_db, self.gain_db, generator) / 20)
        if self.noise_snr_db is not None:
            snr_db = _uniform(*self.noise_snr_db, generator)
            signal_power = audio.square().mean().clamp_min(1e-10)
            noise = torch.randn(audio.shape, generator=generator)
            audio = audio + noise * (signal_power / 10 ** (snr_db / 10)).sqrt()
        return audio


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))

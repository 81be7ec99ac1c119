"""Whisper's input: 16 kHz samples; the encoder's own log-mel is computed by the backbone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class WhisperSettings:
    """conf/features/whisper.yaml. The log-mel (80 bins, or 128 for large-v3; n_fft 400, hop
    160, log10, clamp to max - 8, (x + 4) / 4) is the backbone's first step, sized by its
    checkpoint, so that one stored copy of the samples serves every Whisper size and the
    clip-context mode, which encodes a whole clip at once."""

    kind: Literal["whisper"] = "whisper"
    sample_rate_hz: int = 16000

    def __post_init__(self) -> None:
        if self.kind != "whisper":
            raise ValueError(f"kind={self.kind!r}: WhisperSettings are kind=whisper")
        if self.sample_rate_hz != 16000:
            raise ValueError(f"sample_rate_hz={self.sample_rate_hz!r}: Whisper reads 16000 Hz")

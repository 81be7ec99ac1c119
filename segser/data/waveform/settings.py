"""Raw-waveform features: a segment is its mono samples at `sample_rate_hz`, nothing computed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class WaveformSettings:
    """conf/features/waveform.yaml. Any normalisation is the backbone's (its bundle says which),
    so that overlapping segments can share their stored samples."""

    kind: Literal["waveform"] = "waveform"
    sample_rate_hz: int = 16000

    def __post_init__(self) -> None:
        if self.kind != "waveform":
            raise ValueError(f"kind={self.kind!r}: WaveformSettings are kind=waveform")
        if not isinstance(self.sample_rate_hz, int) or self.sample_rate_hz < 1:
            raise ValueError(f"sample_rate_hz={self.sample_rate_hz!r} must be an integer >= 1")

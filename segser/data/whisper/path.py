"""The Whisper path: raw samples stored as the waveform path stores them (one shared cache
entry), read by a backbone that computes Whisper's log-mel itself."""

from __future__ import annotations

from segser.data.waveform.path import WaveformPath
from segser.data.whisper.settings import WhisperSettings


class WhisperPath(WaveformPath):
    """As WaveformPath; a separate kind so that a waveform backbone and a Whisper backbone
    are never handed each other's features (the config check refuses the mix in one line)."""

    kind = "whisper"
    reads = "16 kHz samples for Whisper's own log-mel"
    settings: WhisperSettings

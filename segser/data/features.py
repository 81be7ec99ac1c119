"""The feature paths a backbone reads, and the one rule that picks between them.

`features.kind` names the path (segser.data.feature_path): `logmel` (default; VGGish's log-mel
patches), `waveform` (raw 16 kHz segments, for wav2vec 2.0 / HuBERT / WavLM) or `whisper` (16
kHz samples, Whisper's log-mel computed by its backbone). Configs and checkpoints written
before the waveform path have no `kind`: they are log-mel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segser.data.feature_path import FeaturePath
from segser.data.logmel.features import LogMelSettings
from segser.data.logmel.path import LogMelPath
from segser.data.waveform.path import WaveformPath
from segser.data.waveform.settings import WaveformSettings
from segser.data.whisper.path import WhisperPath
from segser.data.whisper.settings import WhisperSettings

FeatureSettings = LogMelSettings | WaveformSettings | WhisperSettings
PATHS: dict[str, tuple[type[FeaturePath], type]] = {
    "logmel": (LogMelPath, LogMelSettings),
    "waveform": (WaveformPath, WaveformSettings),
    "whisper": (WhisperPath, WhisperSettings),
}


def feature_settings(features: Mapping[str, Any]) -> FeatureSettings:
    """Settings from a features config (or a checkpoint's); TypeError/ValueError if they misfit."""
    values = dict(features)
    kind = values.get("kind", "logmel")
    if kind not in PATHS:
        raise ValueError(f"kind={kind!r} is not a feature path; use one of {', '.join(PATHS)}")
    if kind == "logmel":
        values.pop("kind", None)
    return PATHS[kind][1](**values)


def feature_path(settings: FeatureSettings) -> FeaturePath:
    """The path that computes and stores these settings' features."""
    for path, settings_type in PATHS.values():
        if type(settings) is settings_type:
            return path(settings)
    raise TypeError(f"no feature path for {type(settings).__name__}")

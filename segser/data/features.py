"""The two feature paths a backbone reads, and the one rule that picks between them.

`features.kind` names the path: `logmel` (default; VGGish's log-mel patches, segser.data.logmel)
or `waveform` (raw 16 kHz segments, segser.data.waveform). Configs and checkpoints written
before the waveform path have no `kind`: they are log-mel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segser.data.logmel.features import LogMelSettings
from segser.data.waveform.settings import WaveformSettings

FeatureSettings = LogMelSettings | WaveformSettings


def feature_settings(features: Mapping[str, Any]) -> FeatureSettings:
    """Settings from a features config (or a checkpoint's); TypeError/ValueError if they misfit."""
    values = dict(features)
    kind = values.get("kind", "logmel")
    if kind == "waveform":
        return WaveformSettings(**values)
    if kind != "logmel":
        raise ValueError(f"kind={kind!r} is not a feature path; use logmel or waveform")
    values.pop("kind", None)
    return LogMelSettings(**values)

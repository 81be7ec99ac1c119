"""Shared fixtures: tiny corpora written on the fly, so no test needs a download."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segser.data.corpora.clips import Clip

SHARED_EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb-2s" / "wav"
CLASSES = ["angry", "happy", "sad", "neutral"]


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    """Write a tone of a given length and pitch as a 16-bit wav."""

    def write(name: str, seconds: float, hz: float = 220.0, rate: int = 16000) -> Path:
        t = np.arange(round(seconds * rate)) / rate
        path = tmp_path / "wav" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), rate, subtype="PCM_16")
        return path

    return write


@pytest.fixture
def tone_clips(write_wav: Callable[..., Path]) -> list[Clip]:
    """40 short clips, 10 per class, 2 sessions x 2 speakers; pitch tells the class."""
    clips = []
    for i in range(40):
        label = CLASSES[i % 4]
        session = f"Ses0{1 + i % 2}"
        speaker = session + "FM"[(i // 2) % 2]
        seconds = 0.6 + 0.35 * (i % 7)
        path = write_wav(f"clip{i:03d}", seconds, hz=150.0 * (1 + CLASSES.index(label)))
        clips.append(Clip(f"clip{i:03d}", path, label, speaker, session, seconds))
    return clips

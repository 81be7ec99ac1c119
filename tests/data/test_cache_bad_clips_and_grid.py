"""Both segment caches and bad clips (skip / fail), and the waveform cache's hop grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from segser.data.cache import patches as patch_module
from segser.data.cache import waveforms as waveform_module
from segser.data.cache.waveforms import WaveformCache
from segser.data.corpora.clips import Clip
from segser.data.features import feature_path
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.audio import load_audio
from segser.data.signal.segmentation import SegmentationSettings, segment_waveform
from segser.data.waveform.settings import WaveformSettings
from segser.data.whisper.settings import WhisperSettings
from segser.errors import BadClipError, SegserError

SEGMENTATION = SegmentationSettings(1.0, 0.5)
FEATURES = {
    "waveform": WaveformSettings(),
    "logmel": LogMelSettings(),
    "whisper": WhisperSettings(),
}
MODULES = {"waveform": waveform_module, "logmel": patch_module, "whisper": waveform_module}


def build_or_open_segments(clips, cache_dir, segmentation, settings, on_bad_clip="fail"):
    """The segment cache as the datamodule opens it: through its feature path."""
    return feature_path(settings).open_cache(clips, cache_dir, segmentation, on_bad_clip)


def _noise_clips(folder: Path, seconds: list[float], rate: int = 16000) -> list[Clip]:
    """Clips of white noise (every sample differs, so a shifted window shows)."""
    rng = np.random.default_rng(len(seconds))
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, length in enumerate(seconds):
        path = folder / f"n{i}.wav"
        sf.write(path, 0.3 * rng.standard_normal(round(length * rate)), rate, subtype="FLOAT")
        clips.append(Clip(f"n{i}", path, "angry", f"s{i % 2}", "S1", "x"))
    return clips


def _with_a_bad_clip(tmp_path: Path) -> list[Clip]:
    clips = _noise_clips(tmp_path / "wav", [1.2, 0.7, 2.1, 1.6])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    return [*clips[:3], Clip("broken", broken, "sad", "s9", "S1", "x"), clips[3]]


@pytest.mark.parametrize("kind", list(FEATURES))
def test_an_entry_built_under_skip_is_never_served_to_fail(kind: str, tmp_path: Path) -> None:
    clips = _with_a_bad_clip(tmp_path)
    build = (clips, tmp_path / "cache", SEGMENTATION, FEATURES[kind])
    skipped = build_or_open_segments(*build, on_bad_clip="skip")
    assert list(skipped.skipped) == ["broken"] and skipped.kept_clip_indices == [0, 1, 2, 4]
    with pytest.raises(SegserError, match=r"built with data\.on_bad_clip=skip .*\(broken;") as no:
        build_or_open_segments(*build, on_bad_clip="fail")
    assert "\n" not in str(no.value) and str(skipped.directory) in str(no.value)
    # the same command under skip still opens it (no rebuild: the same entry)
    again = build_or_open_segments(*build, on_bad_clip="skip")
    assert again.directory == skipped.directory and list(again.skipped) == ["broken"]


@pytest.mark.parametrize("kind", list(FEATURES))
def test_an_entry_built_under_fail_serves_skip_without_rebuilding(kind: str, tmp_path) -> None:
    clips = _noise_clips(tmp_path / "wav", [1.2, 0.7])
    build = (clips, tmp_path / "cache", SEGMENTATION, FEATURES[kind])
    clean = build_or_open_segments(*build, on_bad_clip="fail")
    again = build_or_open_segments(*build, on_bad_clip="skip")
    assert again.directory == clean.directory and not again.skipped


@pytest.mark.parametrize("kind", list(FEATURES))
def test_a_build_stopped_by_a_bad_clip_keeps_the_clips_before_it(
    kind: str, tmp_path: Path, monkeypatch
) -> None:
    """fail stops at clip 3 (broken); the same command under skip loads clips 3 and 4 only."""
    clips = _with_a_bad_clip(tmp_path)
    loaded: list[str] = []

    def counting_load(path, rate=16000):
        loaded.append(Path(path).name)
        return load_audio(path, rate)

    monkeypatch.setattr(MODULES[kind], "load_audio", counting_load)
    build = (clips, tmp_path / "cache", SEGMENTATION, FEATURES[kind])
    with pytest.raises(BadClipError, match=r"broken\.wav"):
        build_or_open_segments(*build, on_bad_clip="fail")
    assert loaded[:4] == ["n0.wav", "n1.wav", "n2.wav", "broken.wav"]
    loaded.clear()
    resumed = build_or_open_segments(*build, on_bad_clip="skip")
    assert loaded == ["broken.wav", "n3.wav"]  # clips 0-2 were kept, not computed again
    assert list(resumed.skipped) == ["broken"] and resumed.kept_clip_indices == [0, 1, 2, 4]
    fresh = build_or_open_segments(clips, tmp_path / "fresh", *build[2:], on_bad_clip="skip")
    np.testing.assert_array_equal(resumed.row_clip, fresh.row_clip)
    every = np.arange(len(fresh))
    np.testing.assert_array_equal(resumed.rows().take(every), fresh.rows().take(every))


@pytest.mark.parametrize(
    ("window", "hop"), [(0.5, 0.3), (1.0, 0.3), (1.0, 0.75), (0.25, 0.5), (0.3, 0.7)]
)
@pytest.mark.parametrize("tail", ["pad", "stop"])
def test_later_clips_stay_on_the_hop_grid(window: float, hop: float, tail: str, tmp_path) -> None:
    """A window that is no multiple of the hop: every clip's span is padded to whole hops, so
    the segments of the second, third ... clip are still theirs, sample for sample."""
    clips = _noise_clips(tmp_path / "wav", [1.13, 0.41, 2.07, 0.9, 1.55])
    settings = SegmentationSettings(window, hop, tail)
    built = build_or_open_segments(clips, tmp_path / "c", settings, WaveformSettings())
    cache = WaveformCache.open(built.directory)  # as a later run opens it
    hop_samples = round(hop * 16000)
    assert len(cache.samples) % hop_samples == 0
    rows = cache.segments()
    for index, clip in enumerate(clips):
        expected = segment_waveform(load_audio(clip.path, 16000), 16000, window, hop, tail)
        mine = np.flatnonzero(cache.row_clip == index)
        assert list(cache.row_segment[mine]) == list(range(len(expected)))
        np.testing.assert_array_equal(rows[mine], expected.numpy(), err_msg=clip.clip_id)
        served = cache.rows().take(mine)
        assert torch.equal(torch.from_numpy(served), expected)

"""Cache keys: every input the cached numbers depend on changes the key, and nothing else does.

A key that misses an input serves stale patches or embeddings without any error, so each input
is changed alone here: the clips' files (path, id, size, mtime, order), every segmentation and
feature setting, the resampler and the format version; and, for frozen embeddings, the
backbone's own settings (YAMNet's pooled layers) beside its weights.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from segser.data.cache import patches as patch_cache
from segser.data.cache.embeddings import build_or_open_embeddings, weights_sha256
from segser.data.cache.patches import build_or_open_cache, cache_key
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal import audio
from segser.data.signal.segmentation import SegmentationSettings
from segser.models.yamnet import YAMNet

SEGMENTATION = SegmentationSettings(1.0, 0.5, "pad")
FEATURES = LogMelSettings()
# Another valid value for every feature setting (22.05 kHz keeps mel_max_hz below Nyquist).
OTHER_FEATURES = {
    "sample_rate_hz": 22050,
    "stft_window_seconds": 0.032,
    "stft_hop_seconds": 0.02,
    "num_mel_bins": 32,
    "mel_min_hz": 100.0,
    "mel_max_hz": 7000.0,
    "log_offset": 0.001,
    "example_window_seconds": 0.48,
}
OTHER_SEGMENTATION = {"window_seconds": 1.2, "hop_seconds": 1.0, "tail": "stop"}


def write_clip(folder: Path, name: str, seconds: float = 1.3, hz: float = 220.0) -> Clip:
    rate = 16000
    path = folder / f"{name}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), rate, subtype="PCM_16")
    return Clip(name, path, "sad", "s1", "Ses01", seconds)


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    return [write_clip(tmp_path / "wav", "a", 1.3, 220.0), write_clip(tmp_path / "wav", "b", 2.1)]


def test_every_setting_is_part_of_the_key() -> None:
    assert set(OTHER_FEATURES) == {f.name for f in dataclasses.fields(LogMelSettings)}
    assert set(OTHER_SEGMENTATION) == {f.name for f in dataclasses.fields(SegmentationSettings)}


def test_the_same_inputs_give_the_same_key(clips: list[Clip]) -> None:
    again = [Clip(c.clip_id, Path(str(c.path)), c.label, c.speaker, c.session, 9.0) for c in clips]
    assert cache_key(clips, SEGMENTATION, FEATURES) == cache_key(again, SEGMENTATION, FEATURES)
    assert cache_key(clips, SegmentationSettings(), LogMelSettings()) == cache_key(
        clips, SEGMENTATION, FEATURES
    )


@pytest.mark.parametrize(("name", "value"), OTHER_SEGMENTATION.items())
def test_each_segmentation_setting_changes_the_key(clips: list[Clip], name: str, value) -> None:
    other = dataclasses.replace(SEGMENTATION, **{name: value})
    assert cache_key(clips, other, FEATURES) != cache_key(clips, SEGMENTATION, FEATURES)


@pytest.mark.parametrize(("name", "value"), OTHER_FEATURES.items())
def test_each_feature_setting_changes_the_key(clips: list[Clip], name: str, value) -> None:
    other = dataclasses.replace(FEATURES, **{name: value})
    assert cache_key(clips, SEGMENTATION, other) != cache_key(clips, SEGMENTATION, FEATURES)


def test_the_resampler_and_the_format_version_change_the_key(
    clips: list[Clip], monkeypatch
) -> None:
    before = cache_key(clips, SEGMENTATION, FEATURES)
    # The id names both things that decide the resampled samples: soxr's version and quality.
    assert soxr.__version__ in audio.RESAMPLER_ID and audio.RESAMPLER_QUALITY in audio.RESAMPLER_ID
    monkeypatch.setattr(patch_cache, "RESAMPLER_ID", audio.RESAMPLER_ID + "-other")
    assert cache_key(clips, SEGMENTATION, FEATURES) != before
    monkeypatch.undo()
    monkeypatch.setattr(patch_cache, "CACHE_FORMAT_VERSION", patch_cache.CACHE_FORMAT_VERSION + 1)
    assert cache_key(clips, SEGMENTATION, FEATURES) != before


def test_each_clip_file_fact_changes_the_key(clips: list[Clip], tmp_path: Path) -> None:
    before = cache_key(clips, SEGMENTATION, FEATURES)
    first = clips[0]
    stat = first.path.stat()

    # the same bytes and mtime under another path
    moved = tmp_path / "elsewhere" / first.path.name
    moved.parent.mkdir()
    shutil.copy2(first.path, moved)
    assert moved.stat().st_mtime_ns == stat.st_mtime_ns
    elsewhere = [dataclasses.replace(first, path=moved), clips[1]]
    assert cache_key(elsewhere, SEGMENTATION, FEATURES) != before

    # another clip id for the same file
    renamed = [dataclasses.replace(first, clip_id="a2"), clips[1]]
    assert cache_key(renamed, SEGMENTATION, FEATURES) != before

    # the clip table in another order (rows point into it by index)
    assert cache_key(clips[::-1], SEGMENTATION, FEATURES) != before

    # a longer file with the old mtime (a copy tool that keeps times)
    with open(first.path, "ab") as handle:
        handle.write(b"\0\0")
    os.utime(first.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    grown = cache_key(clips, SEGMENTATION, FEATURES)
    assert grown != before

    # the same size, a newer mtime (the file rewritten in place)
    os.utime(first.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache_key(clips, SEGMENTATION, FEATURES) not in (before, grown)


@pytest.fixture
def patches(clips: list[Clip], tmp_path: Path):
    return build_or_open_cache(clips, tmp_path / "cache", SEGMENTATION, FEATURES)


def seeded_yamnet(layers: list[int]) -> YAMNet:
    torch.manual_seed(0)
    return YAMNet(embedding_layers=layers).eval()


def test_other_yamnet_layers_never_read_each_others_embeddings(patches) -> None:
    """Same weights, other pooled layers: another entry, holding that backbone's embeddings."""
    last, middle = seeded_yamnet([13]), seeded_yamnet([6, 7])
    assert weights_sha256(last) == weights_sha256(middle)  # only the settings differ
    first = build_or_open_embeddings(patches, last)
    second = build_or_open_embeddings(patches, middle)
    assert second.directory != first.directory
    rows = torch.from_numpy(np.array(patches.patches)).unsqueeze(1)
    with torch.no_grad():
        for entry, backbone in ((first, last), (second, middle)):
            np.testing.assert_allclose(entry.embeddings, backbone(rows).numpy(), atol=1e-4)
    assert first.embeddings.shape[1] == 1024 and second.embeddings.shape[1] == 512 + 512
    # the same layers given in another order pool the same embedding: the same entry
    again = build_or_open_embeddings(patches, seeded_yamnet([7, 6]))
    assert again.directory == second.directory

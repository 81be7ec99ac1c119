from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from segser.data import cache as cache_module
from segser.data.cache import build_or_open_cache
from segser.data.clips import Clip
from segser.data.features import LogMelSettings
from segser.data.segmentation import SegmentationSettings
from segser.errors import BadClipError

SEGMENTATION = SegmentationSettings(window_seconds=1.0, hop_seconds=0.5)
FEATURES = LogMelSettings()


def test_cache_matches_direct_patches_and_is_memory_mapped(tone_clips, tmp_path: Path) -> None:
    from segser.data import segment_patches
    from segser.data.audio import load_audio

    cache = build_or_open_cache(tone_clips, tmp_path / "cache", SEGMENTATION, FEATURES)
    assert isinstance(cache.patches, np.memmap)
    for index in (0, 7, 39):
        clip = tone_clips[index]
        expected = segment_patches(load_audio(clip.path), 16000, window=1.0, hop=0.5)[:, 0]
        rows = cache.rows_for_clips([index])
        assert len(rows) == len(expected)
        np.testing.assert_allclose(cache.patches[rows], expected.numpy(), atol=1e-5)
        assert cache.row_segment[rows].tolist() == list(range(len(expected)))


def test_second_open_reuses_the_cache(tone_clips, tmp_path: Path, monkeypatch) -> None:
    first = build_or_open_cache(tone_clips, tmp_path / "cache", SEGMENTATION, FEATURES)

    def must_not_compute(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(cache_module, "_patches_for_clip", must_not_compute)
    second = build_or_open_cache(tone_clips, tmp_path / "cache", SEGMENTATION, FEATURES)
    assert second.directory == first.directory
    np.testing.assert_array_equal(second.patches, first.patches)


def test_settings_change_the_key(tone_clips, tmp_path: Path) -> None:
    overlap = build_or_open_cache(tone_clips[:4], tmp_path, SEGMENTATION, FEATURES)
    nonoverlap = build_or_open_cache(
        tone_clips[:4], tmp_path, SegmentationSettings(1.0, 1.0), FEATURES
    )
    assert overlap.directory != nonoverlap.directory
    assert len(nonoverlap.patches) < len(overlap.patches)


BUILD_SLOWLY = """
import sys, time
from pathlib import Path
from segser.data import cache
from segser.data.clips import Clip
from segser.data.features import LogMelSettings
from segser.data.segmentation import SegmentationSettings
cache.PROGRESS_EVERY_CLIPS = 2
compute = cache._patches_for_clip
def slow(*args):
    time.sleep(0.15)
    return compute(*args)
cache._patches_for_clip = slow
clips = [Clip(p.stem, p, "angry", "s", "s", 1.0) for p in sorted(Path(sys.argv[1]).glob("*.wav"))]
settings = SegmentationSettings(1.0, 0.5)
cache.build_or_open_cache(clips, sys.argv[2], settings, LogMelSettings())
"""


def test_a_killed_build_resumes_and_gives_the_same_cache(tone_clips, tmp_path: Path) -> None:
    wav_dir = tone_clips[0].path.parent
    clips = [Clip(p.stem, p, "angry", "s", "s", 1.0) for p in sorted(wav_dir.glob("*.wav"))]
    cache_dir = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", BUILD_SLOWLY, str(wav_dir), str(cache_dir)])
    deadline = time.time() + 60
    progress = None
    while time.time() < deadline:
        found = list(cache_dir.glob("*.partial/progress.json"))
        if found and json.loads(found[0].read_text())["clips_done"] >= 6:
            progress = found[0]
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert progress is not None, "the build never checkpointed"
    done_before = json.loads(progress.read_text())["clips_done"]
    assert done_before < len(clips)

    computed = []
    compute = cache_module._patches_for_clip

    def counting(clip, *args):
        computed.append(clip.clip_id)
        return compute(clip, *args)

    cache_module._patches_for_clip = counting
    try:
        resumed = build_or_open_cache(clips, cache_dir, SEGMENTATION, FEATURES)
    finally:
        cache_module._patches_for_clip = compute
    assert len(computed) == len(clips) - done_before  # finished clips were not redone
    fresh = build_or_open_cache(clips, tmp_path / "fresh", SEGMENTATION, FEATURES)
    np.testing.assert_array_equal(resumed.row_clip, fresh.row_clip)
    np.testing.assert_allclose(resumed.patches, fresh.patches, atol=1e-6)
    assert not list(cache_dir.glob("*.partial"))


def test_bad_clip_fails_or_is_skipped(tone_clips, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    clips = [*tone_clips[:3], Clip("broken", broken, "sad", "s", "s", 1.0)]
    with pytest.raises(BadClipError, match=r"broken\.wav"):
        build_or_open_cache(clips, tmp_path / "c", SEGMENTATION, FEATURES, on_bad_clip="fail")
    cache = build_or_open_cache(clips, tmp_path / "c", SEGMENTATION, FEATURES, on_bad_clip="skip")
    assert list(cache.skipped) == ["broken"]
    assert cache.kept_clip_indices == [0, 1, 2]

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

from segser.data.cache import patches as cache_module
from segser.data.cache.patches import build_or_open_cache
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings
from segser.errors import BadClipError

SEGMENTATION = SegmentationSettings(window_seconds=1.0, hop_seconds=0.5)
FEATURES = LogMelSettings()


def test_cache_matches_direct_patches_and_is_memory_mapped(tone_clips, tmp_path: Path) -> None:
    from segser.data import segment_patches
    from segser.data.signal.audio import load_audio

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

    monkeypatch.setattr(cache_module, "_patches_for_clips", must_not_compute)
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
from segser.data.cache import patches as cache
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings
cache.PROGRESS_EVERY_CLIPS = 2
cache.CLIPS_PER_GROUP = 2
compute = cache._patches_for_clips
def slow(*args):
    time.sleep(0.15)
    return compute(*args)
cache._patches_for_clips = slow
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
    compute = cache_module._patches_for_clips

    def counting(group, *args):
        found = compute(group, *args)
        computed.extend(clip.clip_id for clip in group[: len(found)])
        return found

    cache_module._patches_for_clips = counting
    try:
        resumed = build_or_open_cache(clips, cache_dir, SEGMENTATION, FEATURES)
    finally:
        cache_module._patches_for_clips = compute
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


def _direct_patches(clip: Clip, segmentation: SegmentationSettings = SEGMENTATION) -> np.ndarray:
    """Independent reference: the clip's patches computed without the cache."""
    from segser.data import segment_patches
    from segser.data.signal.audio import load_audio

    window, hop, tail = segmentation.window_seconds, segmentation.hop_seconds, segmentation.tail
    patches = segment_patches(load_audio(clip.path), 16000, window=window, hop=hop, tail=tail)
    return patches[:, 0].numpy()


def test_stop_tail_caches_the_stop_rule_segments(tone_clips, tmp_path: Path) -> None:
    stop = SegmentationSettings(1.0, 0.5, tail="stop")
    cache = build_or_open_cache(tone_clips[:8], tmp_path, stop, FEATURES)
    pad = build_or_open_cache(tone_clips[:8], tmp_path, SEGMENTATION, FEATURES)
    assert cache.directory != pad.directory
    for index, clip in enumerate(tone_clips[:8]):
        rows = cache.rows_for_clips([index])
        np.testing.assert_allclose(cache.patches[rows], _direct_patches(clip, stop), atol=1e-5)
    assert len(cache.patches) < len(pad.patches)


def test_rewritten_clip_of_the_same_size_is_recomputed(tone_clips, tmp_path: Path) -> None:
    import soundfile as sf

    clips = tone_clips[:4]
    first = build_or_open_cache(clips, tmp_path / "cache", SEGMENTATION, FEATURES)
    path = clips[2].path
    before = path.stat()
    audio, rate = sf.read(path, dtype="int16")
    sf.write(path, audio[::-1].copy(), rate, subtype="PCM_16")  # other audio, same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # coarse clocks
    assert path.stat().st_size == before.st_size
    second = build_or_open_cache(clips, tmp_path / "cache", SEGMENTATION, FEATURES)
    assert second.directory != first.directory
    np.testing.assert_allclose(
        second.patches[second.rows_for_clips([2])], _direct_patches(clips[2]), atol=1e-5
    )
    assert not np.allclose(
        second.patches[second.rows_for_clips([2])], first.patches[first.rows_for_clips([2])]
    )


def _truncate_patches(entry: Path) -> None:
    with open(entry / "patches.f32", "r+b") as handle:
        handle.truncate(entry.joinpath("patches.f32").stat().st_size - 100)


def _extend_patches(entry: Path) -> None:
    with open(entry / "patches.f32", "ab") as handle:
        handle.write(b"\0" * 4 * 96 * 64)


def _short_index(entry: Path) -> None:
    np.savez(entry / "index.npz", row_clip=np.zeros(3, np.int64), row_segment=np.zeros(3, np.int32))


BREAKAGES = {
    "truncated patches": _truncate_patches,
    "patches too long": _extend_patches,
    "patches missing": lambda entry: (entry / "patches.f32").unlink(),
    "meta.json not JSON": lambda entry: (entry / "meta.json").write_text('{"rows": 4'),
    "meta.json without rows": lambda entry: (entry / "meta.json").write_text('{"frames": 96}'),
    "meta.json missing": lambda entry: (entry / "meta.json").unlink(),
    "index.npz not a zip": lambda entry: (entry / "index.npz").write_bytes(b"PK\x03\x04junk"),
    "index.npz too short": _short_index,
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_entry_is_rebuilt_never_read(
    breakage: str, tone_clips, tmp_path: Path, caplog
) -> None:
    clips = tone_clips[:4]
    first = build_or_open_cache(clips, tmp_path / "cache", SEGMENTATION, FEATURES)
    expected = np.array(first.patches)
    BREAKAGES[breakage](first.directory)
    del first
    with caplog.at_level("WARNING", logger="segser"):
        again = build_or_open_cache(clips, tmp_path / "cache", SEGMENTATION, FEATURES)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "rebuilding" in warnings[0], warnings
    np.testing.assert_array_equal(again.patches, expected)
    assert again.row_clip.tolist() == sorted(again.row_clip.tolist())


def test_a_broken_build_checkpoint_starts_the_build_over(tone_clips, tmp_path: Path) -> None:
    clips = tone_clips[:4]
    reference = build_or_open_cache(clips, tmp_path / "fresh", SEGMENTATION, FEATURES)
    key = cache_module.cache_key(clips, SEGMENTATION, FEATURES)
    partial = tmp_path / "killed" / f"{key}.partial"
    partial.mkdir(parents=True)
    (partial / "progress.json").write_text('{"clips_done": 3, "row_clip": [0, 0')  # cut off
    (partial / "patches.f32").write_bytes(b"\1" * 1000)
    resumed = build_or_open_cache(clips, tmp_path / "killed", SEGMENTATION, FEATURES)
    np.testing.assert_array_equal(resumed.row_clip, reference.row_clip)
    np.testing.assert_array_equal(resumed.patches, reference.patches)


def test_a_cache_built_with_skip_is_refused_under_fail(tone_clips, tmp_path: Path) -> None:
    from segser.errors import SegserError

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    clips = [*tone_clips[:3], Clip("broken", broken, "sad", "s", "s", 1.0)]
    build_or_open_cache(clips, tmp_path / "c", SEGMENTATION, FEATURES, on_bad_clip="skip")
    with pytest.raises(SegserError, match=r"on_bad_clip=skip .*\(broken;") as refused:
        build_or_open_cache(clips, tmp_path / "c", SEGMENTATION, FEATURES, on_bad_clip="fail")
    assert "\n" not in str(refused.value)


BUILD_TOGETHER = """
import os, sys, time
from pathlib import Path
from segser.data.cache import patches as cache
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings
compute = cache._patches_for_clips
def slow(*args):
    time.sleep(0.05)
    return compute(*args)
cache._patches_for_clips = slow
barrier = Path(sys.argv[3])
(barrier / str(os.getpid())).touch()
while len(list(barrier.iterdir())) < 2:  # start both builds at the same moment
    time.sleep(0.001)
wavs = sorted(Path(sys.argv[1]).glob("*.wav"))[:12]
clips = [Clip(p.stem, p, "angry", "s", "s", 1.0) for p in wavs]
entry = cache.build_or_open_cache(clips, sys.argv[2], SegmentationSettings(1.0, 0.5),
                                  LogMelSettings())
print(entry.directory, len(entry.patches), float(entry.patches.sum()))
"""


@pytest.mark.parametrize(
    "start", [pytest.param("empty", marks=pytest.mark.slow), "broken entry"]
)  # from empty it also held before the checks; a broken entry needs them
def test_two_processes_building_at_once_both_succeed(start: str, tone_clips, tmp_path) -> None:
    wav_dir = tone_clips[0].path.parent
    wavs = sorted(wav_dir.glob("*.wav"))[:12]
    clips = [Clip(p.stem, p, "angry", "s", "s", 1.0) for p in wavs]
    reference = build_or_open_cache(clips, tmp_path / "reference", SEGMENTATION, FEATURES)
    cache_dir = tmp_path / "shared"
    if start == "broken entry":
        build_or_open_cache(clips, cache_dir, SEGMENTATION, FEATURES)
        _truncate_patches(next(p for p in cache_dir.iterdir() if p.is_dir()))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_TOGETHER, str(wav_dir), str(cache_dir), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
    printed = {out.splitlines()[-1].split()[0] for out, _ in outputs}  # after the progress bar
    assert printed == {str(cache_dir / reference.directory.name)}
    rows = {int(out.splitlines()[-1].split()[1]) for out, _ in outputs}
    assert rows == {len(reference.patches)}
    assert sorted(p.name for p in cache_dir.iterdir() if p.is_dir()) == [reference.directory.name]
    again = build_or_open_cache(clips, cache_dir, SEGMENTATION, FEATURES)
    np.testing.assert_array_equal(again.patches, reference.patches)


def test_groups_stop_at_group_seconds_and_give_each_clips_own_patches(
    tone_clips, tmp_path: Path, monkeypatch
) -> None:
    # Clips of 0.6-2.7 s: a 2 s budget closes a group after one to four clips.
    monkeypatch.setattr(cache_module, "GROUP_SECONDS", 2.0)
    sizes, compute = [], cache_module._patches_for_clips

    def recording(group, *args):
        found = compute(group, *args)
        sizes.append(sum(clip.duration_seconds for clip in group[: len(found) - 1]))
        return found

    monkeypatch.setattr(cache_module, "_patches_for_clips", recording)
    cache = build_or_open_cache(tone_clips[:12], tmp_path / "c", SEGMENTATION, FEATURES)
    assert len(sizes) > 1 and max(sizes) < 2.0  # audio before a group's last clip < budget
    for index, clip in enumerate(tone_clips[:12]):
        rows = cache.rows_for_clips([index])
        np.testing.assert_allclose(cache.patches[rows], _direct_patches(clip), atol=1e-5)


@pytest.mark.parametrize("tail", ["pad", "stop"])
def test_cached_segment_counts_follow_the_documented_rule_around_hop_multiples(
    tail: str, tmp_path: Path
) -> None:
    """Clips a sample short of, at and just past 1 s + k * 0.5 s: the cache holds exactly the
    segments the rule of docs/paper-differences.md gives (walked window by window here), numbered
    0, 1, ..."""
    import soundfile as sf

    rate, window, hop = 16000, 16000, 8000
    clips, expected = [], []
    for k in (0, 1, 4):
        for extra in (-1, 0, 1):
            samples = window + k * hop + extra
            path = tmp_path / "wav" / f"k{k}_{extra + 1}.wav"
            path.parent.mkdir(exist_ok=True)
            tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(samples) / rate)
            sf.write(path, tone, rate, subtype="PCM_16")
            clips.append(Clip(path.stem, path, "sad", "s", "s", samples / rate))
            count, start = 0, 0
            while start < samples:
                count += 1
                if tail == "stop" and start + window >= samples:
                    break
                start += hop
            expected.append(count)
    cache = build_or_open_cache(
        clips, tmp_path / "c", SegmentationSettings(1.0, 0.5, tail), FEATURES
    )
    for index, count in enumerate(expected):
        rows = cache.rows_for_clips([index])
        assert cache.row_segment[rows].tolist() == list(range(count)), clips[index].clip_id

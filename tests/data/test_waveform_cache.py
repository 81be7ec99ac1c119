"""Raw-waveform segments: segment_waveform's segments, each clip's samples stored once."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from segser.data.cache.waveforms import WaveformCache, build_or_open_waveforms
from segser.data.corpora.clips import Clip
from segser.data.datamodule import SegmentDataset
from segser.data.signal.audio import load_audio
from segser.data.signal.segmentation import SegmentationSettings, segment_waveform
from segser.data.waveform.segments import clip_segments, window_views
from segser.data.waveform.settings import WaveformSettings


@pytest.mark.parametrize("tail", ["pad", "stop"])
@pytest.mark.parametrize("samples", [1, 7999, 16000, 16001, 37333])
@pytest.mark.parametrize(("window", "hop"), [(1.0, 0.5), (1.0, 1.0), (0.5, 0.3), (0.25, 0.5)])
def test_clip_segments_equal_segment_waveform_as_views(samples, window, hop, tail) -> None:
    waveform = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    settings = SegmentationSettings(window, hop, tail)
    segments = clip_segments(waveform, 16000, settings)
    expected = segment_waveform(torch.from_numpy(waveform), 16000, window, hop, tail)
    np.testing.assert_array_equal(segments, expected.numpy())
    if len(segments) > 1 and hop < window:  # overlapping segments: one buffer, no copies
        assert segments.base is not None and np.shares_memory(segments[0], segments[1])


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    """Clips at 22.05 kHz and 16 kHz (stereo one among them), so the resampler is exercised."""
    rng = np.random.default_rng(0)
    found = []
    for i, (seconds, rate, channels) in enumerate(
        [(0.4, 22050, 1), (1.0, 16000, 1), (2.33, 22050, 2), (3.1, 16000, 1)]
    ):
        path = tmp_path / "wav" / f"clip{i}.wav"
        path.parent.mkdir(exist_ok=True)
        audio = 0.3 * rng.standard_normal((round(seconds * rate), channels))
        sf.write(path, audio, rate, subtype="PCM_16")
        found.append(Clip(f"clip{i}", path, "angry", f"s{i}", "S1", "x"))
    return found


def test_cache_rows_are_segment_waveform_of_the_resampled_clip(clips, tmp_path: Path) -> None:
    settings = SegmentationSettings(1.0, 0.5, "pad")
    cache = build_or_open_waveforms(clips, tmp_path / "cache", settings, WaveformSettings())
    cache = WaveformCache.open(cache.directory)  # as a later run opens it
    rows = cache.segments()
    start = 0
    for index, clip in enumerate(clips):
        expected = segment_waveform(load_audio(clip.path, 16000), 16000, 1.0, 0.5, "pad")
        mine = np.flatnonzero(cache.row_clip == index)
        assert list(cache.row_segment[mine]) == list(range(len(expected)))
        np.testing.assert_array_equal(rows[mine], expected.numpy())
        start += len(expected)
    assert start == len(cache)
    # each clip's samples once (plus at most a window and a hop of zeros), not once per segment
    audio = sum(len(load_audio(c.path, 16000)) for c in clips)
    stored = (cache.directory / "samples.f32").stat().st_size // 4
    assert audio <= stored <= audio + len(clips) * (16000 + 8000)
    assert stored < len(cache) * 16000
    views = window_views(cache.samples, cache.grid)
    assert np.shares_memory(views[0], views[1]) and isinstance(cache.samples, np.memmap)


def test_datamodule_batches_are_the_rows_with_a_channel_axis(clips, tmp_path: Path) -> None:
    settings = SegmentationSettings(1.0, 0.5, "stop")
    cache = build_or_open_waveforms(clips, tmp_path / "cache", settings, WaveformSettings())
    rows = np.array([0, 3, 5])
    dataset = SegmentDataset(cache, rows, np.zeros(len(clips), dtype=np.int64))
    # a loader worker receives the rows by file name, not the samples
    assert len(pickle.dumps(dataset)) < 10_000
    dataset = pickle.loads(pickle.dumps(dataset))
    features, _, clip_ids, lengths = dataset[np.arange(3)]
    assert features.shape == (3, 1, 16000) and features.dtype == torch.float32
    np.testing.assert_array_equal(features[:, 0].numpy(), cache.segments()[rows])
    assert clip_ids.tolist() == cache.row_clip[rows].tolist()
    assert lengths.tolist() == cache.row_length[rows].tolist()
    assert dataset.nbytes() == 3 * 16000 * 4


def test_each_row_knows_its_valid_samples(clips, tmp_path: Path) -> None:
    """A zero-padded last segment stores how many of its samples are the clip's: the
    backbone pools only those (issue 26, padding)."""
    settings = SegmentationSettings(1.0, 0.5, "pad")
    cache = build_or_open_waveforms(clips, tmp_path / "cache", settings, WaveformSettings())
    for index, clip in enumerate(clips):
        samples = len(load_audio(clip.path, 16000))
        mine = np.flatnonzero(cache.row_clip == index)
        starts = np.arange(len(mine)) * 8000
        expected = np.clip(samples - starts, 0, 16000)
        assert cache.row_length[mine].tolist() == expected.tolist()
        assert expected[-1] < 16000  # the padded tail is shorter than a window
        rows, starts_in_clip = cache.clip_samples(index)
        assert len(rows) == samples and starts_in_clip.tolist() == starts.tolist()
        np.testing.assert_array_equal(rows, load_audio(clip.path, 16000).numpy())
    first, stop = 0, len(cache)
    assert cache.lengths(first, stop).tolist() == cache.row_length.tolist()

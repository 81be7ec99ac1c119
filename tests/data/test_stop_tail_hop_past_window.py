"""segmentation.tail=stop with a hop longer than the window: no segment starts past the clip's
end, in segmentation, both caches and the streamed predict path alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from segser.data.cache.patches import build_or_open_cache
from segser.data.cache.waveforms import build_or_open_waveforms
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.audio import audio_info
from segser.data.signal.segmentation import (
    SegmentationSettings,
    count_segments,
    segment_start_samples,
    segment_waveform,
)
from segser.data.signal.stream import SegmentCutter, stream_segments
from segser.data.waveform.settings import WaveformSettings

RATE = 16000
WINDOW, HOP = 1.0, 2.0  # seconds: the hop skips a second between windows
# clip seconds -> segments: starts 0, 2, 4 ... while inside the clip, ending at the first window
# that reaches the clip's end (4.0 s: starts 0 and 2; a start at 4.0 would lie past the end)
HAND = {4.0: 2, 6.0: 3, 4.5: 3, 5.0: 3, 5.5: 3, 0.5: 1, 2.0: 1, 1.0: 1}


def _starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Independent reference: walk the hops; stop at the first window reaching the end."""
    starts, start = [], 0
    while start < num_samples:
        starts.append(start)
        if start + window >= num_samples:
            break
        start += hop
    return starts


@pytest.mark.parametrize(("seconds", "expected"), HAND.items())
def test_segmentation_counts_only_starts_inside_the_clip(seconds: float, expected: int) -> None:
    samples = round(seconds * RATE)
    assert len(_starts(samples, RATE, 2 * RATE)) == expected
    assert count_segments(samples, RATE, WINDOW, HOP, "stop") == expected
    starts = list(segment_start_samples(samples, RATE, WINDOW, HOP, "stop"))
    assert starts == _starts(samples, RATE, 2 * RATE) and max(starts) < samples
    segments = segment_waveform(torch.ones(samples), RATE, WINDOW, HOP, "stop")
    assert len(segments) == expected and bool(segments[:, 0].all())  # each starts on audio


@pytest.mark.parametrize("num_samples", [40, 41, 45, 49, 50, 51, 60, 7, 10])
def test_small_grid_against_the_reference(num_samples: int) -> None:
    """At 1 kHz: window 5 samples, hop 10 (and 3 / 7, hop > window too)."""
    for window, hop in ((5, 10), (3, 7), (4, 5)):
        expected = len(_starts(num_samples, window, hop))
        got = count_segments(num_samples, 1000, window / 1000, hop / 1000, "stop")
        assert got == expected, (window, hop)


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    rng = np.random.default_rng(0)
    found = []
    for i, seconds in enumerate(HAND):
        path = tmp_path / "wav" / f"c{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, 0.2 * rng.standard_normal(round(seconds * RATE)), RATE, subtype="FLOAT")
        found.append(Clip(f"c{i}", path, "angry", "s", "S1", "x"))
    return found


def _per_clip(row_clip: np.ndarray, clips: list[Clip]) -> list[int]:
    return np.bincount(row_clip, minlength=len(clips)).tolist()


def test_both_caches_hold_the_capped_number_of_segments(clips, tmp_path: Path) -> None:
    settings = SegmentationSettings(WINDOW, HOP, "stop")
    expected = list(HAND.values())
    waveforms = build_or_open_waveforms(clips, tmp_path / "w", settings, WaveformSettings())
    assert _per_clip(waveforms.row_clip, clips) == expected
    patches = build_or_open_cache(clips, tmp_path / "p", settings, LogMelSettings())
    assert _per_clip(patches.row_clip, clips) == expected


@pytest.mark.parametrize("block", [3000, 16000, 100_000])
def test_streamed_segments_are_capped_too(clips, block: int) -> None:
    for clip, expected in zip(clips, HAND.values(), strict=True):
        samples = sf.read(clip.path, dtype="float32")[0]
        cutter = SegmentCutter(RATE, WINDOW, HOP, "stop")
        parts = [cutter.push(torch.from_numpy(samples[i : i + block]))
                 for i in range(0, len(samples), block)]  # fmt: skip
        assert len(torch.cat([*parts, cutter.finish()])) == expected, clip.clip_id
        batches = stream_segments(audio_info(clip.path), RATE, WINDOW, HOP, 2,
                                  block_seconds=block / RATE, tail="stop")  # fmt: skip
        assert sum(len(b.segments) for b in batches) == expected, clip.clip_id


def test_predict_writes_the_capped_segments_of_a_stop_model(clips, tmp_path: Path) -> None:
    """A checkpoint trained with tail=stop and hop > window: `segser.predict` streams each file
    into as many segments as the rule gives, none starting past the file's end."""
    import csv

    from segser.predict import predict
    from segser.train import train
    from tests.models.test_class_weights_in_runs import tiny_run

    cut = ["segmentation.window_seconds=1.0", "segmentation.hop_seconds=2.0",
           "segmentation.tail=stop", "trainer.max_epochs=1"]  # fmt: skip
    payload = train(tiny_run(tmp_path, *cut), tmp_path / "run")
    paths = [clip.path for clip in clips]
    rows, errors = predict(payload["best_checkpoint"], paths, tmp_path / "predict", batch_size=2,
                           device="cpu")  # fmt: skip
    assert not errors and [row["segments"] for row in rows] == list(HAND.values())
    for clip, seconds, expected in zip(clips, HAND, HAND.values(), strict=True):
        with open(tmp_path / "predict" / f"{clip.path.stem}.segments.csv") as handle:
            starts = [float(row["start_s"]) for row in csv.DictReader(handle)]
        assert len(starts) == expected and max(starts) < seconds, clip.clip_id

"""Segmentation follows the paper's rule: 1 s windows every hop, zero-padded at the end."""

from __future__ import annotations

import pytest
import torch

from segser.data.signal.segmentation import (
    count_segments,
    segment_start_samples,
    segment_starts_seconds,
    segment_waveform,
)

SR = 16000


@pytest.mark.parametrize(
    ("seconds", "hop", "expected"),
    [
        (4.3, 1.0, 5),  # paper Fig. 2: five non-overlapping segments, last one padded
        (4.3, 0.5, 9),  # starts 0.0 ... 4.0
        (4.0, 1.0, 4),  # exact multiple: no empty trailing segment
        (4.0, 0.5, 8),  # last start 3.5 lies inside the clip
        (0.3, 1.0, 1),  # shorter than one window: one padded segment
        (0.3, 0.5, 1),
        (1.0, 1.0, 1),
    ],
)
def test_count_segments_hand_worked(seconds: float, hop: float, expected: int) -> None:
    assert count_segments(round(seconds * SR), SR, 1.0, hop) == expected


def test_count_segments_at_22050_hz() -> None:
    assert count_segments(round(4.3 * 22050), 22050, 1.0, 1.0) == 5
    assert count_segments(round(4.3 * 22050), 22050, 1.0, 0.5) == 9


def test_hop_is_rounded_not_truncated() -> None:
    # 0.57 * 44100 == 25136.999999999996 in floats; truncating would give a 4th segment.
    hop_samples = 25137
    assert count_segments(3 * hop_samples, 44100, 1.0, 0.57) == 3
    assert segment_waveform(torch.ones(3 * hop_samples), 44100, 1.0, 0.57).shape == (3, 44100)


def test_one_sample_clip_gives_one_segment() -> None:
    assert count_segments(1, SR, 1.0, 0.5) == 1


def test_empty_clip_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        count_segments(0, SR, 1.0, 0.5)


def test_zero_hop_is_rejected() -> None:
    with pytest.raises(ValueError, match="hop_seconds"):
        count_segments(SR, SR, 1.0, 0.0)


def test_segment_starts_seconds() -> None:
    starts = segment_starts_seconds(round(4.3 * SR), SR, 1.0, 0.5)
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])


def test_segment_start_samples_are_whole_hops() -> None:
    assert list(segment_start_samples(round(4.3 * SR), SR, 1.0, 0.5)) == [
        i * 8000 for i in range(9)
    ]
    assert list(segment_start_samples(round(4.3 * SR), SR, 1.0, 0.5, tail="stop")) == [
        i * 8000 for i in range(8)
    ]
    # 0.3337 s is 5339 samples: 3 s + 17 samples holds 9 starts (9 * 5339 = 48051 > 48017).
    assert list(segment_start_samples(3 * SR + 17, SR, 1.0, 0.3337)) == [i * 5339 for i in range(9)]


def _expected_segments(
    waveform: list[float], window: int, hop: int, tail: str = "pad"
) -> list[list[float]]:
    """Independent reference: slice then pad each segment with a plain Python loop."""
    segments = []
    start = 0
    while start < len(waveform):
        piece = waveform[start : start + window]
        segments.append(piece + [0.0] * (window - len(piece)))
        if tail == "stop" and start + window >= len(waveform):
            break  # this window reached the clip's end
        start += hop
    return segments


@pytest.mark.parametrize(
    ("seconds", "hop", "expected"),
    [
        (4.3, 1.0, 5),  # starts 0..4: the window at 3.0 ends at 4.0 < 4.3, so 4.0 is needed
        (4.3, 0.5, 8),  # starts 0.0 ... 3.5: the window at 3.5 ends at 4.5 >= 4.3
        (4.0, 1.0, 4),
        (4.0, 0.5, 7),  # the window at 3.0 ends exactly at 4.0
        (4.6, 0.5, 9),  # the window at 3.5 ends at 4.5 < 4.6: one more, at 4.0
        (0.3, 0.5, 1),  # shorter than one window: one padded segment, as under pad
        (1.0, 0.5, 1),
    ],
)
def test_stop_rule_counts_hand_worked(seconds: float, hop: float, expected: int) -> None:
    assert count_segments(round(seconds * SR), SR, 1.0, hop, tail="stop") == expected
    starts = segment_starts_seconds(round(seconds * SR), SR, 1.0, hop, tail="stop")
    assert len(starts) == expected


def test_unknown_tail_is_refused() -> None:
    with pytest.raises(ValueError, match="tail='trim'"):
        count_segments(SR, SR, 1.0, 0.5, tail="trim")


@pytest.mark.parametrize(
    ("num_samples", "window_seconds", "hop_seconds"),
    [(43, 0.01, 0.005), (40, 0.01, 0.01), (7, 0.01, 0.005), (45, 0.005, 0.01), (160, 0.01, 0.003)],
)
@pytest.mark.parametrize("tail", ["pad", "stop"])
def test_segment_content_matches_slices(
    num_samples: int, window_seconds: float, hop_seconds: float, tail: str
) -> None:
    # At 1 kHz: window 10 samples, hops of 5/10/3 samples; hop > window skips audio.
    sr = 1000
    waveform = torch.arange(1, num_samples + 1, dtype=torch.float32)
    segments = segment_waveform(waveform, sr, window_seconds, hop_seconds, tail)
    window, hop = round(window_seconds * sr), round(hop_seconds * sr)
    expected = _expected_segments(waveform.tolist(), window, hop, tail)
    assert segments.tolist() == expected
    count = count_segments(num_samples, sr, window_seconds, hop_seconds, tail)
    assert segments.shape[0] == count


def test_padding_is_zeros_and_audio_is_kept() -> None:
    waveform = torch.full((round(4.3 * SR),), 0.25)
    segments = segment_waveform(waveform, SR, 1.0, 0.5)
    assert segments.shape == (9, SR)
    # Segment 8 starts at 4.0 s: 0.3 s of audio then 0.7 s of silence.
    assert torch.all(segments[8, : round(0.3 * SR)] == 0.25)
    assert torch.all(segments[8, round(0.3 * SR) :] == 0.0)
    # Segment 7 starts at 3.5 s: 0.8 s of audio.
    assert torch.all(segments[7, : round(0.8 * SR)] == 0.25)
    assert torch.all(segments[7, round(0.8 * SR) :] == 0.0)
    assert torch.all(segments[:7] == 0.25)


def test_segment_i_is_waveform_window_at_i_times_hop() -> None:
    generator = torch.Generator().manual_seed(0)
    waveform = torch.rand(round(3.7 * SR), generator=generator) * 2 - 1
    segments = segment_waveform(waveform, SR, 1.0, 0.5)
    for i in range(segments.shape[0] - 2):  # the last two are padded
        assert torch.equal(segments[i], waveform[i * 8000 : i * 8000 + SR])


def test_segment_waveform_rejects_2d_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        segment_waveform(torch.zeros(2, SR), SR, 1.0, 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_segment_waveform_on_cuda_matches_cpu() -> None:
    waveform = torch.randn(round(2.3 * SR))
    on_gpu = segment_waveform(waveform.cuda(), SR, 1.0, 0.5)
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), segment_waveform(waveform, SR, 1.0, 0.5))


def _documented_count(num_samples: int, window: int, hop: int, tail: str) -> int:
    """The rule of docs/paper-differences.md, walked window by window: `pad` keeps every window
    that starts inside the clip; `stop` ends at the first window that reaches the clip's end."""
    count, start = 0, 0
    while start < num_samples:
        count += 1
        if tail == "stop" and start + window >= num_samples:
            break
        start += hop
    return count


@pytest.mark.parametrize("tail", ["pad", "stop"])
@pytest.mark.parametrize(("window_seconds", "hop_seconds"), [(1.0, 0.5), (1.0, 1.0), (1.0, 0.25)])
def test_counts_around_every_multiple_of_the_hop(
    window_seconds: float, hop_seconds: float, tail: str
) -> None:
    """Clips a sample short of, exactly at, and just past window + k hops (k = 0..9)."""
    window, hop = round(window_seconds * SR), round(hop_seconds * SR)
    for k in range(10):
        for num_samples in (window + k * hop - 1, window + k * hop, window + k * hop + 1):
            expected = _documented_count(num_samples, window, hop, tail)
            got = count_segments(num_samples, SR, window_seconds, hop_seconds, tail)
            assert got == expected, (num_samples, tail)
            starts = segment_start_samples(num_samples, SR, window_seconds, hop_seconds, tail)
            assert list(starts) == [i * hop for i in range(expected)]
            waveform = torch.ones(num_samples)
            segments = segment_waveform(waveform, SR, window_seconds, hop_seconds, tail)
            assert segments.shape == (expected, window)
            # `stop` never cuts a window past the first that reaches the end
            if tail == "stop":
                assert (expected - 2) * hop + window < num_samples <= (expected - 1) * hop + window


def test_stop_just_past_a_multiple_of_the_hop_hand_worked() -> None:
    # 3 s + 1 sample, hop 0.5 s: the window at 2.0 s ends at 3.0 s, one sample short of the
    # end, so the one at 2.5 s is needed: starts 0, 0.5, ..., 2.5 (6); pad adds 3.0 (7).
    assert count_segments(3 * SR + 1, SR, 1.0, 0.5, tail="stop") == 6
    assert count_segments(3 * SR + 1, SR, 1.0, 0.5, tail="pad") == 7
    # exactly 3 s: the window at 2.0 s reaches the end: 5 (pad: 6)
    assert count_segments(3 * SR, SR, 1.0, 0.5, tail="stop") == 5
    assert count_segments(3 * SR, SR, 1.0, 0.5, tail="pad") == 6

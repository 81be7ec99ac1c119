"""load_audio gives a mono 16 kHz float waveform, and names the file for every bad clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from segser.data.signal.audio import audio_duration_seconds, load_audio
from segser.errors import BadClipError


def test_int16_wav_is_scaled_to_unit_range(tmp_path: Path) -> None:
    path = tmp_path / "pcm.wav"
    sf.write(path, np.array([0, 16384, -32768, 32767], dtype=np.int16), 16000)
    waveform = load_audio(path)
    assert waveform.dtype == torch.float32
    assert waveform.ndim == 1
    assert waveform.tolist() == [0.0, 0.5, -1.0, 32767 / 32768]


def test_stereo_is_mixed_to_mono_by_the_mean(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    left = np.array([0.5, -0.25, 1.0, 0.0], dtype=np.float32)
    right = np.array([0.25, 0.25, -1.0, 0.125], dtype=np.float32)
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    waveform = load_audio(path)
    assert waveform.tolist() == [0.375, 0.0, 0.0, 0.0625]


def test_22050_hz_is_resampled_to_16k(tmp_path: Path) -> None:
    path = tmp_path / "cd_rate.wav"
    rate = 22050
    t = np.arange(2 * rate) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), rate, "FLOAT")
    waveform = load_audio(path, sample_rate=16000)
    assert waveform.shape == (32000,)  # 2.0 s at 16 kHz
    # The tone survives resampling: its spectral peak is still at 440 Hz (1 Hz bins).
    spectrum = torch.fft.rfft(waveform[:16000] * torch.hann_window(16000)).abs()
    assert int(spectrum.argmax()) == 440


def test_clip_shorter_than_a_segment_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, np.full(3200, 0.1, dtype=np.float32), 16000, subtype="FLOAT")
    assert load_audio(path).shape == (3200,)


def test_audio_duration_from_header(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(55125, dtype=np.int16), 22050)
    assert audio_duration_seconds(path) == pytest.approx(2.5)


def _assert_bad_clip(path: Path, problem: str, call=load_audio) -> None:
    with pytest.raises(BadClipError, match=problem) as info:
        call(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "\n" not in message
    assert info.value.path == path


def test_missing_file(tmp_path: Path) -> None:
    _assert_bad_clip(tmp_path / "nowhere.wav", "not found")
    _assert_bad_clip(tmp_path / "nowhere.wav", "not found", audio_duration_seconds)


def test_corrupt_bytes(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"this is not a RIFF header" * 20)
    _assert_bad_clip(path, "unreadable audio")
    _assert_bad_clip(path, "unreadable audio", audio_duration_seconds)


def test_empty_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.int16), 16000)
    _assert_bad_clip(path, "empty audio")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_nan_or_inf_samples(tmp_path: Path, bad_value: float) -> None:
    path = tmp_path / "nan.wav"
    data = np.zeros(1600, dtype=np.float32)
    data[800] = bad_value
    sf.write(path, data, 16000, subtype="FLOAT")
    _assert_bad_clip(path, "NaN or Inf")


def test_directory_is_not_a_clip(tmp_path: Path) -> None:
    _assert_bad_clip(tmp_path, "not a file")


def test_truncated_wav_is_a_bad_clip(tmp_path: Path) -> None:
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.full(16000, 0.25, dtype=np.float32), 16000, subtype="PCM_16")
    path = tmp_path / "truncated.wav"
    path.write_bytes(whole.read_bytes()[:-10000])  # the header still promises 16000 samples
    for call in (load_audio, audio_duration_seconds):
        _assert_bad_clip(path, "promises 16000 samples, the file holds 11000", call)


def test_wav_with_chunks_before_the_data_reads_whole(tmp_path: Path) -> None:
    """As most RAVDESS files: a LIST chunk (odd size, padded) between `fmt ` and `data`."""
    plain = tmp_path / "plain.wav"
    samples = np.array([0, 16384, -32768, 32767] * 100, dtype=np.int16)
    sf.write(plain, samples, 16000)
    data = plain.read_bytes()
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00"
    body = data[12:36] + extra + data[36:]
    path = tmp_path / "extra_chunk.wav"
    path.write_bytes(b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body)
    assert load_audio(path).tolist() == (samples / 32768).tolist()

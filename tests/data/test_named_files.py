"""EmoDB, RAVDESS and CREMA-D readers on fixture releases written here, in their own layouts."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segser.data.corpora.named_files import CORPORA, count_check, read_named_files
from segser.data.signal.audio import load_audio
from segser.errors import BadClipError, SegserError
from tests.hydra_app import composed


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220.0 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def write(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate, channels), rate, subtype="PCM_16")
    return path


def write_with_list_chunk(path: Path, samples: np.ndarray, rate: int) -> Path:
    """A 16-bit mono RIFF/WAVE file with a LIST/INFO chunk between `fmt ` and `data`."""
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    info = b"INFO" + b"ISFT" + struct.pack("<I", 6) + b"segser"
    chunks = (
        b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"LIST" + struct.pack("<I", len(info)) + info
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


@pytest.fixture
def emodb(tmp_path: Path) -> Path:
    """The original release's `wav/` folder: 16 kHz mono, plus a 48 kHz stereo copy-edit."""
    root = tmp_path / "emodb"
    write(root / "wav" / "03a01Wa.wav", 1.5)
    write(root / "wav" / "03a02Fc.wav", 2.0, rate=48000, channels=2)
    write(root / "wav" / "08b01Ta.wav", 1.25)
    write(root / "wav" / "16b10Nb.wav", 3.0)
    write(root / "wav" / "09a05Lb.wav", 1.0)  # boredom: outside the four classes
    (root / "erkennung.txt").write_text("not audio")
    return root


def test_emodb_reads_layout_rates_channels_and_label_map(emodb: Path) -> None:
    label_map = composed("train", ["dataset=emodb"]).dataset.reader.label_map
    clips = read_named_files("emodb", emodb, label_map)
    table = [(c.clip_id, c.label, c.speaker, c.session, c.duration_seconds) for c in clips]
    assert table == [
        ("03a01Wa", "angry", "03", "03", 1.5),
        ("03a02Fc", "happy", "03", "03", 2.0),
        ("08b01Ta", "sad", "08", "08", 1.25),
        ("16b10Nb", "neutral", "16", "16", 3.0),
    ]
    stereo = load_audio(emodb / "wav" / "03a02Fc.wav", 16000)
    assert stereo.shape == (32000,)


def test_keep_unmapped_adds_the_other_emotions_labelled_with_their_code(emodb: Path) -> None:
    """Issue 26.2: a speaker's audio for speaker_norm statistics, every emotion included."""
    label_map = composed("train", ["dataset=emodb"]).dataset.reader.label_map
    clips = read_named_files("emodb", emodb, label_map, keep_unmapped=True)
    unmapped = [c for c in clips if c.label not in label_map.values()]
    assert [(c.clip_id, c.label, c.speaker) for c in unmapped] == [("09a05Lb", "L", "09")]
    assert len(clips) == 5


def test_ravdess_actor_folders_drop_calm_song_and_video(tmp_path: Path) -> None:
    root = tmp_path / "Audio_Speech_Actors_01-24"
    write(root / "Actor_01" / "03-01-05-01-01-01-01.wav", 3.0, rate=48000)
    write(root / "Actor_01" / "03-01-01-01-02-01-01.wav", 3.5, rate=48000, channels=2)
    write(root / "Actor_02" / "03-01-03-02-01-02-02.wav", 4.0, rate=48000)
    write(root / "Actor_02" / "03-01-04-01-01-01-02.wav", 3.0, rate=48000)
    write(root / "Actor_02" / "03-01-02-01-01-01-02.wav", 3.0, rate=48000)  # calm: dropped
    write(root / "Actor_02" / "03-02-05-01-01-01-02.wav", 3.0, rate=48000)  # song: not speech
    label_map = composed("train", ["dataset=ravdess"]).dataset.reader.label_map
    clips = read_named_files("ravdess", root, label_map)
    assert [(c.clip_id, c.label, c.speaker) for c in clips] == [
        ("03-01-01-01-02-01-01", "neutral", "01"),
        ("03-01-03-02-01-02-02", "happy", "02"),
        ("03-01-04-01-01-01-02", "sad", "02"),
        ("03-01-05-01-01-01-01", "angry", "01"),
    ]
    assert [c.duration_seconds for c in clips] == [3.5, 4.0, 3.0, 3.0]


def test_cremad_reads_a_file_with_an_extra_riff_chunk(tmp_path: Path) -> None:
    root = tmp_path / "AudioWAV"
    samples = (np.arange(8000) % 200 - 100).astype(np.int16) * 50
    extra = write_with_list_chunk(root / "1001_DFA_ANG_XX.wav", samples, 16000)
    write(root / "1091_IEO_HAP_HI.wav", 2.0)
    write(root / "1002_TIE_NEU_XX.wav", 1.0)
    write(root / "1002_TIE_DIS_XX.wav", 1.0)  # disgust: dropped
    label_map = composed("train", ["dataset=cremad"]).dataset.reader.label_map
    clips = read_named_files("cremad", root, label_map)
    assert [(c.clip_id, c.label, c.speaker, c.duration_seconds) for c in clips] == [
        ("1001_DFA_ANG_XX", "angry", "1001", 0.5),
        ("1002_TIE_NEU_XX", "neutral", "1002", 1.0),
        ("1091_IEO_HAP_HI", "happy", "1091", 2.0),
    ]
    assert b"LIST" in extra.read_bytes()[:60]
    np.testing.assert_allclose(load_audio(extra, 16000).numpy(), samples / 32768.0, atol=1e-6)


@pytest.mark.parametrize("bad_name", ["03a01Xa.wav", "notes.wav", "3a01Wa.wav"])
def test_a_badly_named_file_fails_in_one_line(emodb: Path, bad_name: str) -> None:
    write(emodb / "wav" / bad_name, 1.0)
    with pytest.raises(BadClipError) as error:
        read_named_files("emodb", emodb, {"W": "angry"})
    message = str(error.value)
    assert bad_name in message and "SSTTTEV" in message and "on_bad_clip=skip" in message
    assert "\n" not in message


def test_badly_named_files_are_skipped_and_counted(
    emodb: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(emodb / "wav" / "notes.wav", 1.0)
    write(emodb / "wav" / "extra" / "03a01Wa copy.wav", 1.0)
    with caplog.at_level(logging.WARNING, logger="segser"):
        clips = read_named_files("emodb", emodb, {"W": "angry", "T": "sad"}, on_bad_clip="skip")
    assert [c.clip_id for c in clips] == ["03a01Wa", "08b01Ta"]
    assert "skipped 2 bad clip(s), kept 2" in caplog.text


def test_a_short_corpus_warns_naming_what_is_missing(
    emodb: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="segser"):
        read_named_files("emodb", emodb, {"W": "angry"})
    warning = caplog.text
    assert "5 of 535 published files" in warning
    assert "missing speakers 09" not in warning  # 09 is there (boredom counts as read)
    assert "missing speakers 10, 11, 12, 13, 14, 15" in warning
    assert "emotion W: 1 of 127 published" in warning


def test_root_without_wav_files_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SegserError, match=r"no \.wav files"):
        read_named_files("cremad", tmp_path, {"ANG": "angry"})
    with pytest.raises(SegserError, match="unknown corpus"):
        read_named_files("iemocap", tmp_path, {})


def ravdess_release(skip_actor: int | None = None) -> list[dict[str, str]]:
    """File-name fields of the RAVDESS speech release as NOTES.md describes it: per actor,
    neutral 4 files and every other emotion 8 (2 intensities x 2 statements x 2 repetitions)."""
    fields = []
    for actor in range(1, 25):
        if actor == skip_actor:
            continue
        for emotion in range(1, 9):
            for _ in range(4 if emotion == 1 else 8):
                fields.append({"speaker": f"{actor:02d}", "emotion": f"{emotion:02d}"})
    return fields


def cremad_release() -> list[dict[str, str]]:
    """CREMA-D as published: 82 files per actor, 81 for 1002/1076, 76 for 1008/1009/1019."""
    short = {"1002": 81, "1076": 81, "1008": 76, "1009": 76, "1019": 76}
    codes = ["ANG", "DIS", "FEA", "HAP", "SAD", "NEU"]
    speakers = [s for actor in range(1001, 1092) for s in [str(actor)] * short.get(str(actor), 82)]
    emotions = [c for c in codes for _ in range(1271 if c != "NEU" else 1087)]
    assert len(speakers) == len(emotions) == 7442
    return [{"speaker": s, "emotion": e} for s, e in zip(speakers, emotions, strict=True)]


def test_count_check_passes_the_published_releases_and_names_a_missing_actor() -> None:
    assert count_check(CORPORA["ravdess"], ravdess_release()) == []
    assert count_check(CORPORA["cremad"], cremad_release()) == []
    short = count_check(CORPORA["ravdess"], ravdess_release(skip_actor=7))
    assert short == [
        "1380 of 1440 published files",
        "missing speakers 07",
        "emotion 01: 92 of 96 published",
        *[f"emotion 0{code}: 184 of 192 published" for code in range(2, 9)],
    ]


def test_count_tool_scans_the_files_the_reader_reads(tmp_path: Path, capsys) -> None:
    """`python -m segser.data.corpora.named_files` counted `*.wav` only; the reader: any case."""
    from segser.data.corpora.named_files import main, wav_files

    for name in ("03a01Wa.WAV", "03a01Fa.wav", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in wav_files(tmp_path)] == ["03a01Fa.wav", "03a01Wa.WAV"]
    assert main(["emodb", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "emodb: 2 files, 0 badly named" in printed
    assert "emotions: {'F': 1, 'W': 1}" in printed

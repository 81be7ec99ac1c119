"""read_iemocap on a hand-written release fixture, checked against a hand-worked clip table."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segser.data.corpora.clips import Clip
from segser.data.corpora.iemocap import read_iemocap
from segser.errors import BadClipError, SegserError

LABEL_MAP = {"ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral"}
RATE = 16000

# (session folder, dialog, EmoEvaluation text) exactly as the release writes them.
SES01F_IMPRO01 = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-E3:\tNeutral;\t()
C-F1:\tNeutral;\t(curious)
A-E3:\tval 3; act 2; dom  2;\t()
A-F1:\tval 3; act 2; dom  1;\t()

[10.0100 - 11.3925]\tSes01F_impro01_M000\tang\t[1.5000, 4.0000, 4.0000]
C-E2:\tAnger;\t()
C-E3:\tAnger; Frustration;\t()
A-E3:\tval 1; act 4; dom  4;\t()

[14.8872 - 18.0175]\tSes01F_impro01_F001\txxx\t[2.5000, 3.0000, 3.0000]
C-E2:\tNeutral;\t()
C-E3:\tFrustration;\t()

[19.2900 - 20.7875]\tSes01F_impro01_M001\tfru\t[2.0000, 3.5000, 3.5000]
C-E2:\tFrustration;\t()

[21.3257 - 24.7400]\tSes01F_impro01_F002\texc\t[4.0000, 3.5000, 3.0000]
C-E2:\tExcited;\t()
C-E3:\tHappiness;\t()
"""
SES01M_SCRIPT01_1 = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[2.0000 - 4.5000]\tSes01M_script01_1_M000\tsad\t[2.0000, 2.0000, 2.0000]
C-E1:\tSadness;\t()

[5.0000 - 6.0000]\tSes01M_script01_1_F000\thap\t[4.0000, 3.0000, 3.0000]
C-E1:\tHappiness;\t()
"""
SES02F_IMPRO02 = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[1.0000 - 2.0000]\tSes02F_impro02_F000\tsur\t[3.0000, 4.0000, 3.0000]
C-E1:\tSurprise;\t()

[3.0000 - 5.0000]\tSes02F_impro02_M000\tneu\t[3.0000, 2.5000, 3.0000]
C-E1:\tNeutral;\t()
"""
# Wav lengths in samples; the dropped codes (xxx, fru, sur) have wavs too, as in the release.
WAV_SAMPLES = {
    "Ses01F_impro01_F000": 31128,
    "Ses01F_impro01_M000": 22120,
    "Ses01F_impro01_F001": 50085,
    "Ses01F_impro01_M001": 23960,
    "Ses01F_impro01_F002": 54627,
    "Ses01M_script01_1_M000": 40000,
    "Ses01M_script01_1_F000": 16000,
    "Ses02F_impro02_F000": 16000,
    "Ses02F_impro02_M000": 32000,
}
# Hand-worked table: (clip_id, label, speaker, session, seconds). The speaker is the letter
# before the final number (Ses01F_impro01_M000 is spoken by Ses01M), not the dialog's prefix.
EXPECTED = [
    ("Ses01F_impro01_F000", "neutral", "Ses01F", "Ses01", 31128 / 16000),
    ("Ses01F_impro01_F002", "happy", "Ses01F", "Ses01", 54627 / 16000),
    ("Ses01F_impro01_M000", "angry", "Ses01M", "Ses01", 22120 / 16000),
    ("Ses01M_script01_1_F000", "happy", "Ses01F", "Ses01", 1.0),
    ("Ses01M_script01_1_M000", "sad", "Ses01M", "Ses01", 2.5),
    ("Ses02F_impro02_M000", "neutral", "Ses02M", "Ses02", 2.0),
]


def _write_wav(path: Path, num_samples: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(num_samples) / RATE)
    sf.write(path, tone, RATE, subtype="PCM_16")


def _wav_path(root: Path, clip_id: str) -> Path:
    dialog = clip_id.rsplit("_", 1)[0]
    return root / f"Session{int(clip_id[3:5])}" / "sentences" / "wav" / dialog / f"{clip_id}.wav"


@pytest.fixture
def iemocap_root(tmp_path: Path) -> Path:
    root = tmp_path / "IEMOCAP_full_release"
    for dialog, text in [
        ("Ses01F_impro01", SES01F_IMPRO01),
        ("Ses01M_script01_1", SES01M_SCRIPT01_1),
        ("Ses02F_impro02", SES02F_IMPRO02),
    ]:
        evaluation = root / f"Session{int(dialog[3:5])}" / "dialog" / "EmoEvaluation"
        evaluation.mkdir(parents=True, exist_ok=True)
        (evaluation / f"{dialog}.txt").write_text(text)
    # The release keeps per-rater files in subfolders and macOS copies add ._ files: not read.
    categorical = root / "Session1" / "dialog" / "EmoEvaluation" / "Categorical"
    categorical.mkdir()
    (categorical / "Ses01F_impro01_e2_cat.txt").write_text("[not a summary line\n")
    (categorical.parent / "._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07[junk")
    for clip_id, num_samples in WAV_SAMPLES.items():
        _write_wav(_wav_path(root, clip_id), num_samples)
    return root


def _table(clips: list[Clip]) -> list[tuple[str, str, str, str, float]]:
    return [(c.clip_id, c.label, c.speaker, c.session, c.duration_seconds) for c in clips]


def test_reads_hand_worked_table(iemocap_root: Path) -> None:
    clips = read_iemocap(iemocap_root, LABEL_MAP)
    assert _table(clips) == EXPECTED
    for clip in clips:
        assert clip.path == _wav_path(iemocap_root.resolve(), clip.clip_id)
        assert clip.path.is_file()


def test_sessions_select_session_folders(iemocap_root: Path) -> None:
    assert _table(read_iemocap(iemocap_root, LABEL_MAP, sessions=[2])) == EXPECTED[-1:]
    assert _table(read_iemocap(iemocap_root, LABEL_MAP, sessions=[1])) == EXPECTED[:-1]
    with pytest.raises(SegserError, match="Session3: no such session"):
        read_iemocap(iemocap_root, LABEL_MAP, sessions=[3])


def test_label_map_decides_which_codes_are_kept(iemocap_root: Path) -> None:
    clips = read_iemocap(iemocap_root, {"fru": "frustrated", "xxx": "unsure"})
    assert [(c.clip_id, c.label, c.speaker) for c in clips] == [
        ("Ses01F_impro01_F001", "unsure", "Ses01F"),
        ("Ses01F_impro01_M001", "frustrated", "Ses01M"),
    ]


def test_missing_root_says_how_to_point_at_iemocap(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SegserError) as info:
        read_iemocap(missing, LABEL_MAP)
    message = str(info.value)
    assert str(missing) in message and "not found" in message
    assert "dataset.root=" in message and "IEMOCAP_ROOT" in message and "dataset=demo" in message


def test_folder_without_iemocap_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Session1" / "sentences").mkdir(parents=True)
    with pytest.raises(SegserError, match=r"not an IEMOCAP layout .*dataset\.root="):
        read_iemocap(tmp_path, LABEL_MAP)


def test_missing_wav_fails_or_is_skipped(
    iemocap_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = _wav_path(iemocap_root, "Ses01F_impro01_M000")
    missing.unlink()
    with pytest.raises(BadClipError, match="file not found") as info:
        read_iemocap(iemocap_root, LABEL_MAP)
    assert info.value.path == missing.resolve()

    with caplog.at_level(logging.WARNING, logger="segser"):
        clips = read_iemocap(iemocap_root, LABEL_MAP, on_bad_clip="skip")
    assert _table(clips) == [row for row in EXPECTED if row[0] != "Ses01F_impro01_M000"]
    messages = [r.getMessage() for r in caplog.records if r.name == "segser"]
    assert len(messages) == 2
    assert "Ses01F_impro01_M000.wav" in messages[0]
    assert "skipped 1 bad clip(s), kept 5" in messages[1]


def test_corrupt_wav_fails_or_is_skipped(iemocap_root: Path) -> None:
    corrupt = _wav_path(iemocap_root, "Ses01M_script01_1_M000")
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEthis is not audio")
    with pytest.raises(BadClipError, match="unreadable audio") as info:
        read_iemocap(iemocap_root, LABEL_MAP)
    assert info.value.path == corrupt.resolve()
    clips = read_iemocap(iemocap_root, LABEL_MAP, on_bad_clip="skip")
    assert [c.clip_id for c in clips] == [r[0] for r in EXPECTED if r[0] != corrupt.stem]


def test_malformed_summary_line_names_file_and_line(iemocap_root: Path) -> None:
    path = iemocap_root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01M_script01_1.txt"
    lines = SES01M_SCRIPT01_1.splitlines()
    lines[5] = "[5.0000 - 6.0000]\tSes01M_script01_1_F000\thap"  # V, A, D lost
    path.write_text("\n".join(lines))
    with pytest.raises(SegserError, match=rf"{path.name}:6: malformed summary line"):
        read_iemocap(iemocap_root, LABEL_MAP, on_bad_clip="skip")


def test_unknown_policy_is_refused(iemocap_root: Path) -> None:
    with pytest.raises(SegserError, match="on_bad_clip='ignore'"):
        read_iemocap(iemocap_root, LABEL_MAP, on_bad_clip="ignore")  # type: ignore[arg-type]


def test_count_check_against_the_published_four_class_counts() -> None:
    from segser.data.corpora.iemocap import (
        EXPECTED_CLASS_COUNTS,
        EXPECTED_SESSION_COUNTS,
        count_check,
    )

    labels = [label for label, n in EXPECTED_CLASS_COUNTS.items() for _ in range(n)]
    sessions = [session for session, n in EXPECTED_SESSION_COUNTS.items() for _ in range(n)]
    assert len(labels) == len(sessions) == 5531
    clips = [
        Clip(f"u{i}", Path(f"u{i}.wav"), label, session + "F", session, 4.5)
        for i, (label, session) in enumerate(zip(labels, sessions, strict=True))
    ]
    assert not [line for line in count_check(clips) if "DIFFERS" in line]
    wrong = count_check(clips[1:])  # one neutral clip of Ses01 missing
    assert [line.split()[:2] for line in wrong if "DIFFERS" in line] == [
        ["class", "neutral"],
        ["session", "Ses01"],
        ["total", "5530"],
    ]


def test_cli_prints_both_tail_rules_beside_table_1(iemocap_root: Path) -> None:
    from tests.segser_cli import run_segser

    result = run_segser("segser.data.corpora.iemocap", str(iemocap_root))
    assert result.returncode == 0, result.stderr
    totals = {
        tuple(line.split()[1:3]): int(line.split()[3])
        for line in result.stdout.splitlines()
        if line.startswith("segments ")
    }
    # Hand-worked from EXPECTED's six clip lengths (1.95, 3.41, 1.38, 1.0, 2.5, 2.0 s):
    # hop 1 s: pad ceil(d) = 2+4+2+1+3+2; stop gives the same for these lengths.
    # hop 0.5 s: pad ceil(2d) = 4+7+3+2+5+4; stop ceil(2d-2)+1 = 3+6+2+1+4+3.
    assert totals == {
        ("nonoverlap", "tail=pad"): 14,
        ("nonoverlap", "tail=stop"): 14,
        ("overlap", "tail=pad"): 25,
        ("overlap", "tail=stop"): 19,
    }
    assert "Table 1: 49795 (4.96 per utterance)" in result.stdout
    assert "Table 1: 91017 (9.07 per utterance)" in result.stdout

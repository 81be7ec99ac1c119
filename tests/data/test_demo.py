"""The synthetic demo corpus: IEMOCAP layout, deterministic, and learnable from prosody alone."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segser.data.corpora import demo as demo_module
from segser.data.corpora.clips import Clip, label_counts
from segser.data.corpora.demo import main, write_demo_corpus
from segser.data.corpora.iemocap import read_iemocap
from segser.errors import SegserError

LABEL_MAP = {"ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral"}
CLASSES = ["angry", "happy", "sad", "neutral"]
NUM_CLIPS = 100
SUMMARY = re.compile(r"^\[(\d+\.\d{4}) - (\d+\.\d{4})\]\t(\S+)\t(\w+)\t\[[\d.]+, [\d.]+, [\d.]+\]$")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", NUM_CLIPS, seed=0)


@pytest.fixture(scope="module")
def demo_clips(demo_root: Path) -> list[Clip]:
    return read_iemocap(demo_root, LABEL_MAP)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_reads_back_with_count_classes_speakers_durations(demo_clips: list[Clip]) -> None:
    assert len(demo_clips) == NUM_CLIPS
    counts = label_counts(demo_clips, CLASSES)
    assert min(counts.values()) >= 0.15 * NUM_CLIPS, counts
    speakers = {f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"}
    assert {c.speaker for c in demo_clips} == speakers
    assert {c.session for c in demo_clips} == {f"Ses0{s}" for s in range(1, 6)}
    assert all(1.0 <= c.duration_seconds <= 8.0 for c in demo_clips)
    for clip in demo_clips:
        info = sf.info(str(clip.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    # Some turns in a dialog led by one actor are spoken by the other.
    assert any(c.clip_id[5] != c.speaker[-1] for c in demo_clips)


def test_evaluation_files_have_release_format(demo_root: Path, demo_clips: list[Clip]) -> None:
    durations = {c.clip_id: c.duration_seconds for c in demo_clips}
    codes, other_lines = [], []
    for path in sorted(demo_root.glob("Session*/dialog/EmoEvaluation/*.txt")):
        lines = path.read_text().splitlines()
        assert lines[0] == "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
        for line in lines[1:]:
            match = SUMMARY.match(line)
            if match is None:
                other_lines.append(line)
                continue
            start, end, utterance, code = match.groups()
            assert utterance.startswith(path.stem + "_")
            codes.append(code)
            if utterance in durations:  # the summary's times span the wav
                assert float(end) - float(start) == pytest.approx(durations[utterance], abs=1e-4)
    assert {"ang", "hap", "exc", "sad", "neu"} <= set(codes)
    assert len([c for c in codes if c not in LABEL_MAP]) >= 2  # e.g. fru/xxx, dropped by the map
    assert any(line.startswith("C-E") for line in other_lines)
    assert any(line.startswith("A-") for line in other_lines)
    assert "" in other_lines


def test_same_seed_same_bytes_other_seed_other_audio(tmp_path: Path) -> None:
    first = _files(write_demo_corpus(tmp_path / "a", 30, seed=7))
    second = _files(write_demo_corpus(tmp_path / "b", 30, seed=7))
    other = _files(write_demo_corpus(tmp_path / "c", 30, seed=8))
    assert first == second
    wavs = [name for name in first if name.endswith(".wav")]
    assert len(wavs) >= 30
    assert sum(first[n] != other.get(n) for n in wavs) > 0.9 * len(wavs)


def test_existing_corpus_is_reused_and_other_parameters_replace_it(
    tmp_path: Path, monkeypatch
) -> None:
    root = write_demo_corpus(tmp_path / "corpus", 12, seed=1)
    marker = root / "segser_demo.json"
    stamp = marker.stat().st_mtime_ns
    with monkeypatch.context() as patched:  # reused: nothing is synthesised or written again

        def no_writing(*args, **kwargs):
            raise AssertionError("an existing corpus was written again")

        patched.setattr(demo_module, "_write_layout", no_writing)
        assert write_demo_corpus(tmp_path / "corpus", 12, seed=1) == root
    assert marker.stat().st_mtime_ns == stamp

    write_demo_corpus(root, 15, seed=1)
    assert len(read_iemocap(root, LABEL_MAP)) == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no staging left behind


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(SegserError, match="not a segser demo corpus"):
        write_demo_corpus(tmp_path, 12)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_cli_prints_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path / "cli"), "--clips", "12", "--seed", "2"])
    out = capsys.readouterr().out
    assert out.startswith(f"wrote demo corpus {tmp_path / 'cli'}") and "12 clips" in out
    main([str(tmp_path / "cli"), "--clips", "12", "--seed", "2"])
    assert capsys.readouterr().out.startswith("found demo corpus")
    assert len(read_iemocap(tmp_path / "cli", LABEL_MAP)) == 12


def _prosodic_features(samples: np.ndarray, rate: int = 16000) -> list[float]:
    """Level, autocorrelation pitch (mean, spread), high/low band ratio, onsets per second."""
    frame, hop = 640, 160
    frames = np.lib.stride_tricks.sliding_window_view(samples, frame)[::hop]
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    active = level_db > level_db.max() - 25
    spectrum = np.fft.rfft(frames[active] * np.hanning(frame), 2 * frame)
    power = np.abs(spectrum) ** 2
    autocorrelation = np.fft.irfft(power)[:, :frame]
    low, high = rate // 400, rate // 60
    lag = low + np.argmax(autocorrelation[:, low:high], axis=1)
    voiced = autocorrelation[np.arange(len(lag)), lag] > 0.4 * autocorrelation[:, 0]
    log_f0 = np.log2(rate / lag[voiced]) if voiced.any() else np.zeros(1)
    freqs = np.fft.rfftfreq(2 * frame, 1 / rate)
    tilt_db = 10 * np.log10(power[:, freqs > 1500].sum() / power[:, freqs <= 1500].sum())
    onsets = np.sum(active[1:] & ~active[:-1]) / (len(samples) / rate)
    return [level_db[active].mean(), log_f0.mean(), log_f0.std(), tilt_db, onsets]


def test_emotion_is_learnable_from_prosody_on_unseen_speakers(demo_clips: list[Clip]) -> None:
    """Nearest class centroid on speaker-normalised prosodic statistics, leave-one-session-out:
    well above chance (about 0.3 here), yet short of perfect, since the classes overlap."""
    features = np.array([_prosodic_features(sf.read(c.path)[0]) for c in demo_clips])
    labels = np.array([CLASSES.index(c.label) for c in demo_clips])
    speakers = np.array([c.speaker for c in demo_clips])
    sessions = np.array([c.session for c in demo_clips])
    for speaker in np.unique(speakers):  # labels unused: fine for unseen speakers too
        rows = speakers == speaker
        features[rows] = (features[rows] - features[rows].mean(0)) / (features[rows].std(0) + 1e-9)
    correct = 0
    for session in np.unique(sessions):
        train, test = sessions != session, sessions == session
        centroids = np.stack([features[train & (labels == k)].mean(0) for k in range(4)])
        distances = ((features[test][:, None] - centroids) ** 2).sum(-1)
        correct += int((distances.argmin(1) == labels[test]).sum())
    accuracy = correct / len(labels)
    assert 0.6 < accuracy < 0.97, accuracy

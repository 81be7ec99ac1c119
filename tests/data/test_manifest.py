"""read_manifest and the clip-table helpers on small hand-written CSV manifests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from segser.data.corpora.clips import Clip, label_counts
from segser.data.corpora.manifest import read_manifest
from segser.errors import BadClipError, SegserError

CLASSES = ["angry", "happy", "sad", "neutral"]


def _write_wav(path: Path, num_samples: int, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(num_samples, dtype=np.int16), rate, subtype="PCM_16")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A corpus folder with its manifest; one clip lives outside it, named by absolute path."""
    _write_wav(tmp_path / "corpus" / "wav" / "a01.wav", 8000)
    _write_wav(tmp_path / "corpus" / "wav" / "b02.wav", 44100, rate=22050)
    _write_wav(tmp_path / "elsewhere" / "c03.wav", 24000)
    return tmp_path / "corpus"


def _write_manifest(
    folder: Path, rows: list[str], header: str = "path,label,speaker,session"
) -> Path:
    path = folder / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_reads_rows_sorted_by_clip_id(corpus: Path) -> None:
    elsewhere = corpus.parent / "elsewhere" / "c03.wav"
    manifest = _write_manifest(
        corpus,
        [f"{elsewhere},sad,,", "wav/b02.wav,happy,spk2,", "wav/a01.wav,angry,spk1,s1"],
    )
    clips = read_manifest(manifest, CLASSES)
    assert clips == [
        Clip("a01", corpus / "wav" / "a01.wav", "angry", "spk1", "s1", 0.5),
        Clip("b02", corpus / "wav" / "b02.wav", "happy", "spk2", "unknown", 2.0),
        Clip("c03", elsewhere, "sad", "unknown", "unknown", 1.5),
    ]


def test_speaker_and_session_columns_are_optional(corpus: Path) -> None:
    manifest = _write_manifest(corpus, ["neutral,wav/a01.wav"], header="label,path")
    (clip,) = read_manifest(manifest, CLASSES)
    assert (clip.clip_id, clip.label, clip.speaker, clip.session) == (
        "a01",
        "neutral",
        "unknown",
        "unknown",
    )


def test_unknown_label_names_file_row_and_classes(
    corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = _write_manifest(corpus, ["wav/a01.wav,angry,s,x", "wav/b02.wav,bored,s,x"])
    with pytest.raises(BadClipError) as info:
        read_manifest(manifest, CLASSES)
    message = str(info.value)
    assert str(manifest) in message and "row 3" in message and "'bored'" in message
    assert str(CLASSES) in message

    with caplog.at_level(logging.WARNING, logger="segser"):
        clips = read_manifest(manifest, CLASSES, on_bad_clip="skip")
    assert [c.clip_id for c in clips] == ["a01"]
    assert sum("'bored'" in r.getMessage() for r in caplog.records) == 1


def test_missing_audio_fails_or_is_skipped(corpus: Path) -> None:
    manifest = _write_manifest(corpus, ["wav/a01.wav,sad,s,x", "wav/gone.wav,sad,s,x"])
    with pytest.raises(BadClipError, match="file not found") as info:
        read_manifest(manifest, CLASSES)
    assert info.value.path == corpus / "wav" / "gone.wav"
    assert [c.clip_id for c in read_manifest(manifest, CLASSES, on_bad_clip="skip")] == ["a01"]


def test_duplicate_clip_ids_are_an_error(corpus: Path) -> None:
    _write_wav(corpus / "other" / "a01.wav", 8000)
    manifest = _write_manifest(corpus, ["wav/a01.wav,sad,s,x", "other/a01.wav,happy,s,x"])
    with pytest.raises(SegserError, match="clip id 'a01' is used by both"):
        read_manifest(manifest, CLASSES)


def test_missing_columns_and_missing_file_are_clear(corpus: Path) -> None:
    manifest = _write_manifest(corpus, ["wav/a01.wav"], header="file")
    with pytest.raises(SegserError, match=r"lacks column.*path, label"):
        read_manifest(manifest, CLASSES)
    with pytest.raises(SegserError, match="manifest not found"):
        read_manifest(corpus / "none.csv", CLASSES)


def test_all_rows_skipped_leaves_no_clips_error(corpus: Path) -> None:
    manifest = _write_manifest(corpus, ["wav/a01.wav,bored,s,x"])
    with pytest.raises(SegserError, match="no usable clips"):
        read_manifest(manifest, CLASSES, on_bad_clip="skip")


def test_label_counts_follow_class_order_with_zeros(corpus: Path) -> None:
    manifest = _write_manifest(corpus, ["wav/a01.wav,sad,s,x", "wav/b02.wav,sad,s,x"])
    clips = read_manifest(manifest, CLASSES)
    assert label_counts(clips, CLASSES) == {"angry": 0, "happy": 0, "sad": 2, "neutral": 0}
    assert list(label_counts(clips, CLASSES)) == CLASSES
    assert label_counts(clips) == {"sad": 2}


def test_errors_name_the_config_keys_a_user_sets(corpus: Path) -> None:
    """The fixes name `dataset.csv` and `classes`, keys that exist in the composed config."""
    import re

    from omegaconf import OmegaConf

    from tests.hydra_app import composed

    cfg = composed("train", ["dataset=manifest", f"dataset.csv={corpus / 'manifest.csv'}"])
    with pytest.raises(SegserError) as missing:
        read_manifest(corpus / "missing.csv", CLASSES)
    manifest = _write_manifest(corpus, ["wav/b02.wav,bored,s,x"])
    with pytest.raises(BadClipError) as unknown:
        read_manifest(manifest, CLASSES)
    named = [
        re.search(r"Point (\S+) at a CSV", str(missing.value)),
        re.search(r"add it to (\S+)$", str(unknown.value)),
    ]
    assert [m.group(1) if m else None for m in named] == ["dataset.csv", "classes"]
    for key in ("dataset.csv", "classes"):
        assert OmegaConf.select(cfg, key) is not None, key

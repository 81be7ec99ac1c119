from __future__ import annotations

from pathlib import Path

import pytest

from segser.data.clips import Clip
from segser.data.splits import loso_split, random_split, speaker_split
from segser.errors import SegserError

CLASSES = ["angry", "happy", "sad", "neutral"]


def corpus(per_label: int = 20) -> list[Clip]:
    clips = []
    for session in range(1, 6):
        for i in range(per_label):
            for label in CLASSES:
                speaker = f"Ses0{session}" + "FM"[i % 2]
                cid = f"Ses0{session}_{label}_{i:03d}"
                clips.append(Clip(cid, Path(cid), label, speaker, f"Ses0{session}", 2.0))
    return clips


def assert_partition(split, n: int) -> None:
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(n))


def test_random_split_is_8_1_1_stratified_and_seeded() -> None:
    clips = corpus()
    split = random_split(clips, (0.8, 0.1, 0.1), seed=3)
    assert_partition(split, len(clips))
    assert (len(split.train), len(split.val), len(split.test)) == (320, 40, 40)
    for part in (split.train, split.val, split.test):  # each label keeps its 1/4 share
        labels = [clips[i].label for i in part]
        assert {labels.count(c) for c in CLASSES} == {len(part) // 4}
    assert random_split(clips, (0.8, 0.1, 0.1), seed=3) == split
    assert random_split(clips, (0.8, 0.1, 0.1), seed=4).test != split.test


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_loso_tests_on_one_whole_session(fold: int) -> None:
    clips = corpus()
    split = loso_split(clips, fold, val_fraction=0.1, seed=0)
    assert_partition(split, len(clips))
    test_sessions = {clips[i].session for i in split.test}
    assert test_sessions == {f"Ses0{fold}"}
    assert len(split.test) == 80  # the whole session
    seen = {clips[i].session for i in split.train + split.val}
    assert f"Ses0{fold}" not in seen
    test_speakers = {clips[i].speaker for i in split.test}
    assert not test_speakers & {clips[i].speaker for i in split.train}


def test_loso_fold_out_of_range_is_one_clear_error() -> None:
    with pytest.raises(SegserError, match=r"split.fold=6 .* 5 sessions"):
        loso_split(corpus(2), 6, 0.1, 0)


def test_speaker_split_holds_out_named_speakers() -> None:
    clips = corpus()
    split = speaker_split(clips, ["Ses05F", "Ses02M"], 0.1, seed=0)
    assert_partition(split, len(clips))
    assert {clips[i].speaker for i in split.test} == {"Ses05F", "Ses02M"}
    assert not {"Ses05F", "Ses02M"} & {clips[i].speaker for i in split.train + split.val}
    with pytest.raises(SegserError, match="unknown speakers"):
        speaker_split(clips, ["Ses09F"], 0.1, 0)


def test_a_split_with_an_empty_set_is_one_clear_error() -> None:
    tiny = corpus(1)[:6]  # 6 clips, 1-2 per label: stratified 10% rounds to nothing
    with pytest.raises(SegserError, match=r"leaves the val and test set empty with 6 clips"):
        random_split(tiny, (0.8, 0.1, 0.1), 0)


def test_random_split_refuses_ratios_that_do_not_sum_to_one(tone_clips) -> None:
    """Without Hydra too: [0.5, 0.3, 0.1] was silently rescaled to 5:3:1 before."""
    with pytest.raises(SegserError, match=r"split\.ratios=\[0\.5, 0\.3, 0\.1\] .*sum to 1"):
        random_split(tone_clips, (0.5, 0.3, 0.1), seed=0)

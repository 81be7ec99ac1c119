from __future__ import annotations

import re
from pathlib import Path

import pytest

from segser.data.corpora.clips import Clip
from segser.data.splits import (
    loso_split,
    random_split,
    speaker_folds,
    speaker_folds_split,
    speaker_split,
)
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
    split = speaker_split(clips, ["Ses05F", "Ses02M"], 1, seed=0)
    assert_partition(split, len(clips))
    assert {clips[i].speaker for i in split.test} == {"Ses05F", "Ses02M"}
    assert not {"Ses05F", "Ses02M"} & {clips[i].speaker for i in split.train + split.val}
    with pytest.raises(SegserError, match="unknown speakers"):
        speaker_split(clips, ["Ses09F"], 1, 0)


def test_speaker_split_validates_on_whole_speakers_drawn_by_seed() -> None:
    """Issue 26.3: no validation speaker trains; the draw is reproducible and seed-dependent."""
    clips = speaker_corpus(EMODB_SPEAKERS)
    drawn = []
    for seed in range(6):
        split = speaker_split(clips, ["03", "08"], val_speakers=2, seed=seed)
        assert_partition(split, len(clips))
        val = {clips[i].speaker for i in split.val}
        assert len(val) == 2 and not val & {clips[i].speaker for i in split.train}
        assert not val & {"03", "08"}
        assert split.description["val_speakers"] == sorted(val)
        assert speaker_split(clips, ["03", "08"], 2, seed=seed).val == split.val
        drawn.append(tuple(sorted(val)))
    assert len(set(drawn)) > 1
    with pytest.raises(SegserError, match=re.escape("val_speakers=6 needs 1..5")):
        speaker_split(clips, ["03", "08"], 6, seed=0)


def test_the_recipe_validates_on_whole_speakers() -> None:
    from tests.hydra_app import composed

    cfg = composed("train", ["experiment=real_speech", "dataset=demo"])
    assert cfg.split._target_.endswith("speaker_split") and cfg.split.val_speakers >= 1


def test_a_split_with_an_empty_set_is_one_clear_error() -> None:
    tiny = corpus(1)[:6]  # 6 clips, 1-2 per label: stratified 10% rounds to nothing
    with pytest.raises(SegserError, match=r"leaves the val and test set empty with 6 clips"):
        random_split(tiny, (0.8, 0.1, 0.1), 0)


def test_random_split_refuses_ratios_that_do_not_sum_to_one(tone_clips) -> None:
    """Without Hydra too: [0.5, 0.3, 0.1] was silently rescaled to 5:3:1 before."""
    with pytest.raises(SegserError, match=r"split\.ratios=\[0\.5, 0\.3, 0\.1\] .*sum to 1"):
        random_split(tone_clips, (0.5, 0.3, 0.1), seed=0)


EMODB_SPEAKERS = ["03", "08", "09", "10", "11", "12", "13", "14"]


def speaker_corpus(speakers: list[str], per_label: int = 3) -> list[Clip]:
    return [
        Clip(f"{s}{label}{i}", Path(f"{s}{label}{i}"), label, s, s, 2.0)
        for s in speakers
        for label in CLASSES
        for i in range(per_label)
    ]


def test_speaker_folds_deal_sorted_speakers_round_robin_independent_of_seed() -> None:
    assert speaker_folds(EMODB_SPEAKERS[::-1], 4) == {
        "03": 1, "08": 2, "09": 3, "10": 4, "11": 1, "12": 2, "13": 3, "14": 4,
    }  # fmt: skip
    # numeric ids sort as numbers, so "9" comes before "10"
    assert speaker_folds(["10", "9", "1001", "2"], 2) == {"2": 1, "9": 2, "10": 1, "1001": 2}


@pytest.mark.parametrize("num_folds", [2, 3, 4])
def test_every_speaker_is_tested_exactly_once_and_never_shares_sets(num_folds: int) -> None:
    clips = speaker_corpus(EMODB_SPEAKERS)
    tested: list[str] = []
    for fold in range(1, num_folds + 1):
        split = speaker_folds_split(clips, fold, num_folds, val_speakers=1, seed=fold)
        assert_partition(split, len(clips))
        speakers = {
            name: {clips[i].speaker for i in getattr(split, name)}
            for name in ("train", "val", "test")
        }
        assert not speakers["train"] & speakers["test"]
        assert not speakers["val"] & (speakers["train"] | speakers["test"])
        assert len(speakers["val"]) == 1
        assert sorted(speakers["test"]) == split.description["test_speakers"]
        tested.extend(speakers["test"])
    assert sorted(tested) == EMODB_SPEAKERS


def test_speaker_folds_test_sets_do_not_depend_on_the_seed() -> None:
    clips = speaker_corpus(EMODB_SPEAKERS)
    one = speaker_folds_split(clips, fold=2, num_folds=4, val_speakers=1, seed=1)
    other = speaker_folds_split(clips, fold=2, num_folds=4, val_speakers=1, seed=7)
    assert one.test == other.test
    assert {clips[i].speaker for i in one.test} == {"08", "12"}


def test_speaker_folds_bad_settings_are_one_clear_error() -> None:
    clips = speaker_corpus(EMODB_SPEAKERS[:3])
    with pytest.raises(SegserError, match=re.escape("num_folds=4 needs 2..3")):
        speaker_folds_split(clips, 1, 4, 1, 0)
    with pytest.raises(SegserError, match="fold=3 is out of range"):
        speaker_folds_split(clips, 3, 2, 1, 0)
    with pytest.raises(SegserError, match=re.escape("val_speakers=1 needs 1..0")):
        speaker_folds_split(clips, 1, 2, 1, 0)


def test_speaker_split_matches_numeric_ids_given_as_ints() -> None:
    clips = speaker_corpus(EMODB_SPEAKERS)
    split = speaker_split(clips, [3, 8], val_speakers=1, seed=0)  # Hydra parses 03 as 3
    assert {clips[i].speaker for i in split.test} == {"03", "08"}


def test_speaker_folds_ranges_both_ends() -> None:
    """num_folds 2..speakers (the top end is leave-one-speaker-out), val_speakers 1..rest - 1."""
    speakers = EMODB_SPEAKERS[:5]
    clips = speaker_corpus(speakers)
    assert speaker_folds(speakers, 2) == {"03": 1, "08": 2, "09": 1, "10": 2, "11": 1}
    assert speaker_folds(speakers, 5) == {s: i + 1 for i, s in enumerate(speakers)}
    for bad in (1, 6):
        with pytest.raises(SegserError, match=re.escape(f"num_folds={bad} needs 2..5")):
            speaker_folds(speakers, bad)
    # leave one speaker out: 4 training speakers, of which 1..3 may validate
    for val_speakers in (1, 3):
        split = speaker_folds_split(clips, 5, 5, val_speakers, seed=0)
        assert {clips[i].speaker for i in split.test} == {"11"}
        assert len({clips[i].speaker for i in split.val}) == val_speakers
    for bad in (0, 4):
        with pytest.raises(SegserError, match=re.escape(f"val_speakers={bad} needs 1..3")):
            speaker_folds_split(clips, 5, 5, bad, seed=0)

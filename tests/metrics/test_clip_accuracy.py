"""Clip accuracies against values worked by hand from the paper's definitions (section 3.3)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import Tensor

from segser.metrics import (
    AbsoluteClipAccuracy,
    AverageLogitsClipAccuracy,
    BestClipAccuracy,
    SegmentAccuracy,
    StandardClipAccuracy,
    clip_summary,
    clip_votes,
)

NUM_CLASSES = 4  # class 3 never occurs as a target

# clip id -> (target, segment logits). Segment argmax (ties -> lowest index) in brackets.
HAND_CLIPS: dict[int, tuple[int, list[list[float]]]] = {
    # votes 0:2 1:1 -> unique majority 0, right; mean [4/3, 1/3, 0, 0] -> 0, right; 1 wrong segment
    10: (0, [[2, 0, 0, 0], [2, 0, 0, 0], [0, 1, 0, 0]]),  # [0, 0, 1]
    # votes tie 0:1 1:1 -> SCA wrong, BCA right (1 is among the most voted); mean [1.5, .5] -> 0
    20: (1, [[3, 0, 0, 0], [0, 1, 0, 0]]),  # [0, 1]
    # one-segment clip, right: right under every rule
    30: (2, [[0, 0, 5, 0]]),  # [2]
    # ALCA differs from the vote: votes 1:2 0:1 -> majority 1 wrong; mean [3, 2/3, 0, 0] -> 0 right
    40: (0, [[0, 1, 0, 0], [0, 1, 0, 0], [9, 0, 0, 0]]),  # [1, 1, 0]
    # argmax tie inside a segment: [2, 2, 0, 0] -> 0 (wrong); votes tie 0:1 1:1;
    # mean [1, 2.5, 0, 0] -> 1 right
    50: (1, [[2, 2, 0, 0], [0, 3, 0, 0]]),  # [0, 1]
    # all four logits equal: the segment argmax and the mean argmax are 0, the target
    60: (0, [[1, 1, 1, 1]]),  # [0]
    # plain one-segment clip, right
    70: (0, [[4, 0, 0, 0]]),  # [0]
}
# 13 segments, right ones: 2 + 1 + 1 + 1 + 1 + 1 + 1 = 8
# ACA: clips 30, 60, 70 have no wrong segment               -> 3/7
# SCA: unique right majority in 10, 30, 60, 70               -> 4/7
# BCA: target among most voted in all clips but 40            -> 6/7
# ALCA: mean-logit argmax right in all clips but 20           -> 6/7
HAND_EXPECTED = {"SA": 8 / 13, "ACA": 3 / 7, "SCA": 4 / 7, "BCA": 6 / 7, "ALCA": 6 / 7}

METRICS = {
    "SA": SegmentAccuracy,
    "ACA": AbsoluteClipAccuracy,
    "SCA": StandardClipAccuracy,
    "BCA": BestClipAccuracy,
    "ALCA": AverageLogitsClipAccuracy,
}


def hand_segments() -> tuple[Tensor, Tensor, Tensor]:
    """The hand case as flat segment tensors (logits [13, 4], target [13], clip_ids [13])."""
    logits, target, clip_ids = [], [], []
    for clip_id, (label, rows) in HAND_CLIPS.items():
        logits += rows
        target += [label] * len(rows)
        clip_ids += [clip_id] * len(rows)
    return torch.tensor(logits, dtype=torch.float32), torch.tensor(target), torch.tensor(clip_ids)


def reference_accuracies(logits: Tensor, target: Tensor, clip_ids: Tensor) -> dict[str, float]:
    """Straight Python transcription of section 3.3, one clip at a time, as a reference."""
    segments_of: dict[int, list[int]] = {}
    for index, clip_id in enumerate(clip_ids.tolist()):
        segments_of.setdefault(clip_id, []).append(index)
    predictions = [
        max(range(len(row)), key=lambda c, row=row: (row[c], -c)) for row in logits.tolist()
    ]
    hits = {"ACA": 0, "SCA": 0, "BCA": 0, "ALCA": 0}
    for indices in segments_of.values():
        label = int(target[indices[0]])
        p = [predictions[i] for i in indices]
        counts = Counter(p)
        top = max(counts.values())
        most_voted = {c for c, n in counts.items() if n == top}
        mean = logits[indices].double().mean(dim=0).tolist()
        mean_prediction = max(range(len(mean)), key=lambda c: (mean[c], -c))
        hits["ACA"] += all(q == label for q in p)
        hits["SCA"] += most_voted == {label}
        hits["BCA"] += label in most_voted
        hits["ALCA"] += mean_prediction == label
    result = {key: value / len(segments_of) for key, value in hits.items()}
    result["SA"] = sum(q == t for q, t in zip(predictions, target.tolist(), strict=True)) / len(
        predictions
    )
    return result


def computed(logits: Tensor, target: Tensor, clip_ids: Tensor, batches: int = 1) -> dict:
    """Every metric fed the same segments in `batches` update calls."""
    result = {}
    for key, metric_class in METRICS.items():
        metric = metric_class(num_classes=logits.shape[1])
        for chunk in zip(
            logits.tensor_split(batches),
            target.tensor_split(batches),
            clip_ids.tensor_split(batches),
            strict=True,
        ):
            metric.update(*chunk)
        value = metric.compute()
        assert value.shape == () and value.is_floating_point()
        result[key] = value.item()
    return result


def test_hand_case_one_update() -> None:
    assert computed(*hand_segments()) == pytest.approx(HAND_EXPECTED)


def test_reference_agrees_with_hand_values() -> None:
    # Guards the reference used on random data below.
    assert reference_accuracies(*hand_segments()) == pytest.approx(HAND_EXPECTED)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_case_shuffled_and_split_over_updates(seed: int) -> None:
    logits, target, clip_ids = hand_segments()
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(seed))
    # 5 update calls: most clips have segments in several of them
    result = computed(logits[order], target[order], clip_ids[order], batches=5)
    assert result == pytest.approx(HAND_EXPECTED)


def test_one_segment_clips_make_all_clip_accuracies_equal_sa() -> None:
    # Three one-segment clips: argmaxes 1 (right), 0 (tie 0/1 -> 0, wrong: target 1), 2 (right).
    logits = torch.tensor([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    target = torch.tensor([1, 1, 2])
    result = computed(logits, target, torch.tensor([7, 8, 9]))
    assert result == pytest.approx(dict.fromkeys(METRICS, 2 / 3))


def test_alca_uses_raw_logits_not_votes() -> None:
    # One clip, target 0: votes 1, 1, 0 (majority 1, wrong) but mean logits [10/3, 2/3] -> 0.
    logits = torch.tensor([[0.0, 1.0], [0.0, 1.0], [10.0, 0.0]])
    target = torch.zeros(3, dtype=torch.long)
    result = computed(logits, target, torch.zeros(3, dtype=torch.long))
    assert result == pytest.approx({"SA": 1 / 3, "ACA": 0.0, "SCA": 0.0, "BCA": 0.0, "ALCA": 1.0})


@pytest.mark.parametrize("seed", range(4))
def test_random_clips_match_reference(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    clips, num_classes = 60, 4
    sizes = torch.randint(1, 7, (clips,), generator=generator)
    clip_ids = torch.repeat_interleave(torch.randperm(1000, generator=generator)[:clips], sizes)
    labels = torch.randint(0, num_classes, (clips,), generator=generator)
    target = torch.repeat_interleave(labels, sizes)
    # Quarter steps in a small range: exact sums and many ties in argmax and in votes.
    logits = torch.randint(-3, 4, (len(target), num_classes), generator=generator) / 4
    order = torch.randperm(len(target), generator=generator)
    logits, target, clip_ids = logits[order], target[order], clip_ids[order]
    assert computed(logits, target, clip_ids, batches=3) == pytest.approx(
        reference_accuracies(logits, target, clip_ids)
    )


def test_clip_votes_by_hand() -> None:
    logits, _, clip_ids = hand_segments()
    votes = clip_votes(logits, clip_ids, NUM_CLASSES)
    assert votes.clip_ids.tolist() == [10, 20, 30, 40, 50, 60, 70]
    assert votes.segments.tolist() == [3, 2, 1, 3, 2, 1, 1]
    assert votes.votes.tolist() == [
        [2, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 2, 0, 0],
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
    ]
    torch.testing.assert_close(votes.mean_logits[0], torch.tensor([4 / 3, 1 / 3, 0, 0]))
    assert votes.majority_prediction.tolist() == [0, 0, 2, 1, 0, 0, 0]
    assert votes.mean_logits_prediction.tolist() == [0, 0, 2, 0, 1, 0, 0]


def test_half_precision_logits() -> None:
    logits, target, clip_ids = hand_segments()
    assert computed(logits.bfloat16(), target, clip_ids) == pytest.approx(HAND_EXPECTED)


def test_mixed_targets_in_a_clip_raise() -> None:
    logits, target, clip_ids = hand_segments()
    target[1] = 3  # second segment of clip 10
    metric = AverageLogitsClipAccuracy(NUM_CLASSES)
    metric.update(logits, target, clip_ids)
    with pytest.raises(ValueError, match=r"different targets.*\[10\]"):
        metric.compute()


def test_mixed_targets_across_updates_raise() -> None:
    metric = BestClipAccuracy(2)
    metric.update(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([5]))
    metric.update(torch.zeros(1, 2), torch.tensor([1]), torch.tensor([5]))
    with pytest.raises(ValueError, match="different targets"):
        metric.compute()


@pytest.mark.parametrize(
    ("logits", "target", "clip_ids", "match"),
    [
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            r"\[B, 4\]",
        ),
        (
            torch.zeros(2, 4),
            torch.zeros(3, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            "target",
        ),
        (torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(2), "clip_ids"),
        (
            torch.zeros(2, 4, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            "floating",
        ),
    ],
)
@pytest.mark.parametrize("metric_class", [SegmentAccuracy, StandardClipAccuracy])
def test_malformed_update_raises(
    metric_class: type, logits: Tensor, target: Tensor, clip_ids: Tensor, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        metric_class(NUM_CLASSES).update(logits, target, clip_ids)


def test_target_out_of_range_raises() -> None:
    logits, target, clip_ids = torch.zeros(2, 4), torch.tensor([0, 4]), torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        SegmentAccuracy(NUM_CLASSES).update(logits, target, clip_ids)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        clip_summary(logits, target, clip_ids, NUM_CLASSES)


def test_reset_forgets_segments() -> None:
    logits, target, clip_ids = hand_segments()
    metric = StandardClipAccuracy(NUM_CLASSES)
    metric.update(logits, 1 - target.clamp(max=1), clip_ids)  # all wrong under another label set
    metric.reset()
    metric.update(logits, target, clip_ids)
    assert metric.compute().item() == pytest.approx(HAND_EXPECTED["SCA"])


def test_compute_before_update_is_zero() -> None:
    for metric_class in METRICS.values():
        with pytest.warns(UserWarning, match="before the ``update``"):
            assert metric_class(NUM_CLASSES).compute().item() == 0.0


def test_declared_metric_attributes() -> None:
    for metric_class in METRICS.values():
        assert metric_class.is_differentiable is False
        assert metric_class.higher_is_better is True
        assert metric_class.full_state_update is False

"""ClipMetrics: one pass equals the single metrics; UA/WA/confusion worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from segser.metrics import ClipMetrics, class_recall
from tests.metrics.test_clip_accuracy import (
    HAND_EXPECTED,
    METRICS,
    NUM_CLASSES,
    computed,
    hand_segments,
)

# Clip decisions in the hand case (see test_clip_accuracy.HAND_CLIPS), clips 10..70:
#   targets          0 1 2 0 1 0 0
#   mean-logits rule 0 0 2 0 1 0 0
# Rows = true class: class 0 -> all four right; class 1 -> clip 20 as 0, clip 50 right;
# class 3 never a target. Recall [1, 1/2, 1, absent] -> UA = (1 + 1/2 + 1) / 3; WA = 6/7.
HAND_CONFUSION = [[4, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_hand_case_all_metrics() -> None:
    confusion, recall, ua, wa = HAND_CONFUSION, [1.0, 0.5, 1.0], 5 / 6, 6 / 7
    metric = ClipMetrics(NUM_CLASSES)
    logits, target, clip_ids = hand_segments()
    order = torch.randperm(len(target), generator=torch.Generator().manual_seed(3))
    for chunk in zip(
        logits[order].split(4), target[order].split(4), clip_ids[order].split(4), strict=True
    ):
        metric.update(*chunk)
    result = metric.compute()
    assert {key: result[key].item() for key in HAND_EXPECTED} == pytest.approx(HAND_EXPECTED)
    assert result["UA"].item() == pytest.approx(ua)
    assert result["WA"].item() == pytest.approx(wa)
    assert result["confusion_matrix"].dtype == torch.int64
    assert result["confusion_matrix"].tolist() == confusion
    assert result["per_class_recall"][:3].tolist() == pytest.approx(recall)
    assert math.isnan(result["per_class_recall"][3].item())  # class 3 absent from the targets


def test_absent_class_predicted_does_not_enter_ua() -> None:
    # Two clips of class 0, one predicted 0 and one predicted 2: class 0 recall 1/2; classes 1
    # and 2 are absent from the targets (2 is predicted), so UA = 1/2, not (1/2 + 0 + 0) / 3.
    recall, ua, wa = class_recall(torch.tensor([[1, 0, 1], [0, 0, 0], [0, 0, 0]]))
    assert ua.item() == pytest.approx(0.5)
    assert wa.item() == pytest.approx(0.5)
    assert recall[0].item() == pytest.approx(0.5)
    assert recall[1:].isnan().all()


def test_empty_confusion_gives_zero_not_nan() -> None:
    _, ua, wa = class_recall(torch.zeros(3, 3, dtype=torch.long))
    assert (ua.item(), wa.item()) == (0.0, 0.0)


@pytest.mark.parametrize("seed", range(3))
def test_collection_equals_single_metrics(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    clips = 50
    sizes = torch.randint(1, 8, (clips,), generator=generator)
    clip_ids = torch.repeat_interleave(torch.arange(clips) * 3, sizes)
    target = torch.repeat_interleave(torch.randint(0, 5, (clips,), generator=generator), sizes)
    logits = torch.randint(-2, 3, (len(target), 5), generator=generator) / 2
    order = torch.randperm(len(target), generator=generator)
    logits, target, clip_ids = logits[order], target[order], clip_ids[order]
    expected = computed(logits, target, clip_ids, batches=4)
    metric = ClipMetrics(5)
    for chunk in zip(logits.chunk(4), target.chunk(4), clip_ids.chunk(4), strict=True):
        metric.update(*chunk)
    result = metric.compute()
    assert {key: result[key].item() for key in METRICS} == pytest.approx(expected)
    # WA by the mean-logits rule is ALCA by definition.
    assert result["WA"].item() == pytest.approx(expected["ALCA"])
    # UA and the confusion matrix against a per-clip count from the clip table it scored.
    clips = metric.clips
    confusion = torch.zeros(5, 5, dtype=torch.long)
    for true, predicted in zip(clips.target, clips.mean_logits_prediction, strict=True):
        confusion[true, predicted] += 1
    assert torch.equal(result["confusion_matrix"], confusion)
    present = confusion.sum(1) > 0
    ua = (confusion.diagonal()[present] / confusion.sum(1)[present]).mean()
    assert result["UA"].item() == pytest.approx(ua.item())


def test_the_clip_table_of_the_hand_case() -> None:
    metric = ClipMetrics(NUM_CLASSES)
    logits, target, clip_ids = hand_segments()
    metric.update(logits, target, clip_ids)
    metric.compute()
    clips = metric.clips
    assert clips.clip_ids.tolist() == [10, 20, 30, 40, 50, 60, 70]
    assert clips.target.tolist() == [0, 1, 2, 0, 1, 0, 0]
    assert clips.segments.tolist() == [3, 2, 1, 3, 2, 1, 1]
    assert clips.mean_logits_prediction.tolist() == [0, 0, 2, 0, 1, 0, 0]
    assert clips.majority_prediction.tolist() == [0, 0, 2, 1, 0, 0, 0]  # 20 and 50 tie 0/1 -> 0
    assert clips.mean_logits.shape == (7, NUM_CLASSES)
    # Every segment finds its clip's row; the segments' logits are kept in their order.
    assert torch.equal(clips.clip_ids[clips.segment_clip], clip_ids)
    assert torch.equal(clips.segment_logits, logits)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ClipMetrics(1)


NAN, INF = float("nan"), float("inf")
# clip id -> (target, segment logits); worked by hand: a non-finite segment votes for nothing
# and is wrong; a clip whose mean logits are not all finite has no ALCA decision (wrong).
DIVERGED_CLIPS = {
    # votes [0, 2, 0] of 3 segments: SA 2/3, ACA no, SCA/BCA yes; mean has NaN -> ALCA wrong.
    # Today torch.argmax picks the NaN column (the target) for segment 2 and the mean.
    0: (1, [[0, 5, 0], [0, NAN, 0], [0, 4, 0]]),
    # votes [1, 0, 0] of 2: SA 1/2, ACA no, SCA/BCA yes; mean [inf, 0, 0] -> ALCA wrong.
    1: (0, [[INF, 0, 0], [2, 0, 0]]),
    # all right under every rule.
    2: (2, [[0, 0, 3], [0, 0, 1]]),
    # every segment NaN, target 0: no votes, no decision; wrong under every rule
    # (today argmax of all-NaN is 0: right under every rule).
    3: (0, [[NAN, NAN, NAN], [NAN, NAN, NAN]]),
}


def _diverged_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits, target, clip_ids = [], [], []
    for clip, (label, segments) in DIVERGED_CLIPS.items():
        logits += segments
        target += [label] * len(segments)
        clip_ids += [clip] * len(segments)
    return torch.tensor(logits), torch.tensor(target), torch.tensor(clip_ids)


def test_non_finite_logits_are_never_right() -> None:
    from segser.metrics import SegmentAccuracy

    metrics = ClipMetrics(3)
    metrics.update(*_diverged_batch())
    result = metrics.compute()
    assert float(result["SA"]) == pytest.approx(5 / 9)  # 2 + 1 + 2 + 0 right of 9 segments
    assert float(result["ACA"]) == pytest.approx(1 / 4)
    assert float(result["SCA"]) == pytest.approx(3 / 4)
    assert float(result["BCA"]) == pytest.approx(3 / 4)
    assert float(result["ALCA"]) == pytest.approx(1 / 4)
    # mean-logits decisions: none, none, 2, none
    recall, confusion = [0.0, 0.0, 1.0], [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
    assert result["per_class_recall"].tolist() == pytest.approx(recall)
    assert float(result["UA"]) == pytest.approx(sum(recall) / 3)
    assert float(result["WA"]) == pytest.approx(sum(map(sum, confusion)) / 4)
    assert result["confusion_matrix"].tolist() == confusion
    segment_accuracy = SegmentAccuracy(3)
    segment_accuracy.update(*_diverged_batch())
    assert float(segment_accuracy.compute()) == pytest.approx(5 / 9)


def test_all_nan_logits_with_target_zero_score_zero() -> None:
    metrics = ClipMetrics(4)
    metrics.update(torch.full((6, 4), NAN), torch.zeros(6, dtype=torch.long), torch.arange(6) // 2)
    result = metrics.compute()
    for name in ("SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA"):
        assert float(result[name]) == 0.0, name
    assert metrics.clips.mean_logits_prediction.tolist() == [-1, -1, -1]  # NO_DECISION, not 0

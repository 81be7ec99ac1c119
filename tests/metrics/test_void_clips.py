"""A clip whose segments all have non-finite logits casts no vote: no majority class (never
class 0), in the clip table, the metrics, the run's predictions.csv and segser.predict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segser.metrics.clip_accuracy import NO_DECISION, clip_summary, clip_votes
from segser.metrics.collection import ClipMetrics
from segser.predict import clip_decisions
from segser.runs.outputs import prediction_rows

CLASSES = ["angry", "happy", "sad", "neutral"]
NAN, INF = math.nan, math.inf


def _segments() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip 0: every segment NaN or Inf; clip 1: one void segment and one for sad; clip 2: one
    segment for happy. Every target is class 0, the class a void argmax would fall back to."""
    logits = torch.tensor(
        [
            [NAN, 0.0, 0.0, 0.0],
            [0.0, INF, 0.0, 0.0],
            [NAN, NAN, NAN, NAN],
            [1.0, NAN, 0.0, 0.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 2.0, 1.0, 0.0],
        ]
    )
    return logits, torch.zeros(6, dtype=torch.long), torch.tensor([0, 0, 0, 1, 1, 2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_a_clip_of_void_votes_has_no_majority(dtype) -> None:
    logits, _, clips = _segments()
    votes = clip_votes(logits.to(dtype), clips, 4)
    assert votes.votes.tolist() == [[0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]
    assert votes.majority_prediction.tolist() == [NO_DECISION, 2, 1]
    assert votes.mean_logits_prediction.tolist() == [NO_DECISION, NO_DECISION, 1]


def test_void_clips_are_wrong_under_every_clip_rule() -> None:
    logits, target, clips = _segments()
    summary = clip_summary(logits, target, clips, 4)
    assert summary.best_correct.tolist() == [False, False, False]
    assert summary.standard_correct.tolist() == [False, False, False]
    assert summary.absolute_correct.tolist() == [False, False, False]
    metrics = ClipMetrics(4)
    metrics.update(logits, target, clips)
    values = {k: float(v) for k, v in metrics.compute().items() if v.ndim == 0}
    assert values["SCA"] == values["BCA"] == values["ALCA"] == values["ACA"] == 0.0


def test_predictions_csv_names_no_class_for_a_void_clip() -> None:
    logits, target, clips = _segments()
    summary = clip_summary(logits, target, clips, 4)
    rows = prediction_rows(summary, np.array([0, 1, 2, 0, 1, 0]), ["a", "b", "c"], CLASSES,
                           0.5, 1.0)  # fmt: skip
    majority = {row["clip_id"]: row["clip_prediction_majority"] for row in rows}
    assert majority == {"a": "none", "b": "sad", "c": "happy"}
    assert [row["segment_prediction"] for row in rows[:4]] == ["none"] * 4


def test_predict_names_no_class_for_a_file_of_void_segments() -> None:
    decided = clip_decisions(torch.full((3, 4), NAN), CLASSES)
    assert decided["majority"]["prediction"] == "none"
    assert decided["majority"]["votes"] == dict.fromkeys(CLASSES, 0)
    assert decided["mean_logits"]["prediction"] == "none"

"""All clip metrics of one evaluation in one pass over the segments, and the clip table behind them.

UA, WA and the confusion matrix use the mean-logits clip decision (ALCA's, the paper's headline
metric). A clip without a decision (non-finite logits) is wrong in UA/WA and sits in no column
of the confusion matrix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix

from segser.metrics.clip_accuracy import NO_DECISION, ClipMetricBase, ClipSummary, fraction

# The scalar accuracies compute() returns, in the order tables show them.
ACCURACY_NAMES: tuple[str, ...] = ("SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA")


def class_recall(confusion: Tensor, support: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class recall, UA and WA from a [C, C] confusion matrix (rows = true class).

    `support` [C] counts each class's clips, including undecided ones the matrix lacks
    (default: the matrix's row sums). A class absent from the targets has no recall (NaN in
    the per-class vector) and is left out of UA, which averages over the classes present; an
    absent class would otherwise pull UA down (as 0) or make it NaN. Empty input gives 0.0.
    """
    per_class = confusion.sum(dim=1) if support is None else support
    recall = confusion.diagonal().double() / per_class  # NaN exactly where a class is absent
    ua = torch.nan_to_num(recall.nanmean(), nan=0.0)
    wa = confusion.diagonal().sum().double() / per_class.sum().clamp(min=1)
    return recall.float(), ua.float(), wa.float()


class ClipMetrics(ClipMetricBase):
    """SA, ACA, SCA, ALCA, BCA, UA, WA, per-class recall and the clip confusion matrix at once.

    Holds the segment states once, so one ``update`` per batch feeds every metric; after
    ``compute`` the clip table it scored (gathered from every rank) stays in ``clips``.
    """

    # Mixes accuracies (higher is better) with a confusion matrix (no direction).
    higher_is_better = None

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.clips: ClipSummary | None = None

    def compute(self) -> dict[str, Tensor]:
        """Accuracies as float scalars, plus per_class_recall [C] and confusion_matrix [C, C]."""
        self.clips = summary = self.summary()
        prediction = summary.mean_logits_prediction
        decided = prediction != NO_DECISION
        confusion = multiclass_confusion_matrix(
            prediction[decided], summary.target[decided], self.num_classes
        )
        support = torch.bincount(summary.target, minlength=self.num_classes)
        recall, ua, wa = class_recall(confusion, support)
        segments = summary.segments.sum()
        sa = summary.correct_segments.sum().float() / segments.clamp(min=1)
        return {
            "SA": sa,
            "ACA": fraction(summary.absolute_correct),
            "SCA": fraction(summary.standard_correct),
            "ALCA": fraction(summary.average_logits_correct),
            "BCA": fraction(summary.best_correct),
            "UA": ua,
            "WA": wa,
            "per_class_recall": recall,
            "confusion_matrix": confusion.long(),
        }

"""All clip metrics of one evaluation in one pass over the segments, plus per-clip predictions.

UA/WA/confusion use one clip decision: the mean-logits rule (ALCA's, the paper's headline
metric) by default, or the majority vote (ties to the lowest class index). A clip without a
decision (non-finite logits) is wrong in UA/WA and sits in no column of the confusion matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics.functional.classification import multiclass_confusion_matrix

from segser.metrics.clip_accuracy import (
    NO_DECISION,
    ClipMetricBase,
    ClipSummary,
    ClipVotes,
    fraction,
)

ClipRule = Literal["mean_logits", "majority"]
# The scalar accuracies compute() returns, in the order tables show them.
ACCURACY_NAMES: tuple[str, ...] = ("SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA")
CLIP_RULES: tuple[str, ...] = ("mean_logits", "majority")


def clip_decision(votes: ClipVotes, clip_rule: ClipRule) -> Tensor:
    """[K] predicted class of each clip under the named rule."""
    if clip_rule == "mean_logits":
        return votes.mean_logits_prediction
    if clip_rule == "majority":
        return votes.majority_prediction
    raise ValueError(f"clip_rule must be one of {CLIP_RULES}, got {clip_rule!r}")


def clip_predictions(votes: ClipVotes) -> dict[str, Tensor]:
    """Per-clip columns for a predictions file, one row per clip sorted by clip id.

    Keys: clip_id, segments, mean_logits_prediction, majority_prediction, mean_logits [K, C],
    and target when `votes` is a ClipSummary (labelled data).
    """
    columns = {
        "clip_id": votes.clip_ids,
        "segments": votes.segments,
        "mean_logits_prediction": votes.mean_logits_prediction,
        "majority_prediction": votes.majority_prediction,
        "mean_logits": votes.mean_logits,
    }
    if isinstance(votes, ClipSummary):
        columns["target"] = votes.target
    return columns


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

    Holds the segment states once, so one ``update`` per batch feeds every metric.
    """

    # Mixes accuracies (higher is better) with a confusion matrix (no direction).
    higher_is_better = None

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        clip_rule: ClipRule = "mean_logits",
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes, **kwargs)
        if clip_rule not in CLIP_RULES:
            raise ValueError(f"clip_rule must be one of {CLIP_RULES}, got {clip_rule!r}")
        if class_names is None:
            class_names = [str(index) for index in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} names for num_classes={num_classes}"
            )
        self.class_names = list(class_names)
        self.clip_rule = clip_rule

    def compute(self) -> dict[str, Tensor]:
        """Accuracies as float scalars, plus per_class_recall [C] and confusion_matrix [C, C]."""
        summary = self.summary()
        prediction = clip_decision(summary, self.clip_rule)
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

    def scalars(self, result: dict[str, Tensor]) -> dict[str, Tensor]:
        """Flatten ``compute()``'s dict to scalars a logger accepts: accuracies + recall/<class>."""
        flat = {key: value for key, value in result.items() if value.ndim == 0}
        for name, value in zip(self.class_names, result["per_class_recall"], strict=True):
            flat[f"recall/{name}"] = value
        return flat

    def clip_predictions(self) -> dict[str, Tensor]:
        """Per-clip predictions of all stored segments, gathered across ranks (see module fn)."""
        with self.sync_context():
            summary = self.summary()
        columns = clip_predictions(summary)
        columns["prediction"] = clip_decision(summary, self.clip_rule)
        return columns

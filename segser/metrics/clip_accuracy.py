"""Segment and clip accuracies of the paper (section 3.3) as torchmetrics.

A clip's segments may arrive in any order, spread over many ``update`` calls and DDP ranks, so
the clip metrics keep every segment (list states, ``dist_reduce_fx="cat"``) and group segments
by clip id only in ``compute``. Clip ids must therefore be unique across the whole evaluation
set, not just within a batch or a rank. Argmax ties go to the lowest class index.
A padding DistributedSampler repeats segments to even out ranks, and a repeated segment votes
twice: evaluate on one device or with a sampler that does not pad.
Diverged logits are never right: a segment with a NaN or Inf logit votes for no class (and is
wrong for SA), and a clip whose mean logits are not all finite has no ALCA decision (wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

# The clip decision of a clip with no finite logits to decide by: never equal to a target.
NO_DECISION = -1


def decision_name(classes: Sequence[str], index: int) -> str:
    """A class name for a prediction index; NO_DECISION reads "none" (not classes[-1])."""
    return "none" if index == NO_DECISION else classes[index]


def segment_predictions(logits: Tensor) -> Tensor:
    """[B] argmax of each segment's logits, NO_DECISION where any logit is NaN or Inf.

    torch.argmax takes NaN as the maximum, so without this any NaN column would win.
    """
    finite = torch.isfinite(logits).all(dim=1)
    return torch.where(finite, logits.argmax(dim=1), NO_DECISION)


@dataclass(frozen=True)
class ClipVotes:
    """The clip table: one row per clip sorted by clip id, built once from the segment logits.

    Metrics, the run's predictions.csv and `segser.predict` all read their clip decisions here.
    """

    clip_ids: Tensor  # [K] int64, sorted, unique
    segments: Tensor  # [K] int64, number of segments of each clip
    votes: Tensor  # [K, C] int64, segments of the clip whose argmax is each class (finite only)
    mean_logits: Tensor  # [K, C] float, mean of the clip's raw segment logits
    segment_logits: Tensor  # [N, C] the segments' logits, in the order they came
    segment_clip: Tensor  # [N] int64, each segment's row in this table

    @property
    def majority_prediction(self) -> Tensor:
        """[K] most-voted class; a tie goes to the lowest index (torch.argmax keeps the first).

        NO_DECISION for a clip none of whose segments has finite logits (no votes).
        """
        voted = self.votes.sum(dim=1) > 0
        return torch.where(voted, self.votes.argmax(dim=1), NO_DECISION)

    @property
    def mean_logits_prediction(self) -> Tensor:
        """[K] argmax of the mean logits: ALCA's decision rule; NO_DECISION if any is not finite."""
        return segment_predictions(self.mean_logits)


@dataclass(frozen=True)
class ClipSummary(ClipVotes):
    """ClipVotes plus each clip's target, from which every clip accuracy is one comparison."""

    target: Tensor  # [K] int64, the label shared by all segments of the clip

    @property
    def correct_segments(self) -> Tensor:
        """[K] segments of the clip whose argmax is the clip's target."""
        return self.votes.gather(1, self.target.unsqueeze(1)).squeeze(1)

    @property
    def absolute_correct(self) -> Tensor:
        """[K] ACA: every segment of the clip is right."""
        return self.correct_segments == self.segments

    @property
    def best_correct(self) -> Tensor:
        """[K] BCA: the target is among the most-voted classes (ties included) with a vote."""
        most_voted = self.votes == self.votes.amax(dim=1, keepdim=True)
        # A clip without any finite segment has no votes: every class "ties" at zero.
        has_vote = self.correct_segments > 0
        return most_voted.gather(1, self.target.unsqueeze(1)).squeeze(1) & has_vote

    @property
    def standard_correct(self) -> Tensor:
        """[K] SCA: the most-voted class is unique and is the target."""
        most_voted = self.votes == self.votes.amax(dim=1, keepdim=True)
        return self.best_correct & (most_voted.sum(dim=1) == 1)

    @property
    def average_logits_correct(self) -> Tensor:
        """[K] ALCA: the argmax of the clip's mean logits is the target."""
        return self.mean_logits_prediction == self.target


def check_segments(logits: Tensor, target: Tensor, clip_ids: Tensor, num_classes: int) -> None:
    """Reject malformed batches at ``update`` time, where the caller's stack trace still helps.

    Checks shapes and dtypes only (no device sync); target range is checked where it is cheap.
    """
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits must have shape [B, {num_classes}], got {list(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    batch = logits.shape[0]
    for name, value in (("target", target), ("clip_ids", clip_ids)):
        if value.shape != (batch,):
            raise ValueError(f"{name} must have shape [{batch}], got {list(value.shape)}")
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer tensor, got {value.dtype}")


def check_target_range(target: Tensor, num_classes: int) -> None:
    """Raise if a target is not a class index in [0, num_classes)."""
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(
            f"targets must lie in [0, {num_classes}), got values in "
            f"[{int(target.min())}, {int(target.max())}]"
        )


def clip_votes(logits: Tensor, clip_ids: Tensor, num_classes: int) -> ClipVotes:
    """Group segments by clip: segment count, argmax votes and mean logits per clip (no labels)."""
    ids, inverse = torch.unique(clip_ids.long(), sorted=True, return_inverse=True)
    clips = ids.numel()
    segment_prediction = segment_predictions(logits)
    segments = torch.bincount(inverse, minlength=clips)
    voting = segment_prediction != NO_DECISION  # a diverged segment votes for no class
    votes = torch.bincount(
        (inverse * num_classes + segment_prediction)[voting], minlength=clips * num_classes
    ).view(clips, num_classes)
    # Sum in at least float32 so half-precision logits do not lose the mean.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    sums = torch.zeros(clips, num_classes, dtype=dtype, device=logits.device)
    sums.index_add_(0, inverse, logits.to(dtype))
    return ClipVotes(ids, segments, votes, sums / segments.unsqueeze(1), logits, inverse)


def clip_summary(logits: Tensor, target: Tensor, clip_ids: Tensor, num_classes: int) -> ClipSummary:
    """Group segments by clip and attach each clip's target; every clip metric derives from it.

    Raises ValueError if a clip's segments carry different targets: that is a bug upstream
    (a clip has one label), and any accuracy computed from it would be meaningless.
    """
    check_segments(logits, target, clip_ids, num_classes)
    check_target_range(target, num_classes)
    votes = clip_votes(logits, clip_ids, num_classes)
    ids, inverse = votes.clip_ids, votes.segment_clip
    target = target.long()
    lowest = torch.zeros(ids.numel(), dtype=torch.long, device=target.device)
    lowest.scatter_reduce_(0, inverse, target, reduce="amin", include_self=False)
    highest = torch.zeros_like(lowest)
    highest.scatter_reduce_(0, inverse, target, reduce="amax", include_self=False)
    mixed = lowest != highest
    if bool(mixed.any()):
        bad = ids[mixed]
        raise ValueError(
            f"{bad.numel()} clip(s) have segments with different targets, e.g. clip ids "
            f"{bad[:5].tolist()}; every segment of a clip must carry the clip's label"
        )
    return ClipSummary(**vars(votes), target=lowest)


def fraction(correct: Tensor) -> Tensor:
    """Share of True entries as a float scalar; 0.0 when empty, as torchmetrics' accuracies do."""
    if correct.numel() == 0:
        return torch.zeros((), device=correct.device)
    return correct.float().mean()


class SegmentMetric(Metric):
    """What every metric here shares: segments of `num_classes` classes in, no gradient out."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes


class ClipMetricBase(SegmentMetric):
    """Keeps every segment's logits, target and clip id; subclasses derive from `summary()`."""

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.add_state("logits", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")
        self.add_state("clip_ids", default=[], dist_reduce_fx="cat")

    def update(self, logits: Tensor, target: Tensor, clip_ids: Tensor) -> None:
        """Store a batch of segments: logits [B, C], target [B], clip_ids [B]."""
        check_segments(logits, target, clip_ids, self.num_classes)
        # float32 whatever the AMP precision, so every rank gathers the same dtype.
        self.logits.append(logits.detach().float())
        self.target.append(target.long())
        self.clip_ids.append(clip_ids.long())

    def sync(
        self,
        dist_sync_fn: Callable | None = None,
        process_group: Any = None,
        should_sync: bool = True,
        distributed_available: Callable | None = None,
    ) -> None:
        """Gather every rank's segments (torchmetrics' public `sync`), a rank without any included.

        torchmetrics stands in a 1-D float32 tensor for an empty list state, which cannot be
        gathered with other ranks' [N, C] logits or int64 ids: such a rank sends typed empties.
        """
        if isinstance(self.target, list) and not self.target:
            self.logits.append(torch.zeros(0, self.num_classes, device=self.device))
            self.target.append(torch.zeros(0, dtype=torch.long, device=self.device))
            self.clip_ids.append(torch.zeros(0, dtype=torch.long, device=self.device))
        super().sync(dist_sync_fn, process_group, should_sync, distributed_available)

    def summary(self) -> ClipSummary:
        """Per-clip summary of the stored segments (synced across ranks inside ``compute``)."""
        if isinstance(self.target, list) and not self.target:
            empty = torch.zeros(0, dtype=torch.long, device=self.device)
            logits = torch.zeros(0, self.num_classes, device=self.device)
            return clip_summary(logits, empty, empty, self.num_classes)
        return clip_summary(
            dim_zero_cat(self.logits),
            dim_zero_cat(self.target),
            dim_zero_cat(self.clip_ids),
            self.num_classes,
        )


class SegmentAccuracy(SegmentMetric):
    """SA: fraction of segments whose argmax is the target.

    Needs no grouping by clip, so it keeps two counters instead of every segment.
    """

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor, clip_ids: Tensor) -> None:
        """Count right segments; clip_ids are checked but unused (same signature as the rest)."""
        check_segments(logits, target, clip_ids, self.num_classes)
        check_target_range(target, self.num_classes)
        self.correct += (segment_predictions(logits) == target).sum()
        self.total += target.numel()

    def compute(self) -> Tensor:
        """Right segments over all segments (0.0 before any segment)."""
        return self.correct.float() / self.total.clamp(min=1)


class ClipAccuracy(ClipMetricBase):
    """A clip accuracy: the share of clips that ClipSummary's `rule` property counts right."""

    rule: str

    def compute(self) -> Tensor:
        """Share of clips right by this metric's rule (0.0 before any clip)."""
        return fraction(getattr(self.summary(), self.rule))


class AbsoluteClipAccuracy(ClipAccuracy):
    """ACA: fraction of clips whose every segment is predicted right."""

    rule = "absolute_correct"


class StandardClipAccuracy(ClipAccuracy):
    """SCA: fraction of clips whose most-voted class is unique and right (a tie counts wrong)."""

    rule = "standard_correct"


class AverageLogitsClipAccuracy(ClipAccuracy):
    """ALCA: fraction of clips whose mean segment logits have their argmax at the target."""

    rule = "average_logits_correct"


class BestClipAccuracy(ClipAccuracy):
    """BCA: fraction of clips whose target is among the most-voted classes (ties count right)."""

    rule = "best_correct"

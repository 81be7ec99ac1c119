"""Segment- and clip-level accuracies of the paper (section 3.3) as torchmetrics."""

from segser.metrics.clip_accuracy import (
    AbsoluteClipAccuracy,
    AverageLogitsClipAccuracy,
    BestClipAccuracy,
    ClipMetricBase,
    ClipSummary,
    ClipVotes,
    SegmentAccuracy,
    StandardClipAccuracy,
    clip_summary,
    clip_votes,
)
from segser.metrics.collection import ClipMetrics, class_recall, clip_decision, clip_predictions

__all__ = [
    "AbsoluteClipAccuracy",
    "AverageLogitsClipAccuracy",
    "BestClipAccuracy",
    "ClipMetricBase",
    "ClipMetrics",
    "ClipSummary",
    "ClipVotes",
    "SegmentAccuracy",
    "StandardClipAccuracy",
    "class_recall",
    "clip_decision",
    "clip_predictions",
    "clip_summary",
    "clip_votes",
]

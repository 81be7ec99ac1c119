"""Segment- and clip-level accuracies of the paper (section 3.3) as torchmetrics.

`ClipMetrics` computes all of them in one pass (what training runs); `SegmentAccuracy` and the
four clip accuracies are the same definitions one metric at a time, for use on their own.
"""

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
from segser.metrics.collection import ACCURACY_NAMES, ClipMetrics, class_recall

__all__ = [
    "ACCURACY_NAMES",
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
    "clip_summary",
    "clip_votes",
]

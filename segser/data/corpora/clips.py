"""The clip table every corpus reader returns, and the bad-clip policy they share."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal, get_args

from segser.errors import BadClipError, SegserError

logger = logging.getLogger("segser")

BadClipPolicy = Literal["fail", "skip"]


@dataclass(frozen=True)
class Clip:
    """One labelled utterance: the unit the paper's clip-level accuracies are computed on."""

    clip_id: str
    path: Path
    label: str
    speaker: str
    session: str
    duration_seconds: float


def label_counts(clips: Iterable[Clip], classes: Sequence[str] | None = None) -> dict[str, int]:
    """Clips per label, in `classes` order (zeros included) or sorted by label when not given."""
    counts = Counter(clip.label for clip in clips)
    keys = list(classes) if classes is not None else sorted(counts)
    return {label: counts.get(label, 0) for label in keys}


def read_clip(clip_id: str, path: Path, label: str, speaker: str, session: str) -> Clip:
    """A clip with its duration from the file's header; an unusable file raises BadClipError."""
    # Imported here so that modules needing only `Clip` (splits, metrics) do not load torch.
    from segser.data.signal.audio import audio_duration_seconds

    return Clip(clip_id, path, label, speaker, session, audio_duration_seconds(path))


class BadClips:
    """Applies `on_bad_clip`: "fail" re-raises, "skip" logs one line per clip and a summary."""

    def __init__(self, on_bad_clip: BadClipPolicy, source: str | Path) -> None:
        if on_bad_clip not in get_args(BadClipPolicy):
            raise SegserError(
                f"on_bad_clip={on_bad_clip!r} is not a policy. Use one of {get_args(BadClipPolicy)}"
            )
        self.on_bad_clip = on_bad_clip
        self.source = str(source)
        self.skipped = 0

    def handle(self, error: BadClipError) -> None:
        """Raise under "fail"; under "skip" log the clip's one-line error and count it."""
        if self.on_bad_clip == "fail":
            raise error
        self.skipped += 1
        logger.warning("skipping bad clip: %s", error)

    def finish(self, clips: list[Clip]) -> list[Clip]:
        """Log the skip summary, then sort by clip_id so every run sees the same table."""
        if self.skipped:
            logger.warning(
                "%s: skipped %d bad clip(s), kept %d", self.source, self.skipped, len(clips)
            )
        if not clips:
            raise SegserError(
                f"{self.source}: no usable clips. Check the corpus root, the label map / classes "
                "and the skipped-clip warnings"
            )
        clips = sorted(clips, key=lambda clip: clip.clip_id)
        for before, after in pairwise(clips):
            if before.clip_id == after.clip_id:
                raise SegserError(
                    f"{self.source}: clip id {after.clip_id!r} is used by both {before.path} and "
                    f"{after.path}. Rename one file so every clip id is unique"
                )
        return clips

"""What predict writes for a file: its clip decisions and an output name of its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from segser.metrics.clip_accuracy import clip_votes, decision_name


def clip_decisions(logits: torch.Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """A whole file as one clip of the clip table: each rule's decision and what it came from."""
    clip = clip_votes(logits.double(), torch.zeros(len(logits), dtype=torch.long), len(classes))

    def named(values: torch.Tensor) -> dict[str, float]:
        return {c: float(v) for c, v in zip(classes, values, strict=True)}

    return {
        "segments": int(clip.segments[0]),
        "mean_logits": {
            "prediction": decision_name(classes, int(clip.mean_logits_prediction[0])),
            "mean_logits": named(clip.mean_logits[0]),
            "probabilities": named(clip.mean_logits[0].softmax(dim=0)),
        },
        "majority": {
            "prediction": decision_name(classes, int(clip.majority_prediction[0])),
            "votes": {c: int(v) for c, v in zip(classes, clip.votes[0], strict=True)},
        },
        "mean_probabilities": named(clip.segment_logits.softmax(dim=1).mean(dim=0)),
    }


def output_stems(files: Sequence[Path]) -> list[str]:
    """Output names from file stems; a stem already taken gets -2, -3, ... (never overwrites)."""
    taken: set[str] = set()
    stems = []
    for path in files:
        stem, n = path.stem, 1
        while stem.lower() in taken:  # lower: a case-insensitive disk would still collide
            n += 1
            stem = f"{path.stem}-{n}"
        taken.add(stem.lower())
        stems.append(stem)
    return stems

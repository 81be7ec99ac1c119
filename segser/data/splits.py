"""Clip-level train/val/test splits: a clip's segments never straddle two sets.

Each split is a function of the clip table and its settings (conf/split/*.yaml binds the
settings as a `_partial_`); no set may come out empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segser.data.corpora.clips import Clip
from segser.errors import SegserError

RATIO_TOLERANCE = 1e-6  # split.ratios must sum to 1 within this


@dataclass(frozen=True)
class ClipSplit:
    """Indices into the clip table for each set, plus how they were drawn."""

    train: list[int]
    val: list[int]
    test: list[int]
    description: dict = field(default_factory=dict)

    def checked(self) -> ClipSplit:
        """This split, if it can train: no set may be empty (evaluate's test-only split is not)."""
        empty = [part for part in ("train", "val", "test") if not getattr(self, part)]
        if empty:
            clips = len(self.train) + len(self.val) + len(self.test)
            raise SegserError(
                f"split {self.description} leaves the {' and '.join(empty)} set empty with "
                f"{clips} clips. Use a larger corpus or other split ratios."
            )
        return self

    def write(self, path: Path, clips: Sequence[Clip]) -> None:
        """Save the split by clip id so a run can be audited and repeated."""
        payload = {
            "description": self.description,
            **{
                name: [clips[i].clip_id for i in getattr(self, name)]
                for name in ("train", "val", "test")
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1))


SplitFunction = Callable[[Sequence[Clip]], ClipSplit]  # a split config, instantiated


def _stratified_partition(
    indices: Sequence[int],
    labels: Sequence[str],
    fractions: Sequence[float],
    rng: np.random.Generator,
) -> list[list[int]]:
    """Shuffle each label's clips and cut them by `fractions`, so every part keeps the label mix."""
    parts: list[list[int]] = [[] for _ in fractions]
    cumulative = np.cumsum(fractions) / np.sum(fractions)
    for label in sorted(set(labels)):
        members = np.array([i for i, lab in zip(indices, labels, strict=True) if lab == label])
        rng.shuffle(members)
        cuts = np.round(cumulative * len(members)).astype(int)
        start = 0
        for part, stop in zip(parts, cuts, strict=True):
            part.extend(members[start:stop].tolist())
            start = stop
    return [sorted(p) for p in parts]


def check_ratios(ratios: Any) -> None:
    """split.ratios: three fractions in (0, 1) summing to 1, or one line saying so (used by
    random_split and, before any work, by config_checks)."""
    fractions = isinstance(ratios, Sequence) and not isinstance(ratios, str)
    if not (
        fractions
        and len(ratios) == 3
        and all(
            isinstance(r, int | float) and not isinstance(r, bool) and 0 < r < 1 for r in ratios
        )
        and abs(sum(ratios) - 1) <= RATIO_TOLERANCE
    ):
        shown = list(ratios) if fractions else ratios
        raise SegserError(
            f"split.ratios={shown!r} is out of range: allowed three fractions in (0, 1), "
            "train/val/test, that sum to 1 (e.g. [0.8,0.1,0.1])"
        )


def random_split(clips: Sequence[Clip], ratios: Sequence[float], seed: int) -> ClipSplit:
    """The paper's protocol: a seeded random split of utterances, stratified by label (8:1:1)."""
    check_ratios(ratios)
    indices = list(range(len(clips)))
    train, val, test = _stratified_partition(
        indices, [c.label for c in clips], ratios, np.random.default_rng(seed)
    )
    description = {"name": "random", "ratios": list(ratios), "seed": seed}
    return ClipSplit(train, val, test, description).checked()


def _held_out_split(
    clips: Sequence[Clip],
    is_test: Sequence[bool],
    val_fraction: float,
    seed: int,
    description: dict,
) -> ClipSplit:
    """Test = the held-out clips; val = a stratified fraction of the rest."""
    test = [i for i, t in enumerate(is_test) if t]
    rest = [i for i, t in enumerate(is_test) if not t]
    if not test or not rest:
        raise SegserError(
            f"split {description} leaves an empty train or test set. "
            "Check split.fold / split.test_speakers against the corpus' sessions and speakers."
        )
    train, val = _stratified_partition(
        rest,
        [clips[i].label for i in rest],
        [1.0 - val_fraction, val_fraction],
        np.random.default_rng(seed),
    )
    return ClipSplit(train, val, sorted(test), description).checked()


def loso_split(clips: Sequence[Clip], fold: int, val_fraction: float, seed: int) -> ClipSplit:
    """Leave-one-session-out: fold k tests on the k-th session (sorted), unseen speakers."""
    sessions = sorted({c.session for c in clips})
    if not 1 <= fold <= len(sessions):
        raise SegserError(
            f"split.fold={fold} is out of range: the corpus has {len(sessions)} sessions "
            f"({', '.join(sessions)}). Use split.fold=1..{len(sessions)}."
        )
    held_out = sessions[fold - 1]
    description = {"name": "loso", "fold": fold, "test_session": held_out, "seed": seed}
    return _held_out_split(
        clips, [c.session == held_out for c in clips], val_fraction, seed, description
    )


def speaker_split(
    clips: Sequence[Clip], test_speakers: Sequence[str], val_speakers: int, seed: int
) -> ClipSplit:
    """Hold out the named speakers for test; `val_speakers` whole speakers of the rest, drawn
    with `seed`, validate (as the search and bench-real do); the others train."""
    # `split.test_speakers=[03,08]` reaches us as ints: match numeric ids by value.
    by_key = {_speaker_order(c.speaker): c.speaker for c in clips}
    named = {_speaker_order(str(s)): str(s) for s in test_speakers}
    unknown = {text for key, text in named.items() if key not in by_key}
    test_speakers = sorted(by_key[key] for key in named if key in by_key)
    if unknown:
        known = ", ".join(sorted({c.speaker for c in clips}))
        raise SegserError(
            f"split.test_speakers names unknown speakers {sorted(unknown)}; known: {known}."
        )
    rest = sorted({c.speaker for c in clips} - set(test_speakers), key=_speaker_order)
    val_set = _validation_speakers(rest, val_speakers, seed, "split.test_speakers")
    description = {
        "name": "speaker",
        "test_speakers": list(test_speakers),
        "val_speakers": sorted(val_set, key=_speaker_order),
        "seed": seed,
    }
    return _speaker_sets(clips, set(test_speakers), val_set, description)


def _validation_speakers(rest: Sequence[str], count: int, seed: int, held_out: str) -> set[str]:
    """`count` of the training speakers `rest` (in speaker order), drawn with `seed`."""
    if not 1 <= count < len(rest):
        raise SegserError(
            f"split.val_speakers={count} needs 1..{len(rest) - 1}: {held_out} leaves "
            f"{len(rest)} training speakers. Lower split.val_speakers or hold out fewer."
        )
    drawn = np.random.default_rng(seed).choice(len(rest), size=count, replace=False)
    return {rest[i] for i in drawn}


def _speaker_sets(
    clips: Sequence[Clip], test: set[str], val: set[str], description: dict
) -> ClipSplit:
    """Each clip to the set of its speaker: test, val, or else train."""
    sets: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for index, clip in enumerate(clips):
        part = "test" if clip.speaker in test else "val" if clip.speaker in val else "train"
        sets[part].append(index)
    return ClipSplit(sets["train"], sets["val"], sets["test"], description).checked()


def _speaker_order(speaker: str) -> tuple[int, str]:
    """Numeric speaker ids (EmoDB "03", CREMA-D "1001") sort as numbers, others as text."""
    return (int(speaker), "") if speaker.isdigit() else (0, speaker)


def speaker_folds(speakers: Sequence[str], num_folds: int) -> dict[str, int]:
    """Fold (1..K) of each speaker: sorted speakers dealt round-robin, independent of any seed.

    Each speaker is tested in exactly one fold; fold sizes differ by at most one speaker.
    """
    ordered = sorted(set(speakers), key=_speaker_order)
    if not 2 <= num_folds <= len(ordered):
        raise SegserError(
            f"split.num_folds={num_folds} needs 2..{len(ordered)} (the corpus has "
            f"{len(ordered)} speakers). Choose split.num_folds in that range."
        )
    return {speaker: index % num_folds + 1 for index, speaker in enumerate(ordered)}


def speaker_folds_split(
    clips: Sequence[Clip], fold: int, num_folds: int, val_speakers: int, seed: int
) -> ClipSplit:
    """Fold k of K speaker folds: test = fold k's speakers; val = `val_speakers` training
    speakers drawn with `seed`; train = the other speakers. No speaker is in two sets."""
    folds = speaker_folds([c.speaker for c in clips], num_folds)
    if not 1 <= fold <= num_folds:
        raise SegserError(f"split.fold={fold} is out of range. Use split.fold=1..{num_folds}.")
    test_speakers = [s for s, k in folds.items() if k == fold]
    rest = [s for s, k in folds.items() if k != fold]
    val_set = _validation_speakers(rest, val_speakers, seed, f"fold {fold}")
    description = {
        "name": "speaker_folds",
        "fold": fold,
        "num_folds": num_folds,
        "test_speakers": test_speakers,
        "val_speakers": sorted(val_set, key=_speaker_order),
        "seed": seed,
    }
    return _speaker_sets(clips, set(test_speakers), val_set, description)


__all__ = [
    "ClipSplit",
    "SplitFunction",
    "loso_split",
    "random_split",
    "speaker_folds",
    "speaker_folds_split",
    "speaker_split",
]

"""Whose voice each input is, and each speaker's statistics, for a data.speaker_norm=true model.

Such a model standardises every embedding with its speaker's own mean and std, so predict asks
which files are one speaker's: every input (`--one-speaker`), or a CSV with columns path,speaker
(`--speakers`). A speaker's statistics come from all of their files, streamed once before they
are predicted (a long recording of one speaker normalises from itself). With under
`min_speaker_seconds` of a speaker's audio, or for a file no speaker was given for, the
training statistics stored in the checkpoint stand in, and one warning line says so.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segser.data.signal.audio import audio_info
from segser.data.signal.stream import stream_segments
from segser.data.speaker_norm import RunningMoments
from segser.errors import SegserError

# Measured with experiments/speaker_norm_minimum.py (docs/results.md): on EmoDB-2s's unseen
# speakers, statistics from 20 s of a speaker's audio first match the training ones (clip UA
# 0.786 against 0.779; 15 s: 0.769, 10 s: 0.697); 30 s: 0.806, all of it: 0.831.
MIN_SPEAKER_SECONDS = 20.0


@dataclass(frozen=True)
class FileStatistics:
    """The statistics a file is standardised with, and where they came from."""

    mean: torch.Tensor | None  # None: the checkpoint's training statistics
    std: torch.Tensor | None
    speaker: str | None
    seconds: float  # the speaker's audio read for them (0 without a speaker)

    def note(self) -> dict:
        source = "training" if self.mean is None else "speaker"
        return {"speaker": self.speaker, "statistics": source, "speaker_seconds": self.seconds}


NO_SPEAKER = FileStatistics(None, None, None, 0.0)  # a file no speaker was given for


def read_speaker_csv(path: Path) -> dict[Path, str]:
    """Resolved audio path -> speaker from a CSV with columns path,speaker (paths relative to
    the CSV's folder)."""
    if not path.is_file():
        raise SegserError(f"{path}: --speakers file not found. Pass a CSV with path,speaker")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        if not {"path", "speaker"} <= set(columns):
            raise SegserError(
                f"{path}: --speakers needs the columns path,speaker (found {columns}). "
                "The first line must be a header"
            )
        reader.fieldnames = columns
        speakers = {}
        for row in reader:
            name, speaker = (row.get("path") or "").strip(), (row.get("speaker") or "").strip()
            if not name or not speaker:
                raise SegserError(
                    f"{path}: row {reader.line_num} lacks a path or a speaker. Fill it in"
                )
            speakers[(path.parent / name).resolve()] = speaker
    return speakers


def speaker_groups(
    files: Sequence[Path], one_speaker: bool, speaker_csv: Path | None
) -> dict[Path, str | None]:
    """Each file's speaker as the user gave it (None: not given)."""
    if one_speaker and speaker_csv is not None:
        raise SegserError("--one-speaker and --speakers exclude each other. Pass one of them")
    named = read_speaker_csv(speaker_csv) if speaker_csv is not None else {}
    return {f: "speaker" if one_speaker else named.get(f.resolve()) for f in files}


def file_statistics(
    files: Sequence[Path],
    speakers: dict[Path, str | None],
    predictor: Any,
    batch_size: int,
    block_seconds: float,
    min_speaker_seconds: float,
    warn: Callable[[str], None],
) -> dict[Path, FileStatistics]:
    """Per file, the statistics to standardise it with; one warning line for those that fall
    back to the training statistics. `predictor`: segser.predict.Predictor (its cutting,
    embeddings and the checkpoint's training statistics)."""
    cutting = (predictor.sample_rate, predictor.window_seconds, predictor.hop_seconds)
    cutting += (batch_size, block_seconds, predictor.tail)
    plan: dict[Path, FileStatistics] = {}
    short, unnamed = [], 0
    for speaker in sorted({s for s in speakers.values() if s is not None}):
        own = [f for f in files if speakers[f] == speaker]
        infos = []
        for path in own:
            try:
                infos.append(audio_info(path))
            except SegserError:
                continue  # reported when the file itself is predicted
        seconds = sum(info.duration_seconds for info in infos)
        moments = RunningMoments(predictor.speaker_norm.mean)
        if seconds >= min_speaker_seconds:
            for info in infos:
                samples = round(info.frames * predictor.sample_rate / info.sample_rate_hz)
                try:
                    for batch in stream_segments(info, *cutting):
                        count = len(batch.segments)
                        lengths = predictor.lengths(batch.first_index, count, samples)
                        moments.add(predictor.embeddings(batch.segments, lengths))
                except SegserError:
                    continue  # an unreadable file: reported when it is predicted
        if seconds >= min_speaker_seconds and moments.count:
            mean, std = (t.float() for t in moments.statistics())
            plan |= {f: FileStatistics(mean, std, speaker, seconds) for f in own}
        else:
            short.append(f"{speaker} ({seconds:.1f} s)")
            plan |= {f: FileStatistics(None, None, speaker, seconds) for f in own}
    for path in files:
        if speakers[path] is None:
            unnamed += 1
            plan[path] = NO_SPEAKER
    if short or unnamed:
        reasons = [f"{unnamed} file(s) with no speaker given"] if unnamed else []
        if short:
            reasons.append(f"under {min_speaker_seconds:g} s of audio from {', '.join(short)}")
        warn(
            "warning: speaker normalisation uses the training statistics stored in the "
            f"checkpoint for {'; '.join(reasons)} (name each file's speaker with --one-speaker "
            "or --speakers CSV)"
        )
    return plan

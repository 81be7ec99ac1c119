"""Stream a recording of any length: blocks from the audio reader, resampled, cut into segments.

Memory is bounded by the block size, never by the recording's length, and the segments equal
what load_audio + segment_waveform give on the whole file, sample for sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from segser.data.signal.audio import AudioInfo, read_blocks, stream_resampler
from segser.data.signal.segmentation import Tail, check_tail, count_segments
from segser.errors import BadClipError

# Extensions a folder scan picks up: the common containers libsndfile reads.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc"}
    | {".au", ".snd", ".caf", ".w64", ".rf64"}
)


class SegmentCutter:
    """Cut a stream into exactly the segments segment_waveform gives on the whole clip."""

    def __init__(
        self, sample_rate: int, window_seconds: float, hop_seconds: float, tail: Tail = "pad"
    ) -> None:
        check_tail(tail)
        self.sample_rate, self.tail = sample_rate, tail
        self.window_seconds, self.hop_seconds = window_seconds, hop_seconds
        self.window = round(window_seconds * sample_rate)
        self.hop = round(hop_seconds * sample_rate)
        self.buffer = torch.zeros(0)
        self.received = 0  # samples pushed so far
        self.next_segment = 0  # index of the first segment not emitted yet

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """Add samples; return the segments [k, window] now complete (k may be 0)."""
        start = self.next_segment * self.hop  # the buffer holds samples from here on
        skip = max(0, start - self.received)  # a hop longer than the window skips a gap
        self.buffer = torch.cat([self.buffer, samples[skip:]])
        self.received += samples.numel()
        complete = (
            (self.received - self.window) // self.hop + 1 if self.received >= self.window else 0
        )
        if complete <= self.next_segment:
            return samples.new_zeros(0, self.window)
        count = complete - self.next_segment
        segments = self.buffer[: (count - 1) * self.hop + self.window].unfold(
            0, self.window, self.hop
        )
        segments = segments.contiguous()
        self.next_segment = complete
        self.buffer = self.buffer[min(count * self.hop, self.buffer.numel()) :].clone()
        return segments

    def finish(self) -> torch.Tensor:
        """Segments left at the end under the tail rule: zero-padded past the clip's end."""
        rule = (self.sample_rate, self.window_seconds, self.hop_seconds, self.tail)
        remaining = count_segments(self.received, *rule) - self.next_segment if self.received else 0
        if remaining <= 0:
            return self.buffer.new_zeros(0, self.window)
        # The buffer holds the clip from segment next_segment's start on; zeros pad its end.
        needed = (remaining - 1) * self.hop + self.window
        covered = self.buffer[:needed]
        segments = F.pad(covered, (0, needed - covered.shape[0])).unfold(0, self.window, self.hop)
        self.next_segment += remaining
        self.buffer = self.buffer.new_zeros(0)
        return segments.contiguous()


@dataclass(frozen=True)
class SegmentBatch:
    """Consecutive segments of a file: segment `first_index` onwards, and how far reading got."""

    first_index: int
    segments: torch.Tensor  # [B, window samples], float32, CPU
    seconds_read: float


def stream_segments(
    info: AudioInfo,
    sample_rate: int,
    window_seconds: float,
    hop_seconds: float,
    batch_size: int,
    block_seconds: float = 30.0,
    tail: Tail = "pad",
) -> Iterator[SegmentBatch]:
    """The file's segments at `sample_rate` in batches of `batch_size` (the last may be smaller)."""
    resample = stream_resampler(info.sample_rate_hz, sample_rate)
    cutter = SegmentCutter(sample_rate, window_seconds, hop_seconds, tail)
    block_frames = max(1, round(block_seconds * info.sample_rate_hz))
    pending: list[torch.Tensor] = []
    emitted = 0
    frames_read = 0

    def batches(final: bool) -> Iterator[SegmentBatch]:
        nonlocal pending, emitted
        stacked = torch.cat(pending) if pending else torch.zeros(0, cutter.window)
        full = stacked.shape[0] if final else stacked.shape[0] // batch_size * batch_size
        for offset in range(0, full, batch_size):
            batch = stacked[offset : min(offset + batch_size, full)]
            yield SegmentBatch(emitted, batch, frames_read / info.sample_rate_hz)
            emitted += batch.shape[0]
        pending = [stacked[full:]] if full < stacked.shape[0] else []

    for block in read_blocks(info, block_frames):
        frames_read += len(block)
        pending.append(cutter.push(torch.from_numpy(resample(block, False))))
        yield from batches(final=False)
    pending.append(cutter.push(torch.from_numpy(resample(np.zeros(0, np.float32), True))))
    pending.append(cutter.finish())
    yield from batches(final=True)


def find_audio(inputs: Sequence[str | Path], recursive: bool) -> list[Path | BadClipError]:
    """Audio files named or inside folders, in order and each once; an unusable input as its error.

    A named file is taken whatever its extension (soundfile decides); folders contribute the
    files with an AUDIO_EXTENSIONS suffix, sorted.
    """
    found: list[Path | BadClipError] = []
    for item in map(Path, inputs):
        if not item.exists():
            found.append(BadClipError(item, "file not found", "Check the path"))
        elif not item.is_dir():
            found.append(item)
        else:
            names = item.rglob("*") if recursive else item.iterdir()
            audio = sorted(p for p in names if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            hint = "" if recursive else " (add --recursive to search its subfolders)"
            fix = f"Pass audio files (.wav, .flac, .ogg, .mp3, ...) or their folder{hint}"
            found.extend(audio or [BadClipError(item, "folder holds no audio files", fix)])
    unique: dict[Path | str, Path | BadClipError] = {}
    for entry in found:
        unique.setdefault(entry.resolve() if isinstance(entry, Path) else str(entry), entry)
    return list(unique.values())

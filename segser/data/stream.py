"""Stream a recording of any length: blocks read with soundfile, resampled, cut into segments.

Memory is bounded by the block size, never by the recording's length, and the segments equal
what load_audio + segment_waveform give on the whole file (resampling up to float round-off).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF

from segser.data.audio import unreadable_audio
from segser.data.segmentation import Tail, check_tail, segment_waveform
from segser.errors import BadClipError

# Extensions a folder scan picks up: the common containers libsndfile reads.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc"}
    | {".au", ".snd", ".caf", ".w64", ".rf64"}
)
_FIX_UNREADABLE = "Re-export it as WAV or FLAC, or leave it out"
# torchaudio.functional.resample's defaults, which decide how far its filter reaches.
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99


@dataclass(frozen=True)
class AudioInfo:
    """What the file's header says: its own rate, channels and length."""

    path: Path
    sample_rate_hz: int
    channels: int
    frames: int

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate_hz


def audio_info(path: str | Path) -> AudioInfo:
    """Header of an audio file; a missing, unreadable or empty file raises BadClipError."""
    path = Path(path)
    if not path.is_file():
        problem = "not a file" if path.exists() else "file not found"
        raise BadClipError(path, problem, "Check the path")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        raise unreadable_audio(path, err, _FIX_UNREADABLE) from err
    if info.frames <= 0:
        raise BadClipError(path, "empty audio (0 samples)", "Leave it out")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def read_blocks(path: Path, block_frames: int) -> Iterator[torch.Tensor]:
    """Mono float32 blocks at the file's rate, mixed exactly as load_audio mixes channels."""
    try:
        with sf.SoundFile(str(path)) as handle:
            for block in handle.blocks(block_frames, dtype="float32", always_2d=True):
                mono = torch.from_numpy(block).mean(dim=1)
                if not bool(torch.isfinite(mono).all()):
                    raise BadClipError(path, "audio contains NaN or Inf samples", _FIX_UNREADABLE)
                yield mono
    except (sf.SoundFileError, RuntimeError) as err:
        raise unreadable_audio(path, err, _FIX_UNREADABLE) from err


class BlockResampler:
    """Resample block by block to what torchaudio's resample gives on the whole signal.

    torchaudio's resample is a polyphase FIR: each run of `orig` input samples (rates divided by
    their gcd) gives `new` output samples from a window reaching `width` samples past the run on
    either side. Resampling spans that start on a multiple of `orig` and carry at least `width`
    true samples of context on each side reproduces the whole-signal output for the span's
    middle; only conv1d's summation order differs (max abs difference ~1e-7 on [-1, 1] audio).
    """

    def __init__(self, orig_hz: int, new_hz: int) -> None:
        self.orig_hz, self.new_hz = orig_hz, new_hz
        gcd = math.gcd(orig_hz, new_hz)
        self.orig, self.new = orig_hz // gcd, new_hz // gcd
        width = math.ceil(_LOWPASS_FILTER_WIDTH * self.orig / (min(self.orig, self.new) * _ROLLOFF))
        self.context = math.ceil(width / self.orig) * self.orig
        self.buffer = torch.zeros(0)
        self.buffer_start = 0  # input index of buffer[0]
        self.received = 0  # input samples pushed so far
        self.next_run = 0  # first run (of `orig` input samples) not resampled yet

    def _resample_from(self, end: int) -> tuple[torch.Tensor, int]:
        """Resample input [run start - context, end); return it and the first run's output index."""
        start = max(0, self.next_run * self.orig - self.context)
        span = self.buffer[start - self.buffer_start : end - self.buffer_start]
        out = AF.resample(span, self.orig_hz, self.new_hz)
        return out, (self.next_run - start // self.orig) * self.new

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """Add input samples; return the output samples that no later input can change."""
        if self.orig == self.new:
            return samples
        self.buffer = torch.cat([self.buffer, samples])
        self.received += samples.numel()
        ready_runs = (self.received - self.context) // self.orig
        if ready_runs <= self.next_run:
            return samples.new_zeros(0)
        out, first = self._resample_from(ready_runs * self.orig + self.context)
        out = out[first : first + (ready_runs - self.next_run) * self.new]
        self.next_run = ready_runs
        keep_from = max(0, self.next_run * self.orig - self.context)
        self.buffer = self.buffer[keep_from - self.buffer_start :].clone()
        self.buffer_start = keep_from
        return out

    def finish(self) -> torch.Tensor:
        """The rest of the output once the input has ended, zero-padded as the whole-file call."""
        if self.orig == self.new or self.received == 0:
            return self.buffer.new_zeros(0)
        out, first = self._resample_from(self.received)
        self.buffer = self.buffer.new_zeros(0)
        return out[first:]


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
        empty = self.buffer.new_zeros(0, self.window)
        if self.next_segment * self.hop >= self.received or self.buffer.numel() == 0:
            return empty
        last_end = (self.next_segment - 1) * self.hop + self.window
        if self.tail == "stop" and self.next_segment > 0 and last_end >= self.received:
            return empty  # the last window emitted already reached the end
        segments = segment_waveform(
            self.buffer, self.sample_rate, self.window_seconds, self.hop_seconds, self.tail
        )
        self.next_segment += segments.shape[0]
        self.buffer = self.buffer.new_zeros(0)
        return segments


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
    resampler = BlockResampler(info.sample_rate_hz, sample_rate)
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

    for block in read_blocks(info.path, block_frames):
        frames_read += block.numel()
        pending.append(cutter.push(resampler.push(block)))
        yield from batches(final=False)
    if frames_read == 0:
        raise BadClipError(info.path, "empty audio (0 samples)", "Leave it out")
    pending.append(cutter.push(resampler.finish()))
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

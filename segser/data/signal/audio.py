"""Read audio, whole clips and streamed recordings alike, with one set of checks and messages.

Every file is mixed to mono (the channel mean) and resampled with soxr: `soxr.resample` for a
whole clip and `soxr.ResampleStream` block by block give the same samples, so a streamed
recording equals the whole-file read exactly. A WAV whose header promises more samples than
the file holds is a bad clip (libsndfile would silently read it shorter).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from segser.errors import BadClipError

RESAMPLER_QUALITY = "HQ"
# What decides the resampled samples: part of the feature cache key, so a change rebuilds it.
RESAMPLER_ID = f"soxr-{soxr.__version__}-{RESAMPLER_QUALITY}"
_FIX = "Re-export it as WAV or FLAC, or leave it out of the corpus"


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


def _wav_declared_frames(path: Path) -> int | None:
    """Samples per channel the RIFF/WAVE header's `data` chunk declares (None: not a WAV)."""
    block_align = None
    with open(path, "rb") as handle:
        if handle.read(4) != b"RIFF" or handle.read(8)[4:] != b"WAVE":
            return None
        while len(header := handle.read(8)) == 8:
            name, length = header[:4], struct.unpack("<I", header[4:])[0]
            if name == b"fmt ":
                block_align = struct.unpack("<H", handle.read(16)[12:14])[0]
                length -= 16
            elif name == b"data":
                # 0 and 0xFFFFFFFF: a recorder that never finished the header (length unknown).
                unknown = length in (0, 0xFFFFFFFF) or not block_align
                return None if unknown else length // block_align
            handle.seek(length + (length & 1), 1)  # chunks are padded to even sizes
    return None


def _unreadable(path: Path, err: Exception) -> BadClipError:
    reason = getattr(err, "error_string", None) or str(err).splitlines()[0]
    return BadClipError(path, f"unreadable audio ({reason.rstrip('.')})", _FIX)


def _truncated(path: Path, promised: int, held: int) -> BadClipError:
    problem = f"truncated audio (its header promises {promised} samples, the file holds {held})"
    return BadClipError(path, problem, "Restore the complete file, or leave it out")


def audio_info(path: str | Path) -> AudioInfo:
    """The file's header; a missing, unreadable, empty or truncated file raises BadClipError."""
    path = Path(path)
    if not path.is_file():
        problem = "not a file" if path.exists() else "file not found"
        raise BadClipError(path, problem, "Check the corpus root, the manifest or the path")
    try:
        info = sf.info(str(path))
        promised = _wav_declared_frames(path)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise _unreadable(path, err) from err
    if promised is not None and promised > info.frames:  # libsndfile reads what is there
        raise _truncated(path, promised, info.frames)
    if info.frames <= 0:
        raise BadClipError(path, "empty audio (0 samples)", "Leave it out of the corpus")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def read_blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks at the file's own rate; NaN or Inf samples are a bad clip."""
    frames = 0
    try:
        with sf.SoundFile(str(info.path)) as handle:
            for block in handle.blocks(block_frames, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32)
                if not np.isfinite(mono).all():
                    raise BadClipError(info.path, "audio contains NaN or Inf samples", _FIX)
                frames += len(mono)
                yield mono
    except (sf.SoundFileError, RuntimeError) as err:
        raise _unreadable(info.path, err) from err
    if frames < info.frames:
        raise _truncated(info.path, info.frames, frames)


def resample(waveform: np.ndarray, orig_hz: int, new_hz: int) -> np.ndarray:
    """A whole 1-D float32 signal at another rate (the same filter as stream_resampler)."""
    if orig_hz == new_hz:
        return waveform
    return soxr.resample(waveform, orig_hz, new_hz, quality=RESAMPLER_QUALITY)


def stream_resampler(orig_hz: int, new_hz: int) -> Callable[[np.ndarray, bool], np.ndarray]:
    """`push(block, last)` returning the resampled samples so far; equal to `resample` in total."""
    if orig_hz == new_hz:
        return lambda block, last: block
    stream = soxr.ResampleStream(orig_hz, new_hz, 1, dtype="float32", quality=RESAMPLER_QUALITY)
    return lambda block, last: stream.resample_chunk(block, last=last)


def load_audio(path: str | Path, sample_rate: int = 16000) -> torch.Tensor:
    """A clip as a 1-D float32 waveform at `sample_rate`; bad clips raise BadClipError."""
    info = audio_info(path)
    waveform = np.concatenate(list(read_blocks(info, info.frames)))
    return torch.from_numpy(resample(waveform, info.sample_rate_hz, sample_rate))


def audio_duration_seconds(path: str | Path) -> float:
    """Clip duration from the file header alone, cheap enough to scan a whole corpus."""
    return audio_info(path).duration_seconds

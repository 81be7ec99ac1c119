"""Read a clip from disk as a mono waveform at the rate the features expect."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF

from segser.errors import BadClipError

_FIX_CORRUPT = "Re-export the clip as a WAV/FLAC file or remove it from the corpus"


def unreadable_audio(path: Path, err: Exception, fix: str = _FIX_CORRUPT) -> BadClipError:
    """The one-line error for a file soundfile cannot decode, with libsndfile's reason."""
    reason = getattr(err, "error_string", None) or str(err).splitlines()[0]
    return BadClipError(path, f"unreadable audio ({reason.rstrip('.')})", fix)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise BadClipError(path, "file not found", "Check the corpus root and the manifest paths")
    if not path.is_file():
        raise BadClipError(path, "not a file", "Point the manifest at an audio file")


def load_audio(path: str | Path, sample_rate: int = 16000) -> torch.Tensor:
    """Load a clip as a 1-D float32 waveform, mixed to mono and resampled to `sample_rate`.

    Bad clips raise BadClipError (one line naming the file) so a corpus scan can report them.
    """
    path = Path(path)
    _check_exists(path)
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise unreadable_audio(path, err) from err
    if data.shape[0] == 0:
        raise BadClipError(path, "empty audio (0 samples)", "Remove the clip from the corpus")
    waveform = torch.from_numpy(data).mean(dim=1)
    if not bool(torch.isfinite(waveform).all()):
        raise BadClipError(
            path, "audio contains NaN or Inf samples", "Re-export the clip or remove it"
        )
    if file_rate != sample_rate:
        waveform = AF.resample(waveform, orig_freq=file_rate, new_freq=sample_rate)
    return waveform.contiguous()


def audio_duration_seconds(path: str | Path) -> float:
    """Clip duration from the file header alone, cheap enough to scan a whole corpus."""
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        raise unreadable_audio(path, err) from err
    return info.frames / info.samplerate

"""Prosodic speech-like sound for the demo corpus: a voice, a prosody, and the synthesiser.

A band-limited sawtooth follows a time-varying f0 (pitch level, accents, declination), is gated
into syllables at the prosody's rate, shaped by formant-like resonances and a spectral tilt, and
scaled to the prosody's loudness -- the cues emotion is carried by in the demo corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE_HZ = 16000  # IEMOCAP's rate


@dataclass(frozen=True)
class Prosody:
    pitch_st: float  # level, semitones above the speaker's base f0
    range_st: float  # accent excursion, semitones
    rate_syllables_per_s: float
    loudness_db: float
    tilt_db_per_octave: float  # added to the sawtooth's -6 dB/octave


# Male formants (Hz) of a few vowels; a speaker's formant_scale stretches them.
_VOWEL_FORMANTS_HZ = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]]
)
_FORMANT_GAINS = np.array([1.0, 0.5, 0.25])
_FORMANT_BANDWIDTHS_HZ = np.array([90.0, 110.0, 160.0])
_FRAME, _HOP = 512, 256  # STFT filtering: Hann at 50% overlap sums to one


@dataclass(frozen=True)
class Voice:
    speaker: str  # Ses01F
    base_f0_hz: float
    formant_scale: float
    rate_scale: float
    range_scale: float
    loudness_db: float
    tilt_db_per_octave: float
    breathiness: float


@dataclass(frozen=True)
class Utterance:
    index: int  # seeds this clip's audio
    voice: Voice
    label: str | None  # None: a code the 4-class map drops
    code: str
    prosody: Prosody
    num_samples: int


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _syllables(
    rng: np.random.Generator, seconds: float, rate: float, pause_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Syllable start/end times (s): gamma durations around 1/rate, phrase pauses between."""
    count = int(seconds * rate * 2) + 8
    durations = rng.gamma(8.0, 1.0 / (8.0 * rate), count)
    pauses = (rng.random(count) < 0.2) * rng.uniform(0.1, 0.4, count) * pause_scale
    lead, tail = rng.uniform(0.05, 0.2, 2)
    starts = lead + np.concatenate([[0.0], np.cumsum(durations + pauses)[:-1]])
    ends = starts + durations
    keep = ends <= seconds - tail
    if not keep.any():
        return np.array([lead]), np.array([seconds - tail])
    return starts[keep], ends[keep]


def _polyblep_sawtooth(f0_hz: np.ndarray) -> np.ndarray:
    """Sawtooth following f0 (all harmonics, -6 dB/octave) with PolyBLEP against aliasing."""
    step = f0_hz / SAMPLE_RATE_HZ
    phase = np.cumsum(step) % 1.0
    saw = 2.0 * phase - 1.0
    after = phase < step
    x = phase[after] / step[after]
    saw[after] -= 2 * x - x * x - 1
    before = phase > 1.0 - step
    x = (phase[before] - 1.0) / step[before]
    saw[before] -= x * x + 2 * x + 1
    return saw


def _filter_by_frames(x: np.ndarray, envelopes: np.ndarray) -> np.ndarray:
    """Time-varying filtering: multiply each Hann frame's spectrum by its envelope, overlap-add."""
    padded = np.concatenate([np.zeros(_HOP), x, np.zeros(_FRAME)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, _FRAME)[::_HOP]
    frames = frames[: len(envelopes)] * np.hanning(_FRAME + 1)[:-1]
    filtered = np.fft.irfft(np.fft.rfft(frames) * envelopes, n=_FRAME)
    out = filtered[:, :_HOP].copy()
    out[1:] += filtered[:-1, _HOP:]
    return out.reshape(-1)[_HOP : _HOP + len(x)]


def synthesize(utterance: Utterance, seed: int) -> np.ndarray:
    """One clip as int16 samples, deterministic in (seed, utterance index)."""
    rng = seeded_rng(seed, 2, utterance.index)
    voice, prosody, n = utterance.voice, utterance.prosody, utterance.num_samples
    seconds = n / SAMPLE_RATE_HZ
    rate = max(prosody.rate_syllables_per_s * voice.rate_scale, 1.5)
    starts, ends = _syllables(rng, seconds, rate, pause_scale=4.0 / rate)
    t = np.arange(n) / SAMPLE_RATE_HZ
    syllable = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)
    position = (t - starts[syllable]) / (ends - starts)[syllable]
    inside = (position >= 0) & (position < 1)
    stressed = rng.random(len(starts)) < 0.35
    gains = np.where(stressed, 1.0, rng.uniform(0.55, 0.9, len(starts)))
    amplitude = (
        np.where(inside, np.sin(np.pi * np.clip(position, 0, 1)) ** 0.7, 0) * gains[syllable]
    )
    onsets = rng.uniform(0.08, 0.3, len(starts))
    voiced = np.convolve(inside & (position >= onsets[syllable]), np.ones(80) / 80, mode="same")

    range_st = max(prosody.range_st * voice.range_scale, 0.3)
    accents = np.where(
        stressed, rng.uniform(0.5, 1.0, len(starts)), rng.uniform(-0.3, 0.3, len(starts))
    )
    targets = prosody.pitch_st + range_st * accents - 0.3 * range_st * (starts / seconds)
    contour = np.interp(t, (starts + ends) / 2, targets)
    knots = np.arange(int(100 * seconds) + 2) / 100  # a slow random walk: unsteady voice
    walk = rng.normal(0, 0.04, len(knots)).cumsum()
    wobble = np.interp(t, knots, walk - walk.mean())
    f0_hz = np.clip(voice.base_f0_hz * 2 ** ((contour + wobble) / 12), 60.0, 500.0)

    noise = rng.standard_normal(n)
    excitation = voiced * _polyblep_sawtooth(f0_hz) + voice.breathiness * noise * (0.5 + voiced)
    excitation += (inside & (position < onsets[syllable])) * 0.25 * noise
    x = excitation * amplitude

    frame_times = np.arange(n // _HOP + 2) * _HOP / SAMPLE_RATE_HZ  # frame centres
    frame_syllable = np.clip(np.searchsorted(starts, frame_times, side="right") - 1, 0, None)
    vowels = rng.integers(len(_VOWEL_FORMANTS_HZ), size=len(starts))
    jitter = rng.uniform(0.95, 1.05, (len(starts), 1))
    formants = (_VOWEL_FORMANTS_HZ[vowels] * jitter * voice.formant_scale)[frame_syllable]
    freqs = np.fft.rfftfreq(_FRAME, 1 / SAMPLE_RATE_HZ)
    peaks = _FORMANT_GAINS / (
        1 + ((freqs[:, None, None] - formants) / (_FORMANT_BANDWIDTHS_HZ / 2)) ** 2
    )
    tilt = prosody.tilt_db_per_octave + voice.tilt_db_per_octave
    tilt_gain = 10 ** (tilt * np.log2(np.maximum(freqs, 100.0) / 500.0) / 20)
    envelopes = (0.03 + peaks.sum(axis=-1)).T * tilt_gain
    y = _filter_by_frames(x, envelopes)

    level_db = -24.0 + prosody.loudness_db + voice.loudness_db
    rms = np.sqrt(np.mean(y[inside] ** 2)) if inside.any() else 1.0
    y = y * (10 ** (level_db / 20) / max(rms, 1e-9)) + rng.normal(0, 10 ** (-58 / 20), n)
    y = 0.9 * np.tanh(y / 0.9)  # soft limit: loud clips keep their loudness without clipping
    return np.round(y * 32767).astype(np.int16)

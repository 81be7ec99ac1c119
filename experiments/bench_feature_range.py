"""Feature rows of `make bench`: ours vs the torchvggish reference over the audio users bring.

Each case is in-memory audio at some rate and channel count (generated speech-like signal:
a gliding tone over noise with pauses). Both sides share the untimed mix to mono and resample
to 16 kHz; then the reference makes each segment's first example with torchvggish's numpy
`waveform_to_examples`, one call per segment, and ours cuts every patch from the clip's frames
(`clips_patches`, as the cache build calls it: short clips share one pass). The notes give
one `clip_patches` call per clip (the path before grouping) and ours including the mono mix
and resample, all timed in the same interleaved runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF
from bench_loops import sync
from torchvggish import vggish_input

from segser.data.logmel.clip_patches import clip_patches, clips_patches
from segser.data.logmel.features import LogMelPatcher
from segser.data.signal.segmentation import SegmentationSettings, segment_waveform

RATE = 16000
SEGMENTATION = SegmentationSettings(1.0, 0.5)


@dataclass(frozen=True)
class Case:
    """`clips` clips of `seconds` each at `rate_hz` with `channels` channels."""

    seconds: float
    clips: int
    rate_hz: int = RATE
    channels: int = 1

    @property
    def name(self) -> str:
        layout = "mono" if self.channels == 1 else "stereo"
        length = f"{self.seconds:g} s" if self.seconds < 60 else f"{self.seconds / 60:g} min"
        return f"{self.clips} x {length}, {self.rate_hz / 1000:g} kHz {layout}"


def figure(case: Case, device: torch.device) -> str:
    """A case's row title (bench.py prints it as "not measured" where the device is missing)."""
    return f"features ({device.type}): {case.name}"


def default_cases(hour: bool) -> list[Case]:
    """Lengths at 16 kHz mono, then every rate in mono and stereo on 10 s clips."""
    cases = [Case(1.0, 120), Case(2.0, 60), Case(10.0, 12), Case(120.0, 1), Case(600.0, 1)]
    if hour:
        cases.append(Case(3600.0, 1))
    for rate in (8000, 16000, 22050, 44100, 48000):
        for channels in (1, 2):
            if (rate, channels) != (RATE, 1):
                cases.append(Case(10.0, 12, rate, channels))
    return cases


def speechlike(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """[samples, channels] float32: a gliding tone with syllable-rate gating, over noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    pitch = 150 + 60 * np.sin(2 * np.pi * 0.3 * t)
    voiced = np.sin(2 * np.pi * np.cumsum(pitch) / rate) * (np.sin(2 * np.pi * 4 * t) > -0.2)
    out = 0.4 * voiced[:, None] + 0.02 * rng.standard_normal((len(t), channels))
    return out.astype(np.float32)


def to_16k_mono(audio: np.ndarray, rate: int) -> torch.Tensor:
    waveform = torch.from_numpy(audio).mean(dim=1)
    return AF.resample(waveform, rate, RATE) if rate != RATE else waveform


def reference(waveforms: list[torch.Tensor]) -> int:
    count = 0
    for waveform in waveforms:
        segments = segment_waveform(waveform, RATE, 1.0, 0.5).numpy()
        for segment in segments:
            vggish_input.waveform_to_examples(segment, RATE, return_tensor=False)
        count += len(segments)
    return count


def ours(waveforms: list[torch.Tensor], patcher: LogMelPatcher, device: torch.device) -> int:
    found = clips_patches([w.to(device) for w in waveforms], patcher, SEGMENTATION)
    count = sum(len(p.cpu()) for p in found)
    sync(device)
    return count


def one_call_per_clip(
    waveforms: list[torch.Tensor], patcher: LogMelPatcher, device: torch.device
) -> int:
    count = sum(len(clip_patches(w.to(device), patcher, SEGMENTATION).cpu()) for w in waveforms)
    sync(device)
    return count


def timed_rate(fn: Callable[[], int]) -> tuple[float, float]:
    """Patches per wall-clock second and per CPU second of this process (all its threads)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    count = fn()
    cpu = max(time.process_time() - cpu_start, 1e-9)
    return count / (time.perf_counter() - start), count / cpu


def max_difference(waveform: torch.Tensor, patcher: LogMelPatcher, device: torch.device) -> float:
    """Largest |ours - reference| over the first 40 patches of a clip."""
    segments = segment_waveform(waveform, RATE, 1.0, 0.5)[:40]
    expected = np.stack(
        [vggish_input.waveform_to_examples(s.numpy(), RATE, False)[0] for s in segments]
    )
    got = clip_patches(waveform.to(device), patcher, SEGMENTATION)[: len(segments)].cpu()
    return float(np.abs(got.numpy() - expected).max())


def case_row(case: Case, patcher: LogMelPatcher, repeats: int, device: torch.device) -> list[str]:
    """Best of `repeats` interleaved runs per side, so load spikes slow both sides alike."""
    audio = [speechlike(case.seconds, case.rate_hz, case.channels, i) for i in range(case.clips)]
    waveforms = [to_16k_mono(a, case.rate_hz) for a in audio]
    ours(waveforms[:1], patcher, device)  # warm-up
    ref_rate = our_rate = full_rate = ref_cpu = our_cpu = single_rate = 0.0
    for _ in range(repeats):
        wall, _ = timed_rate(lambda: one_call_per_clip(waveforms, patcher, device))
        single_rate = max(single_rate, wall)
        wall, cpu = timed_rate(lambda: ours(waveforms, patcher, device))
        our_rate, our_cpu = max(our_rate, wall), max(our_cpu, cpu)
        wall, cpu = timed_rate(lambda: reference(waveforms))
        ref_rate, ref_cpu = max(ref_rate, wall), max(ref_cpu, cpu)
        wall, _ = timed_rate(
            lambda: ours([to_16k_mono(a, case.rate_hz) for a in audio], patcher, device)
        )
        full_rate = max(full_rate, wall)
    patches = sum(len(segment_waveform(w, RATE, 1.0, 0.5)) for w in waveforms)
    diff = max_difference(waveforms[0], patcher, device)
    return [
        figure(case, device),
        f"{patches} patches",
        f"{ref_rate:,.0f} patches/s",
        f"{our_rate:,.0f} patches/s",
        f"{our_rate / ref_rate:.1f}x",
        f"per CPU second {our_cpu / ref_cpu:.1f}x; one call per clip {single_rate:,.0f} "
        f"patches/s ({single_rate / ref_rate:.1f}x); {full_rate:,.0f} patches/s incl. mono mix "
        f"+ resample; max diff {diff:.1e}",
    ]


def feature_rows(cases: list[Case], repeats: int, device: torch.device) -> list[list[str]]:
    """One table row per case."""
    patcher = LogMelPatcher().to(device)
    rows = []
    for case in cases:
        rows.append(case_row(case, patcher, repeats, device))
        print(" | ".join(rows[-1]), flush=True)
    return rows

"""Benchmark: batched torch VGGish patches vs the numpy reference on the same 16 kHz segments.

Both pipelines start from the same segments (clips loaded, resampled to 16 kHz and segmented
beforehand, untimed) and make the first 96x64 example of each segment. Example:
    python experiments/bench_features.py --corpus-dir ../shared/data/emodb-2s/wav --device cuda
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torchvggish import vggish_input

from segser.data.audio import load_audio
from segser.data.features import LogMelPatcher
from segser.data.segmentation import segment_waveform

SAMPLE_RATE = 16000
SHARED_EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb-2s" / "wav"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-dir", type=Path, default=SHARED_EMODB, help="folder of wavs")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many clips")
    parser.add_argument("--window", type=float, default=1.0, help="segment length, seconds")
    parser.add_argument("--hop", type=float, default=0.5, help="segment hop, seconds")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="segments per torch call (CPU likes small)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument(
        "--compute-dtype", choices=["float64", "float32"], default="float64", help="torch FFT dtype"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (best kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args()


def reference_patches(segments: list[np.ndarray]) -> np.ndarray:
    """The numpy reference, one segment at a time: its first example of each."""
    return np.stack(
        [
            vggish_input.waveform_to_examples(s, SAMPLE_RATE, return_tensor=False)[0]
            for s in segments
        ]
    )


def torch_patches(
    patcher: LogMelPatcher, segments: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """CPU segments in, CPU patches out: host/device copies count, as they would in a cache."""
    outputs = [
        patcher(batch.to(device, non_blocking=True)).cpu() for batch in segments.split(batch_size)
    ]
    return torch.cat(outputs)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    files = sorted(args.corpus_dir.glob("*.wav"))[: args.limit]
    if not files:
        raise SystemExit(f"{args.corpus_dir}: no .wav files. Pass --corpus-dir to a folder of wavs")
    device = torch.device(args.device)

    clips = [load_audio(f, SAMPLE_RATE) for f in files]
    segments = torch.cat([segment_waveform(c, SAMPLE_RATE, args.window, args.hop) for c in clips])
    num_clips, num_segments = len(clips), segments.shape[0]
    segments_np = list(segments.numpy())

    patcher = LogMelPatcher(compute_dtype=getattr(torch, args.compute_dtype)).to(device)
    torch_patches(patcher, segments[: args.batch_size], args.batch_size, device)  # warm-up
    # Interleave the two pipelines and keep each one's best run: a shared machine's load
    # then slows both alike instead of whichever happened to run during a spike.
    ours_times, ref_times = [], []
    for _ in range(args.repeats):
        seconds, ours = timed(
            lambda: torch_patches(patcher, segments, args.batch_size, device), device
        )
        ours_times.append(seconds)
        seconds, ref = timed(lambda: reference_patches(segments_np), torch.device("cpu"))
        ref_times.append(seconds)
    ours_s, ref_s = min(ours_times), min(ref_times)

    max_diff = float((ours.squeeze(1).double() - torch.from_numpy(ref)).abs().max())
    print(
        f"corpus: {args.corpus_dir} ({num_clips} clips, {num_segments} segments, "
        f"window {args.window} s, hop {args.hop} s)"
    )
    print(
        f"torch: device {device}, {torch.get_num_threads()} CPU threads, "
        f"batch {args.batch_size}, compute {args.compute_dtype}, best of {args.repeats} interleaved"
    )
    print(f"{'pipeline':<22}{'seconds':>10}{'clips/s':>12}{'segments/s':>14}")
    for name, seconds in (("torch (ours)", ours_s), ("numpy reference", ref_s)):
        print(
            f"{name:<22}{seconds:>10.3f}{num_clips / seconds:>12.1f}{num_segments / seconds:>14.1f}"
        )
    print(f"speed-up (reference time / ours): {ref_s / ours_s:.1f}x")
    print(f"max abs difference from the reference (float64): {max_diff:.3g}")


if __name__ == "__main__":
    main()

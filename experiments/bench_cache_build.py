"""Cache row of `make bench --cache-12h`: build the feature cache for hours of generated audio.

Writes `--hours` of speech-like 16 kHz WAV files (`--file-minutes` each) once, then builds the
patch cache in a fresh process and reports its wall time and that process's peak RSS (VmHWM).
Example: python experiments/bench_cache_build.py --hours 12 --work-dir /tmp/segser-12h
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf
from bench_feature_range import speechlike

BUILD = """
import json, shutil, sys, time
from pathlib import Path
from segser.data.cache.patches import build_or_open_cache
from segser.data.corpora.clips import Clip
from segser.data.logmel.features import LogMelSettings
from segser.data.signal.segmentation import SegmentationSettings
import soundfile as sf
wav_dir, cache_dir = Path(sys.argv[1]), Path(sys.argv[2])
shutil.rmtree(cache_dir, ignore_errors=True)
files = sorted(wav_dir.glob("*.wav"))
clips = [Clip(f.stem, f, "neutral", "s", "s", sf.info(f).duration) for f in files]
start = time.perf_counter()
cache = build_or_open_cache(clips, cache_dir, SegmentationSettings(1.0, 0.5), LogMelSettings())
seconds = time.perf_counter() - start
hwm = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:")).split()[1]
hours = sum(c.duration_seconds for c in clips) / 3600
print(json.dumps({"seconds": seconds, "patches": len(cache.row_clip),
                  "peak_rss_mb": int(hwm) / 1024, "audio_hours": hours, "files": len(files)}))
"""


def write_corpus(wav_dir: Path, hours: float, file_minutes: float) -> None:
    count = round(hours * 60 / file_minutes)
    wav_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        path = wav_dir / f"rec{index:04d}.wav"
        if not path.exists():
            audio = speechlike(file_minutes * 60, 16000, 1, seed=index)
            sf.write(path.with_suffix(".tmp"), audio, 16000, subtype="PCM_16", format="WAV")
            path.with_suffix(".tmp").rename(path)


def cache_row(hours: float, file_minutes: float, work_dir: Path) -> list[str]:
    started = time.perf_counter()
    write_corpus(work_dir / f"wav-{hours:g}h-{file_minutes:g}min", hours, file_minutes)
    print(f"corpus written in {time.perf_counter() - started:.0f} s", flush=True)
    output = subprocess.run(
        [sys.executable, "-c", BUILD, str(work_dir / f"wav-{hours:g}h-{file_minutes:g}min"),
         str(work_dir / "cache")],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result = json.loads(output.strip().splitlines()[-1])
    row = [
        f"feature cache build, {result['audio_hours']:.1f} h of audio "
        f"({result['files']} x {file_minutes:g} min WAV)",
        f"{result['patches']:,} patches",
        "-",
        f"{result['seconds']:.0f} s, peak RSS {result['peak_rss_mb']:,.0f} MB",
        "-",
        f"{result['patches'] / result['seconds']:,.0f} patches/s; target peak RSS < 2,048 MB",
    ]
    print(" | ".join(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--file-minutes", type=float, default=10.0)
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-cache"))
    args = parser.parse_args()
    cache_row(args.hours, args.file_minutes, args.work_dir)


if __name__ == "__main__":
    main()

"""Benchmark: peak RAM of a training pass over the cached patches, for corpora of growing size.

The patch cache is memory-mapped, so the process's own (anonymous) memory during a pass over
every batch should stay flat while the cache on disk grows with the corpus; the mapped file's
pages show up as file-backed RSS, which the kernel can drop at will. Each size builds its cache
in one process and makes the pass in a fresh one; the corpus is the demo generator's. Example:
    python experiments/bench_cache_memory.py --clips 200 800 --work-dir /tmp/segser-bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ONE_PASS = """
import json, resource, sys, time
from functools import partial
from pathlib import Path
from segser.data.signal.segmentation import SegmentationSettings
from segser.data.datamodule import SegmentDataModule
from segser.data.corpora.demo import read_demo_corpus
from segser.data.logmel.features import LogMelSettings
from segser.data.splits import random_split

clips_n, work = int(sys.argv[1]), Path(sys.argv[2])
label_map = {"ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral"}
clips = read_demo_corpus(work / f"demo-{clips_n}", label_map, num_clips=clips_n)
dm = SegmentDataModule(clips, ["angry", "happy", "sad", "neutral"], work / "cache",
                       SegmentationSettings(1.0, 0.5), LogMelSettings(),
                       partial(random_split, ratios=(0.8, 0.1, 0.1), seed=0))
dm.prepare_data()
if sys.argv[3] == "build":
    raise SystemExit(0)
def status_mb(key):
    line = next(x for x in open("/proc/self/status") if x.startswith(key + ":"))
    return int(line.split()[1]) / 1024
dm.setup()
anon_before = status_mb("RssAnon")
start = time.perf_counter()
segments = sum(len(batch[0]) for batch in dm.train_dataloader())
seconds = time.perf_counter() - start
print(json.dumps({"clips": clips_n, "segments": segments, "seconds": seconds,
                  "cache_mb": (dm.cache.directory / "patches.f32").stat().st_size / 2**20,
                  "anon_growth_mb": status_mb("RssAnon") - anon_before,
                  "rss_file_mb": status_mb("RssFile"), "rss_peak_mb": status_mb("VmHWM")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    rows = []
    for clips in args.clips:
        started = time.perf_counter()
        for step in ("build", "pass"):
            output = subprocess.run(
                [sys.executable, "-c", ONE_PASS, str(clips), str(args.work_dir), step],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
        rows.append(json.loads(output.strip().splitlines()[-1]))
        rows[-1]["wall_s"] = time.perf_counter() - started
    header = ("clips", "segments", "cache MB", "anon growth MB", "file RSS MB", "peak MB", "pass s")
    print(" ".join(f"{h:>14}" for h in header))
    keys = ("clips", "segments", "cache_mb", "anon_growth_mb", "rss_file_mb", "rss_peak_mb")
    for row in rows:
        print(" ".join(f"{row[k]:>14.1f}" for k in (*keys, "seconds")))
    first, last = rows[0], rows[-1]
    print(
        f"corpus x{last['clips'] / first['clips']:.1f}: cache on disk "
        f"x{last['cache_mb'] / first['cache_mb']:.2f}, anonymous memory grew by "
        f"{first['anon_growth_mb']:.1f} MB and {last['anon_growth_mb']:.1f} MB during the pass"
    )


if __name__ == "__main__":
    main()

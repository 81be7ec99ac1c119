"""`make bench-real`: the real-speech recipe on unseen speakers of two corpora, beside the peer.

Corpora (development copies in ../shared/data): EmoDB (emodb-2s, 8 speakers, 4 speaker folds of
2) and RAVDESS-dev (actors 01-12, 3 folds of 4 actors), `split=speaker_folds` (one validation
speaker drawn from the training ones). Rows: the classic peer (eGeMAPS functionals + linear SVM
and + RBF SVM, clip-level), the shipped recipe (`experiment=real_speech`: Whisper tiny.en,
frozen, clip context), the recipe with one lever switched off per row, Whisper's segment
context, and YAMNet's recipe (`experiment=real_speech_yamnet`). Every segser row reports the
paper's mean-logits clip decision (ALCA = WA, UA) and the attention-pooling head's own decision
(pooled UA / WA). Prints one Markdown table of mean +- sample std over folds (and seeds, --seeds
0,1,2), the recipe's confusion matrix per corpus (summed over folds) and the time of each run,
and a table of each lever's effect on UA per seed against the fold-to-fold spread, and writes
them to --out. The recipe row is a development estimate: the search that chose the recipe used
these same speakers and folds."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from egemaps_svm import egemaps_functionals, peer_scores  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from segser.setup.components import read_corpus  # noqa: E402
from segser.setup.entry import composed  # noqa: E402
from segser.train import train  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Corpus:
    name: str
    dataset: str
    root: Path
    num_folds: int


CORPORA = (
    Corpus("EmoDB (emodb-2s)", "emodb", SHARED / "emodb-2s", 4),
    Corpus("RAVDESS-dev (actors 01-12)", "ravdess", SHARED / "ravdess-dev", 3),
)
RECIPE = "recipe (experiment=real_speech; development estimate)"
# One lever switched off per row (conf/experiment/real_speech.yaml turns each on), then the
# other segment modes of Whisper, then YAMNet's recipe (the recipe before Whisper).
ROWS: dict[str, tuple[str, ...]] = {
    RECIPE: (),
    "- augmentation": ("augment=none",),
    "- speaker normalisation": ("data.speaker_norm=false",),
    "- class weights": ("loss.class_weights=false",),
    "segment context (each segment's own frames)": ("backbone.net.context=segment",),
    "YAMNet recipe (experiment=real_speech_yamnet)": ("experiment=real_speech_yamnet",),
}
# --whisper-30s adds this row: each clip as Whisper's own zero-padded 30 s input (what it was
# trained on), 30x the encoder's work (about 6 min per corpus pass on 2 loaded cores).
WHISPER_30S_ROWS: dict[str, tuple[str, ...]] = {
    "Whisper's 30 s input per clip (- augmentation)": (
        "backbone.net.input=padded_30s",
        "augment=none",
    ),
}
# --fine-tune adds this row (about 8 min a fold on 2 cores: beyond the bench's 30 minutes).
FINE_TUNE_ROWS: dict[str, tuple[str, ...]] = {
    # Fine-tuning depth: Whisper's last 2 blocks train (backbone lr 1e-4), each segment's own
    # frames (clip context serves the frozen cache only), no embedding cache and no speaker
    # normalisation (it standardizes cached embeddings); compare it with "- speaker
    # normalisation". 8 epochs and 2 threads keep it to minutes a fold.
    "fine-tune last 2 blocks (no speaker norm)": (
        "backbone.freeze=false",
        "backbone.net.context=segment",
        "backbone.trainable_layers=2",
        "backbone.lr=1e-4",
        "data.speaker_norm=false",
        "trainer.max_epochs=8",
        "num_threads=2",
    ),
}
METRICS = ("SA", "ALCA", "BCA", "UA", "WA", "pooled_UA", "pooled_WA")
PEERS = {"eGeMAPS + linear SVM (peer)": "linear", "eGeMAPS + RBF SVM (peer)": "rbf"}


def shared_overrides(corpus: Corpus) -> list[str]:
    return [f"dataset={corpus.dataset}", f"dataset.root={corpus.root}", "split=speaker_folds",
            f"split.num_folds={corpus.num_folds}"]  # fmt: skip


def run_segser(
    corpus: Corpus, extra: tuple[str, ...], fold: int, args, work: Path, seed: int = 0
) -> dict:
    """Train and test the recipe (with `extra` overrides) on one fold; test metrics + time."""
    chosen = [o for o in extra if o.startswith("experiment=")] or ["experiment=real_speech"]
    overrides = [
        *chosen,
        *shared_overrides(corpus),
        f"split.fold={fold}",
        f"seed={seed}",
        f"paths.cache_dir={work / 'cache'}",
        "+trainer.enable_model_summary=false",
        "+trainer.enable_progress_bar=false",
        *(["trainer.max_epochs=1", "augment.passes=1"] if args.quick else []),
        *(o for o in extra if not o.startswith("experiment=")),
    ]
    cfg = composed("train", overrides)
    name = "_".join([corpus.dataset, *extra, f"fold{fold}", f"seed{seed}"]).replace("/", "-")
    tic = time.perf_counter()
    payload = train(cfg, work / "runs" / name)
    return {**payload["metrics"], "seconds": time.perf_counter() - tic,
            "confusion": np.asarray(payload["confusion_matrix"]),
            "speaker_norm": payload["speaker_norm"], "fold": fold, "seed": seed}  # fmt: skip


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "-"
    return f"{statistics.fmean(values):.3f} ± {std}"


def table(results: dict[tuple[str, str], list[dict]]) -> str:
    header = ["corpus", "configuration", *METRICS, "s per run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (corpus, name), runs in results.items():
        cells = [mean_std([r[m] for r in runs if m in r]) for m in METRICS]
        seconds = [r["seconds"] for r in runs if "seconds" in r]
        timing = f"{statistics.fmean(seconds):.0f} (max {max(seconds):.0f})" if seconds else "-"
        lines.append(f"| {corpus} | {name} | " + " | ".join(cells) + f" | {timing} |")
    return "\n".join(lines)


def lever_table(results: dict[tuple[str, str], list[dict]]) -> str:
    """Each lever row's UA minus the recipe's, paired by fold and seed: the mean per seed, the
    fold-to-fold spread (sample std of the paired differences within a seed, averaged), and
    whether switching it off lowered UA at every seed by more than that spread."""
    header = "| corpus | lever | UA change per seed | fold spread | beyond the spread, every seed |"
    lines = [header, "|---|---|---|---|---|"]
    for (corpus, name), runs in results.items():
        recipe = {(r["seed"], r["fold"]): r["UA"] for r in results.get((corpus, RECIPE), [])}
        if name == RECIPE or not recipe or "fold" not in (runs[0] if runs else {}):
            continue
        seeds = sorted({r["seed"] for r in runs})
        change = {s: [r["UA"] - recipe[(s, r["fold"])] for r in runs if r["seed"] == s]
                  for s in seeds}  # fmt: skip
        means = [statistics.fmean(change[s]) for s in seeds]
        spreads = [statistics.stdev(change[s]) for s in seeds if len(change[s]) > 1]
        spread = statistics.fmean(spreads) if spreads else float("nan")
        beyond = all(m < -spread for m in means) and len(seeds) > 1
        per_seed = ", ".join(f"{m:+.3f}" for m in means)
        verdict = "yes" if beyond else "no" if len(seeds) > 1 else "one seed only"
        lines.append(f"| {corpus} | {name} | {per_seed} | {spread:.3f} | {verdict} |")
    return "\n".join(lines)


def confusion(corpus: str, runs: list[dict], classes: list[str]) -> str:
    total = sum(r["confusion"] for r in runs)
    lines = [f"{corpus}, recipe, mean-logits decision, summed over folds (rows: true class)", "",
             "| true \\ predicted | " + " | ".join(classes) + " |",
             "|---|" + "---|" * len(classes)]  # fmt: skip
    for label, row in zip(classes, total.tolist(), strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "outputs/bench_real/bench_real.md")
    parser.add_argument("--work", type=Path, default=None, help="runs and caches (default: temp)")
    parser.add_argument("--quick", action="store_true", help="fold 1, 1 epoch: a smoke run")
    parser.add_argument("--rows", default="", help="only rows whose name contains this")
    parser.add_argument("--corpora", default="", help="only corpora whose name contains this")
    parser.add_argument("--fine-tune", action="store_true", help="add the fine-tuning row")
    parser.add_argument("--whisper-30s", action="store_true", help="add the 30 s input row")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, each on every fold")
    args = parser.parse_args(argv)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_real-"))
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    results: dict[tuple[str, str], list[dict]] = {}
    notes = []
    for corpus in (c for c in CORPORA if args.corpora.lower() in c.name.lower()):
        if not corpus.root.is_dir():
            print(f"error: {corpus.root}: corpus not found", file=sys.stderr)
            return 2
        folds = [1] if args.quick else list(range(1, corpus.num_folds + 1))
        shipped = composed("train", ["experiment=real_speech", *shared_overrides(corpus)])
        clips = read_corpus(shipped.dataset)
        features = egemaps_functionals(clips, work / f"egemaps-{corpus.dataset}.npy")
        labels = [c.label for c in clips]
        splits = [instantiate(shipped.split, fold=fold)(clips) for fold in folds]
        for name, kernel in PEERS.items():
            results[(corpus.name, name)] = [
                peer_scores(features, labels, split, kernel) for split in splits
            ]
        rows = ROWS | (FINE_TUNE_ROWS if args.fine_tune else {})
        for name, extra in (rows | (WHISPER_30S_ROWS if args.whisper_30s else {})).items():
            if args.rows.lower() not in name.lower():
                continue
            runs = results[(corpus.name, name)] = []
            for seed, fold in ((s, f) for s in seeds for f in folds):
                runs.append(run_segser(corpus, extra, fold, args, work, seed))
                last = runs[-1]
                print(f"{corpus.name} / {name} / seed {seed} fold {fold}: UA {last['UA']:.3f} WA "
                      f"{last['WA']:.3f} pooled {last['pooled_UA']:.3f} / "
                      f"{last['pooled_WA']:.3f} ({last['seconds']:.0f} s)", flush=True)  # fmt: skip
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(table(results) + "\n(partial)\n")
            if name == RECIPE:
                notes.append(confusion(corpus.name, runs, list(shipped.classes)))
    minutes = (time.perf_counter() - started) / 60
    text = table(results)
    text += (
        f"\n\nmean ± sample std over speaker folds (x seeds {args.seeds}). The recipe row is a"
        " development estimate: the search that chose the recipe used these speakers and folds."
        " UA/WA: the mean-logits clip decision (WA ="
        " ALCA); pooled_UA/WA: the attention-pooling head's decision; peers: clip-level only."
        " Every segser row uses speaker normalisation (test speakers' unlabelled audio) unless"
        " its name says it is off.\n\n" + "\n\n".join(notes)
    )
    text += "\n\nEach lever switched off, UA against the recipe:\n\n" + lever_table(results)
    command = f"python experiments/bench_real.py{' --quick' if args.quick else ''}"
    text += f"\n\nCommand: {command} --seeds {args.seeds}; "
    text += f"{minutes:.1f} min.\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much of a speaker's audio their own speaker_norm statistics need (predict's minimum).

Trains the YAMNet recipe (`experiment=real_speech_yamnet`, augmentation and clip pooling off to
save time) on each of EmoDB-2s's 4 speaker folds, then classifies every test speaker's labelled
clips (mean logits) with statistics from a random set of that speaker's files (every emotion)
totalling at least B seconds, DRAWS draws per budget, beside the speaker's full statistics (what
evaluate uses) and the checkpoint's training statistics (predict's fallback). Prints clip UA and
WA per budget: mean +- std over the draws, pooled over the folds' test speakers.

    python experiments/speaker_norm_minimum.py [--draws 20] [--out results.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segser.data.corpora.named_files import read_named_files  # noqa: E402
from segser.data.signal.audio import audio_info  # noqa: E402
from segser.data.signal.stream import stream_segments  # noqa: E402
from segser.data.speaker_norm import MIN_STD  # noqa: E402
from segser.predict import Predictor  # noqa: E402
from segser.setup.entry import composed  # noqa: E402
from segser.train import train  # noqa: E402

ROOT = REPO.parent / "shared" / "data" / "emodb-2s"
LABEL_MAP = {"W": "angry", "F": "happy", "T": "sad", "N": "neutral"}
BUDGETS_SECONDS = (2, 4, 6, 8, 10, 15, 20, 30)


def file_embeddings(predictor: Predictor, path: Path) -> torch.Tensor:
    info = audio_info(path)
    cutting = (predictor.sample_rate, predictor.window_seconds, predictor.hop_seconds, 64)
    batches = stream_segments(info, *cutting, 30.0, predictor.tail)
    return torch.cat([predictor.embeddings(b.segments) for b in batches]).double()


def statistics(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    stacked = torch.cat(rows)
    return stacked.mean(0), stacked.std(0, correction=0).clamp_min(MIN_STD)


def predictions(predictor, clips, embedded, mean, std) -> list[int]:
    """Mean-logits decision of each labelled clip with the given statistics."""
    decided = []
    with torch.inference_mode():
        for clip in clips:
            standardized = ((embedded[clip.clip_id] - mean) / std).float()
            decided.append(int(predictor.model.head(standardized).mean(0).argmax()))
    return decided


def ua_wa(predicted: list[int], truth: list[int], classes: int) -> tuple[float, float]:
    p, t = np.array(predicted), np.array(truth)
    recalls = [np.mean(p[t == c] == c) for c in range(classes) if np.any(t == c)]
    return float(np.mean(recalls)), float(np.mean(p == t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    every = read_named_files("emodb", ROOT, LABEL_MAP, keep_unmapped=True)
    rng = np.random.default_rng(0)
    rows: dict[str, list[tuple[list[int], list[int]]]] = {}  # budget -> per draw: pred, truth
    with tempfile.TemporaryDirectory() as tmp:
        for fold in (1, 2, 3, 4):
            overrides = ["experiment=real_speech_yamnet", "augment=none", "clip_pooling=none",
                         "dataset=emodb", f"dataset.root={ROOT}", "split=speaker_folds",
                         "split.num_folds=4", f"split.fold={fold}",
                         f"paths.data_dir={tmp}/data", f"paths.output_dir={tmp}/out"]  # fmt: skip
            payload = train(composed("train", overrides), Path(tmp) / f"fold{fold}")
            predictor = Predictor(payload["best_checkpoint"], torch.device("cpu"), 64)
            fallback = (predictor.speaker_norm.mean.double(), predictor.speaker_norm.std.double())
            classes = predictor.classes
            for speaker in payload["split"]["test_speakers"]:
                files = [c for c in every if c.speaker == speaker]
                embedded = {c.clip_id: file_embeddings(predictor, c.path) for c in files}
                labelled = [c for c in files if c.label in classes]
                truth = [classes.index(c.label) for c in labelled]

                def add(name: str, draw: int, mean, std, scored=(predictor, labelled, embedded)):
                    decided = predictions(*scored, mean, std)
                    while len(rows.setdefault(name, [])) <= draw:
                        rows[name].append(([], []))
                    rows[name][draw][0].extend(decided)
                    rows[name][draw][1].extend(truth)  # noqa: B023 (used before the next speaker)

                add("training statistics (fallback)", 0, *fallback)
                add("all of the speaker's audio", 0, *statistics(list(embedded.values())))
                for budget in BUDGETS_SECONDS:
                    for draw in range(args.draws):
                        chosen, seconds = [], 0.0
                        for i in rng.permutation(len(files)):
                            chosen.append(embedded[files[i].clip_id])
                            seconds += files[i].duration_seconds
                            if seconds >= budget:
                                break
                        add(f">= {budget} s of the speaker", draw, *statistics(chosen))
    lines = ["| speaker statistics from | clip UA | clip WA |", "|---|---|---|"]
    for name, draws in rows.items():
        scores = np.array([ua_wa(p, t, 4) for p, t in draws])
        spread = scores.std(0) if len(scores) > 1 else np.zeros(2)
        lines.append(
            f"| {name} | {scores[:, 0].mean():.3f} ± {spread[0]:.3f} "
            f"| {scores[:, 1].mean():.3f} ± {spread[1]:.3f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

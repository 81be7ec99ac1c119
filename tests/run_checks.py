"""Checks shared by the end-to-end tests of raw-sample backbones (SSL, Whisper)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segser.data.feature_path import segment_lengths
from segser.data.signal.audio import load_audio
from segser.data.signal.segmentation import segment_waveform
from segser.evaluate import evaluate
from segser.predict import predict
from tests.hydra_app import composed


def evaluate_matches_the_run(checkpoint: Path, data_dir: Path, out: Path, run: dict) -> None:
    """evaluate from the checkpoint scores the run's test clips as the run did: train scored
    float16-cached embeddings, evaluate runs the backbone in float32, so a near-tie may flip
    one segment (or one clip), never more."""
    cfg = composed("evaluate", [f"ckpt={checkpoint}", f"paths.data_dir={data_dir}"])
    again = evaluate(cfg, out)
    segment, clip = 1 / run["num_test_segments"], 1 / run["num_test_clips"]
    assert abs(again["metrics"]["SA"] - run["metrics"]["SA"]) <= segment + 1e-6
    for name in ("ACA", "SCA", "ALCA", "BCA", "WA"):
        assert abs(again["metrics"][name] - run["metrics"][name]) <= clip + 1e-6


def predict_one_clip(checkpoint: Path, data_dir: Path, out: Path) -> tuple[Path, np.ndarray]:
    """predict on the demo corpus's first clip: the clip and its segments' probabilities."""
    clip = sorted(data_dir.glob("demo-*/**/*.wav"))[0]
    rows, errors = predict(checkpoint, [clip], out, batch_size=4, device="cpu")
    assert not errors and rows[0]["segments"] > 0
    with open(out / f"{clip.stem}.segments.csv") as handle:
        probabilities = np.array(
            [[float(r[k]) for k in r if k.startswith("p_")] for r in csv.DictReader(handle)]
        )
    return clip, probabilities


def expected_probabilities(model: Any, clip: Path) -> np.ndarray:
    """The model on the clip's 1 s / 0.5 s segments with their valid lengths (tail padded)."""
    audio = load_audio(clip, 16000)
    segments = segment_waveform(audio, 16000, 1.0, 0.5, "pad")
    lengths = segment_lengths(len(audio), np.arange(len(segments)) * 8000, 16000)
    assert lengths[-1] < 16000  # the padded tail: its valid samples reach the backbone
    with torch.no_grad():
        return model(segments.unsqueeze(1), lengths).softmax(1).numpy()

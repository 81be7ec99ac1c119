"""What `segser.predict` writes, field by field, from a model whose logits the test chooses.

The checkpoints are built without training (the demo's baseline model, written as
`segser.train` writes one), and the model's logits are replaced by a known sequence, so every
CSV cell and JSON field has a reference computed here by hand.
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
import soundfile as sf
import torch

from segser.models.factory import build_classifier
from segser.predict import Predictor, predict
from segser.predict.timeline import Timeline
from segser.setup.components import model_config
from tests.hydra_app import composed

RATE = 16_000
CLASSES = ["angry", "happy", "sad", "neutral"]
# Segment j's logits are PATTERN[j % 3]: the segments disagree, so the mean of their softmax
# and the softmax of their mean logits differ (by ~0.03 here).
PATTERN = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])


def write_checkpoint(path: Path, *overrides: str, drop_tail: bool = False) -> Path:
    """An untrained demo_baseline checkpoint with the given model settings."""
    config = model_config(composed("train", ["experiment=demo_baseline", *overrides]))
    model = build_classifier(copy.deepcopy(config))
    if drop_tail:  # as a segser from before segmentation.tail wrote it
        del config["segmentation"]["tail"]
    payload = {"epoch": 0, "state_dict": model.state_dict()}
    torch.save({**payload, "hyper_parameters": {"model_config": config}}, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        "pad": write_checkpoint(folder / "pad.ckpt", "segmentation.tail=pad"),
        "stop": write_checkpoint(folder / "stop.ckpt", "segmentation.tail=stop"),
        "older": write_checkpoint(folder / "older.ckpt", drop_tail=True),
        "window": write_checkpoint(
            folder / "window.ckpt",
            "segmentation.window_seconds=1.2",
            "segmentation.hop_seconds=0.3337",
        ),
    }


@pytest.fixture
def patterned_logits(monkeypatch) -> Iterator[list[int]]:
    """Replace the model's logits by PATTERN, in segment order; yields the batch sizes seen."""
    seen: list[int] = []

    def logits(self, segments: torch.Tensor) -> torch.Tensor:
        first = sum(seen)
        seen.append(len(segments))
        return PATTERN[torch.arange(first, first + len(segments)) % len(PATTERN)]

    monkeypatch.setattr(Predictor, "logits", logits)
    yield seen


def write_tone(path: Path, samples: int, rate: int = RATE, channels: int = 1) -> Path:
    t = np.arange(samples) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * t / 3))
    sf.write(path, np.repeat(tone[:, None], channels, axis=1), rate, subtype="PCM_16")
    return path


def outputs(out: Path, stem: str) -> tuple[list[dict[str, str]], dict[str, Any], dict]:
    with open(out / f"{stem}.segments.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows, header = list(reader), reader.fieldnames
    with open(out / "summary.csv", newline="") as handle:
        summary = {row["output"]: row for row in csv.DictReader(handle)}
    payload = json.loads((out / f"{stem}.json").read_text())
    return rows, {"header": header, **payload}, summary[stem]


def run(checkpoint: Path, out: Path, *files: Path, block_seconds: float = 0.7) -> list[dict]:
    rows, errors = predict(
        checkpoint, files, out, batch_size=5, device="cpu", block_seconds=block_seconds
    )
    assert not errors
    return rows


def test_every_field_against_a_reference_computed_by_hand(
    checkpoints, patterned_logits, tmp_path: Path
) -> None:
    path = write_tone(tmp_path / "speech.wav", 4 * RATE + 9600, rate=RATE, channels=2)
    run(checkpoints["pad"], tmp_path / "out", path)
    rows, payload, summary = outputs(tmp_path / "out", "speech")
    count = 10  # 4.6 s at hop 0.5 s under pad: starts 0, 0.5, ..., 4.5
    logits = PATTERN[torch.arange(count) % 3].double()
    probabilities = logits.softmax(dim=1)

    # segments CSV: one row per segment, columns in this order
    assert payload["header"] == ["segment", "start_s", "end_s", "prediction"] + [
        f"p_{c}" for c in CLASSES
    ]
    assert [int(r["segment"]) for r in rows] == list(range(count))
    assert [float(r["start_s"]) for r in rows] == [0.5 * j for j in range(count)]
    assert [float(r["end_s"]) for r in rows] == [0.5 * j + 1.0 for j in range(count)]
    assert [r["prediction"] for r in rows] == [
        ["angry", "happy", "neutral"][j % 3] for j in range(10)
    ]
    written = torch.tensor(
        [[float(r[f"p_{c}"]) for c in CLASSES] for r in rows], dtype=torch.float64
    )
    torch.testing.assert_close(written, probabilities, atol=1e-6, rtol=0)

    # JSON: the recording, the model's settings, and the clip decisions
    assert payload["file"] == str(path) and payload["output"] == "speech"
    assert payload["duration_s"] == pytest.approx((4 * RATE + 9600) / RATE)
    assert (payload["sample_rate_hz"], payload["channels"]) == (RATE, 2)
    assert payload["model_sample_rate_hz"] == RATE
    assert (payload["window_seconds"], payload["hop_seconds"]) == (1.0, 0.5)
    assert payload["classes"] == CLASSES
    clip = payload["clip"]
    assert clip["segments"] == count
    mean_logits = logits.mean(dim=0)  # [1.6, 1.2, 0, 0.3]: ALCA says angry
    assert clip["mean_logits"]["prediction"] == "angry"
    assert list(clip["mean_logits"]["mean_logits"].values()) == pytest.approx(mean_logits.tolist())
    softmax_of_mean = mean_logits.softmax(dim=0)
    assert list(clip["mean_logits"]["probabilities"].values()) == pytest.approx(
        softmax_of_mean.tolist()
    )
    assert clip["majority"] == {
        "prediction": "angry",  # 4 angry, 3 happy, 3 neutral
        "votes": {"angry": 4, "happy": 3, "sad": 0, "neutral": 3},
    }
    mean_of_softmax = probabilities.mean(dim=0)
    assert (mean_of_softmax - softmax_of_mean).abs().max() > 0.02  # the two rules differ here
    assert list(clip["mean_probabilities"]) == CLASSES
    assert list(clip["mean_probabilities"].values()) == pytest.approx(mean_of_softmax.tolist())

    # summary.csv: the file's row, from the same decisions
    assert summary["file"] == str(path) and int(summary["segments"]) == count
    assert float(summary["duration_s"]) == pytest.approx(payload["duration_s"])
    assert (summary["clip_mean_logits"], summary["clip_majority"]) == ("angry", "angry")
    assert [float(summary[f"p_{c}"]) for c in CLASSES] == pytest.approx(
        mean_of_softmax.tolist(), abs=1e-6
    )
    assert summary["error"] == ""

    # the timeline: a PNG image of the run
    image = plt.imread(tmp_path / "out" / "speech.timeline.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 300


def test_end_s_is_start_plus_the_window_not_the_hop(checkpoints, patterned_logits, tmp_path):
    """Window 1.2 s, hop 0.3337 s: 5339.2 samples, cut as 5339, so segment j starts at
    j * 5339 samples (3.3369 s for j = 10, not 3.337 s)."""
    path = write_tone(tmp_path / "clip.wav", 4 * RATE)
    run(checkpoints["window"], tmp_path / "out", path)
    rows, payload, _ = outputs(tmp_path / "out", "clip")
    assert (payload["window_seconds"], payload["hop_seconds"]) == (1.2, 0.3337)
    assert len(rows) == 12  # starts inside 4 s: 0 .. 11 x 5339 samples
    for j, row in enumerate(rows):
        start = j * 5339 / RATE
        assert float(row["start_s"]) == round(start, 4)
        assert float(row["end_s"]) == round(start + 1.2, 4)


@pytest.mark.parametrize(
    ("model", "expected"),
    [("stop", 60), ("pad", 61), ("older", 61)],  # "older": no segmentation.tail, trained with pad
)
def test_a_long_file_is_cut_by_the_models_own_tail_rule(
    checkpoints, patterned_logits, tmp_path: Path, model: str, expected: int
) -> None:
    """30 s + 1 sample, read in 0.7 s blocks: the window at 29.0 s ends a sample short of the
    end, so `stop` adds the one at 29.5 s (60 segments) and `pad` also the one at 30.0 s (61)."""
    path = write_tone(tmp_path / "long.wav", 30 * RATE + 1)
    run(checkpoints[model], tmp_path / "out", path)
    rows, payload, summary = outputs(tmp_path / "out", "long")
    assert len(rows) == payload["clip"]["segments"] == int(summary["segments"]) == expected
    assert sum(patterned_logits) == expected  # the model scored exactly these segments
    assert float(rows[-1]["start_s"]) == 0.5 * (expected - 1)
    assert sum(payload["clip"]["majority"]["votes"].values()) == expected


@pytest.mark.parametrize(("segments", "bins"), [(10, 4), (7, 7), (9, 20), (2000, 7)])
def test_timeline_bins_pool_consecutive_segments_whatever_the_batches(
    segments: int, bins: int
) -> None:
    """Each bar is the mean of a run of consecutive segments, at their mean centre time."""
    generator = torch.Generator().manual_seed(segments)
    probabilities = torch.rand(segments, 3, generator=generator).softmax(dim=1)
    whole = Timeline(["a", "b", "c"], segments, 0.5, 1.0, bins)
    whole.add(0, probabilities)
    pieces = Timeline(["a", "b", "c"], segments, 0.5, 1.0, bins)
    for start in range(0, segments, 3):
        pieces.add(start, probabilities[start : start + 3])
    np.testing.assert_allclose(pieces.probability_sums, whole.probability_sums, atol=1e-12)
    np.testing.assert_array_equal(pieces.counts, whole.counts)

    used = min(bins, segments)
    assert whole.num_bins == used and whole.counts.sum() == segments
    assert whole.counts.max() - whole.counts.min() <= 1  # even bins, none empty
    edges = np.r_[0, np.cumsum(whole.counts)]
    for b in range(used):  # bin b holds segments edges[b] .. edges[b + 1] - 1, in order
        members = slice(edges[b], edges[b + 1])
        np.testing.assert_allclose(
            whole.probability_sums[b] / whole.counts[b],
            probabilities[members].double().mean(dim=0).numpy(),
            atol=1e-12,
        )
        centres = np.arange(edges[b], edges[b + 1]) * 0.5 + 0.5  # start + window / 2
        assert whole.centre_sums[b] / whole.counts[b] == pytest.approx(centres.mean())

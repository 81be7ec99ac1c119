"""Issue 26.1-2: a data.speaker_norm=true checkpoint evaluates and predicts, end to end."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from segser.data.corpora.named_files import read_named_files
from segser.data.signal.segmentation import segment_waveform
from segser.evaluate import evaluate
from segser.models.checkpoint import SPEAKER_NORM_KEY, load_trained
from segser.predict import Predictor, main, predict
from segser.predict.speakers import MIN_SPEAKER_SECONDS
from segser.train import train
from tests.conftest import SHARED_EMODB
from tests.hydra_app import composed
from tests.test_evaluate import evaluate_config

WINDOW, HOP = 1.0, 0.5  # the recipe: overlapping segments


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """The recipe (speaker_norm, class weights, clip pooling, whole-speaker validation) on 48
    demo clips, tested on two held-out speakers; augmentation off and 2 epochs for time."""
    tmp = tmp_path_factory.mktemp("speaker_norm_run")
    overrides = [
        "experiment=real_speech_yamnet",  # the YAMNet recipe: 6 x 512 statistics, quick
        "dataset=demo",
        f"paths.data_dir={tmp / 'data'}",
        f"paths.output_dir={tmp / 'outputs'}",
        "dataset.num_clips=48",
        "augment=none",
        "trainer.max_epochs=2",
    ]
    return train(composed("train", overrides), tmp / "outputs" / "run")


def test_the_checkpoint_stores_the_training_statistics_as_plain_tensors(run) -> None:
    stored = torch.load(run["best_checkpoint"], map_location="cpu", weights_only=True)
    statistics = stored[SPEAKER_NORM_KEY]
    assert statistics["mean"].shape == statistics["std"].shape == (3072,)
    assert stored["segser_run"]["speaker_norm"] is True
    split = json.loads((Path(run["best_checkpoint"]).parents[1] / "split.json").read_text())
    assert statistics["speakers"] == sorted({s[:5] + s.split("_")[-1][0] for s in split["train"]})


def test_metrics_json_says_where_speaker_statistics_come_from(run) -> None:
    assert run["speaker_norm"] is True
    # the demo corpus of 48 clips has 2 turns coded outside the 4-class map (issue 26.2)
    assert run["speaker_statistics"]["clips_outside_the_classes"] == 2
    assert "outside the classes" in run["speaker_statistics"]["from"]


def test_evaluate_reproduces_the_runs_own_test_metrics(run, tmp_path: Path) -> None:
    again = evaluate(evaluate_config(run["best_checkpoint"]), tmp_path / "eval")
    assert again["speaker_norm"] is True
    assert again["num_test_clips"] == run["num_test_clips"]
    assert set(run["metrics"]) - set(again["metrics"]) == {"pooled_UA", "pooled_WA"}
    for name, value in again["metrics"].items():
        assert value == pytest.approx(run["metrics"][name], abs=1e-6), name


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_another_corpus_is_normalised_per_speaker_as_predict_does(run, tmp_path: Path) -> None:
    """evaluate on another corpus (cached embeddings, per-speaker statistics of all its clips)
    and predict with each file's speaker named (streamed statistics): the same probabilities."""
    if not SHARED_EMODB.is_dir():
        pytest.skip(f"{SHARED_EMODB} is not available")
    root = tmp_path / "emodb"
    root.mkdir()
    for source in sorted(SHARED_EMODB.glob("1[02]a0[1-5]*.wav")):  # 2 speakers, 7 emotions
        shutil.copy(source, root / source.name)
    checkpoint = run["best_checkpoint"]
    cfg = evaluate_config(checkpoint, "dataset=emodb", f"dataset.root={root}")
    payload = evaluate(cfg, tmp_path / "eval", other_corpus=True)
    every = read_named_files("emodb", root, dict(cfg.dataset.reader.label_map), keep_unmapped=True)
    assert payload["speaker_norm"] is True
    # boredom, disgust and fear clips join their speaker's statistics (issue 26.2)
    assert (
        payload["speaker_statistics"]["clips_outside_the_classes"]
        == len(every)
        - len({row["clip_id"] for row in read_rows(tmp_path / "eval" / "predictions.csv")})
        > 0
    )
    speakers = tmp_path / "speakers.csv"
    speakers.write_text("path,speaker\n" + "".join(f"{c.path.name},{c.speaker}\n" for c in every))
    shutil.copy(speakers, root / "speakers.csv")
    out = tmp_path / "predict"
    _, errors = predict(checkpoint, [root], out, batch_size=8, device="cpu", block_seconds=0.7,
                        speakers=root / "speakers.csv", min_speaker_seconds=0.0)  # fmt: skip
    assert not errors
    rows = read_rows(tmp_path / "eval" / "predictions.csv")
    classes = payload["classes"]
    for clip_id in {row["clip_id"] for row in rows}:
        evaluated = [r for r in rows if r["clip_id"] == clip_id]
        predicted = read_rows(out / f"{clip_id}.segments.csv")
        assert len(predicted) == len(evaluated)
        for mine, theirs in zip(evaluated, predicted, strict=True):
            for c in classes:
                assert float(mine[f"p_{c}"]) == pytest.approx(float(theirs[f"p_{c}"]), abs=1e-4)


@pytest.fixture(scope="module")
def long_recording(run, tmp_path_factory) -> Path:
    """One test speaker's clips end to end in one file, repeated to at least 30 s (over the
    default minimum for a speaker's own statistics)."""
    split = json.loads((Path(run["best_checkpoint"]).parents[1] / "split.json").read_text())
    root = Path(run["config"]["dataset"]["root"])
    paths = {p.stem: p for p in root.rglob("*.wav")}
    speaker = sorted(split["test"])[0][:5] + sorted(split["test"])[0].split("_")[-1][0]
    mine = [s for s in sorted(split["test"]) if s[:5] + s.split("_")[-1][0] == speaker]
    audio = np.concatenate([sf.read(paths[s], dtype="float32")[0] for s in mine])
    audio = np.tile(audio, int(np.ceil(30 * 16000 / len(audio))))
    path = tmp_path_factory.mktemp("long") / "one_speaker.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    return path


def reference_probabilities(checkpoint: str, path: Path, statistics=None) -> torch.Tensor:
    """head((embedding - mean) / std) on the whole file cut at once; statistics from that
    file's own embeddings, or the given (training) ones."""
    predictor = Predictor(checkpoint, torch.device("cpu"), 8)
    audio = torch.from_numpy(sf.read(path, dtype="float32")[0])
    segments = segment_waveform(audio, 16000, WINDOW, HOP, predictor.tail)
    with torch.inference_mode():
        embeddings = predictor.model.backbone(predictor.features(segments)).double()
        mean, std = statistics or (embeddings.mean(0), embeddings.std(0, correction=0))
        logits = predictor.model.head(((embeddings - mean) / std).float())
    return logits.softmax(dim=1)


def predicted(out: Path, stem: str, classes: list[str]) -> torch.Tensor:
    rows = read_rows(out / f"{stem}.segments.csv")
    return torch.tensor([[float(r[f"p_{c}"]) for c in classes] for r in rows])


def test_streamed_predict_normalises_a_long_recording_from_itself(
    run, long_recording: Path, tmp_path: Path
) -> None:
    checkpoint = run["best_checkpoint"]
    _, errors = predict(checkpoint, [long_recording], tmp_path, batch_size=5, device="cpu",
                        block_seconds=1.3, one_speaker=True)  # fmt: skip
    assert not errors
    classes = load_trained(checkpoint).classes
    expected = reference_probabilities(checkpoint, long_recording)
    torch.testing.assert_close(predicted(tmp_path, "one_speaker", classes), expected,
                               atol=1e-5, rtol=0)  # fmt: skip
    note = json.loads((tmp_path / "one_speaker.json").read_text())["speaker_norm"]
    assert note["statistics"] == "speaker" and note["speaker_seconds"] >= MIN_SPEAKER_SECONDS


@pytest.mark.parametrize(
    "options", [{}, {"one_speaker": True, "min_speaker_seconds": 1000.0}], ids=["none", "short"]
)
def test_without_enough_of_a_speaker_the_training_statistics_stand_in_with_one_warning(
    run, long_recording: Path, tmp_path: Path, capsys, options
) -> None:
    checkpoint = run["best_checkpoint"]
    _, errors = predict(checkpoint, [long_recording], tmp_path, batch_size=8, device="cpu",
                        **options)  # fmt: skip
    assert not errors
    trained = load_trained(checkpoint)
    stored = (trained.speaker_norm.mean.double(), trained.speaker_norm.std.double())
    expected = reference_probabilities(checkpoint, long_recording, stored)
    torch.testing.assert_close(predicted(tmp_path, "one_speaker", trained.classes), expected,
                               atol=1e-5, rtol=0)  # fmt: skip
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "training statistics" in warnings[0]
    assert ("under 1000 s" in warnings[0]) == bool(options)


def test_the_command_line_names_the_speaker(run, long_recording: Path, tmp_path: Path) -> None:
    argv = [run["best_checkpoint"], str(long_recording), "--out", str(tmp_path)]
    assert main([*argv, "--device", "cpu", "--one-speaker"]) == 0
    note = json.loads((tmp_path / "one_speaker.json").read_text())["speaker_norm"]
    assert note["statistics"] == "speaker" and note["speaker_seconds"] >= MIN_SPEAKER_SECONDS
    assert main([*argv, "--one-speaker", "--speakers", str(tmp_path / "x.csv")]) == 2

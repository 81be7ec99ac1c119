"""`backbone=whisper_tiny_en` as a user types it: train, evaluate and predict from the
checkpoint, with the packaged pre-trained encoder and nothing downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segser.data.whisper.settings import WhisperSettings
from segser.errors import SegserError
from segser.evaluate import evaluate
from segser.models.checkpoint import load_trained
from segser.models.whisper import WhisperBackbone
from segser.predict import predict
from segser.setup.config_checks import check_config
from segser.train import train
from tests.hydra_app import composed
from tests.run_checks import (
    evaluate_matches_the_run,
    expected_probabilities,
    predict_one_clip,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("whisper_data")


def whisper_config(tmp_path: Path, data_dir: Path, *extra: str):
    return composed(
        "train",
        [
            "experiment=demo",
            "backbone=whisper_tiny_en",
            f"paths.data_dir={data_dir}",
            f"paths.output_dir={tmp_path / 'outputs'}",
            "dataset.num_clips=48",
            "trainer.max_epochs=2",
            "callbacks.progress_bar=null",
            *extra,
        ],
    )


def test_frozen_tiny_en_trains_evaluates_and_predicts(tmp_path: Path, data_dir: Path) -> None:
    payload = train(whisper_config(tmp_path, data_dir, "backbone.freeze=true"), tmp_path / "run")
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = written["backbone"]
    assert record["name"] == "whisper_tiny_en" and record["weights"] == "packaged"
    assert "input=segment" in record["settings"] and record["frozen"] is True
    packaged = WhisperBackbone(size="tiny.en")
    packaged.load_weights("packaged")
    from segser.data.cache.embeddings import weights_sha256

    assert record["weights_sha256"] == weights_sha256(packaged)
    assert written["config"]["features"] == {"kind": "whisper", "sample_rate_hz": 16000}
    assert set(written["metrics"]) >= {"SA", "ACA", "SCA", "ALCA", "BCA", "UA", "WA"}

    checkpoint = Path(payload["best_checkpoint"])
    trained = load_trained(checkpoint)
    assert isinstance(trained.model.backbone, WhisperBackbone)
    assert trained.features == WhisperSettings()
    evaluate_matches_the_run(checkpoint, data_dir, tmp_path / "evaluate", payload)
    clip, probabilities = predict_one_clip(checkpoint, data_dir, tmp_path / "predict")
    expected = expected_probabilities(trained.model, clip)
    np.testing.assert_allclose(probabilities, expected, atol=2e-5)


def test_fine_tuning_trains_only_the_last_blocks(tmp_path: Path, data_dir: Path) -> None:
    cfg = whisper_config(
        tmp_path, data_dir, "backbone.freeze=false", "backbone.trainable_layers=1",
        "trainer.max_epochs=1", "optimizer.lr=1e-3", "backbone.lr=1e-3",
    )  # fmt: skip
    before = WhisperBackbone(size="tiny.en")
    before.load_weights("packaged")
    payload = train(cfg, tmp_path / "run")
    after = load_trained(payload["best_checkpoint"]).model.backbone
    old, new = before.state_dict(), after.state_dict()
    changed = {k for k in old if not torch.equal(old[k].float(), new[k].float())}
    assert changed and all(".3." in k or "ln_post" in k for k in changed), changed


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["backbone.freeze=false", "backbone.net.context=clip"], "backbone.freeze=true"),
        (["backbone.freeze=true", "backbone.net.context=clip", "segmentation.hop_seconds=1.5"],
         "hop_seconds=1.5"),
        (["features=waveform"], "features.kind=waveform contradicts backbone=whisper_tiny_en"),
        (["backbone.net.embedding_layers=[6]"], "embedding_layers"),
    ],
)  # fmt: skip
def test_bad_combinations_are_one_line_at_start(overrides: list[str], words: str) -> None:
    cfg = composed("train", ["experiment=demo", "backbone=whisper_tiny_en", *overrides])
    with pytest.raises(SegserError) as raised:
        check_config(cfg)
    assert words in str(raised.value) and "\n" not in str(raised.value)


def test_clip_context_trains_and_evaluates_as_it_embedded(tmp_path: Path, data_dir: Path) -> None:
    """context=clip: every clip encoded once for the cache; evaluate embeds the same way, so
    its scores are the run's own test scores."""
    cfg = whisper_config(
        tmp_path, data_dir, "backbone.freeze=true", "backbone.net.context=clip",
        "trainer.max_epochs=1",
    )  # fmt: skip
    payload = train(cfg, tmp_path / "run")
    assert "context=clip" in payload["backbone"]["settings"]
    entries = sorted(p.name for p in Path(cfg.paths.cache_dir).glob("*-whisperbackbone-*"))
    assert entries, "the clip-context embeddings were not cached"
    checkpoint = payload["best_checkpoint"]
    cfg = composed("evaluate", [f"ckpt={checkpoint}", f"paths.data_dir={data_dir}"])
    again = evaluate(cfg, tmp_path / "evaluate")
    for name in ("SA", "ACA", "SCA", "ALCA", "BCA", "WA"):
        assert again["metrics"][name] == pytest.approx(payload["metrics"][name], abs=1e-9)


def test_the_real_speech_recipe_evaluates_and_predicts(tmp_path: Path, data_dir: Path) -> None:
    """experiment=real_speech as shipped (Whisper tiny.en, clip context, speaker_norm, class
    weights, clip pooling), augmentation off and 2 epochs for time: its checkpoint evaluates to
    the run's own test metrics and predicts a recording, normalised from its speaker."""
    cfg = composed("train", [
        "experiment=real_speech", "dataset=demo", f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path / 'outputs'}", "dataset.num_clips=48", "augment=none",
        "trainer.max_epochs=2",
    ])  # fmt: skip
    assert cfg.backbone.name == "whisper_tiny_en" and cfg.backbone.net.context == "clip"
    run = train(cfg, tmp_path / "run")
    assert run["speaker_norm"] is True and "context=clip" in run["backbone"]["settings"]
    checkpoint = run["best_checkpoint"]
    again = evaluate(composed("evaluate", [f"ckpt={checkpoint}", f"paths.data_dir={data_dir}"]),
                     tmp_path / "evaluate")  # fmt: skip
    for name, value in again["metrics"].items():
        assert value == pytest.approx(run["metrics"][name], abs=1e-6), name
    clips = sorted(data_dir.glob("demo-*/**/*.wav"))[:12]
    rows, errors = predict(checkpoint, clips, tmp_path / "predict", 8, "cpu", one_speaker=True,
                           min_speaker_seconds=1.0)  # fmt: skip
    assert not errors and all(row["segments"] > 0 for row in rows)
    note = json.loads((tmp_path / "predict" / f"{clips[0].stem}.json").read_text())
    assert note["speaker_norm"]["statistics"] == "speaker"
    probabilities = [sum(float(v) for k, v in row.items() if k.startswith("p_")) for row in rows]
    assert probabilities == pytest.approx([1.0] * len(rows), abs=1e-4)

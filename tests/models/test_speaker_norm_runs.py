"""A run with data.speaker_norm=true says so in its checkpoints (from its datamodule), so
evaluate and predict standardise per speaker instead of scoring unnormalised inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segser.evaluate import evaluate
from segser.models.checkpoint import RUN_KEY, load_trained
from segser.predict import predict
from segser.train import train
from tests.hydra_app import composed
from tests.models.test_class_weights_in_runs import tiny_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[bool, dict]:
    tmp_path = tmp_path_factory.mktemp("speaker_norm")
    return {
        norm: train(tiny_run(tmp_path, f"data.speaker_norm={norm}"), tmp_path / f"run-{norm}")
        for norm in (True, False)
    }


@pytest.mark.parametrize("norm", [True, False])
def test_every_checkpoint_records_what_the_run_did(runs, norm: bool) -> None:
    payload = runs[norm]
    assert payload["speaker_norm"] is norm
    folder = Path(payload["best_checkpoint"]).parent
    for name in ("best.ckpt", "last.ckpt"):
        stored = torch.load(folder / name, weights_only=True)[RUN_KEY]
        assert stored["speaker_norm"] is norm, name


def test_evaluate_and_predict_recognise_a_speaker_normalised_run(runs, tmp_path, capsys) -> None:
    """Issue 26.1: they apply it (tests/test_speaker_norm_runs.py checks the numbers)."""
    checkpoint = runs[True]["best_checkpoint"]
    data_dir = Path(runs[True]["config"]["paths"]["data_dir"])
    again = evaluate(composed("evaluate", [f"ckpt={checkpoint}", f"paths.data_dir={data_dir}"]),
                     tmp_path / "evaluate")  # fmt: skip
    assert again["speaker_norm"] is True
    assert again["metrics"]["ALCA"] == pytest.approx(runs[True]["metrics"]["ALCA"], abs=1e-6)
    clip = sorted(data_dir.glob("demo-*/**/*.wav"))[0]
    _, errors = predict(checkpoint, [clip], tmp_path / "predict", batch_size=4, device="cpu")
    assert not errors and "training statistics" in capsys.readouterr().err


def test_a_run_without_it_loads(runs) -> None:
    assert load_trained(runs[False]["best_checkpoint"]).run is not None

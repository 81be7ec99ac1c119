"""The validation scores a run reports (metrics.json `validation`, what a search's objective
reads for each fold) are the best checkpoint's, not the last epoch's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from segser.search import cross_validate
from segser.train import train
from tests.models.test_class_weights_in_runs import tiny_run

# lr 0.01 on the tiny frozen run: val loss is lowest at epoch 3 and higher at epoch 5, the last
SETTINGS = ["optimizer.lr=0.01", "trainer.max_epochs=6", "callbacks.early_stopping.patience=100"]


def _epochs(run_dir: Path, epochs: int) -> list[dict[str, float]]:
    """Each training epoch's validation scores, as the CSV logger wrote them during fit."""
    (path,) = run_dir.glob("csv/*/metrics.csv")
    with open(path) as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/loss")]
    scores = [{k.removeprefix("val/"): float(v) for k, v in r.items() if k.startswith("val/")}
              for r in rows if int(r["epoch"]) < epochs]  # fmt: skip
    assert len(scores) == epochs
    return scores


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    tmp_path = tmp_path_factory.mktemp("best")
    payload = train(tiny_run(tmp_path, *SETTINGS), tmp_path / "run")
    return tmp_path / "run", payload


def test_reported_validation_scores_are_the_best_epochs(run) -> None:
    run_dir, payload = run
    epochs = _epochs(run_dir, payload["epochs_trained"])
    best = min(range(len(epochs)), key=lambda e: epochs[e]["loss"])
    assert best < len(epochs) - 1  # the case this test is about: the last epoch is not the best
    assert epochs[-1]["loss"] > epochs[best]["loss"] + 1e-3
    validation = payload["validation"]
    assert set(validation) == {"loss", "UA", "WA", "ALCA"}
    for name, value in validation.items():
        assert value == pytest.approx(epochs[best][name], abs=1e-5), name
    stored = torch.load(payload["best_checkpoint"], weights_only=True)
    assert stored["epoch"] == best


def test_the_search_objective_reads_them(run, tmp_path) -> None:
    """search.cross_validate's mean is over exactly these per-fold numbers."""
    _, payload = run
    trial = {"split": {"fold": 1, "num_folds": 2}, "search": {"cross_validate": True,
                                                              "metric": "UA"}}  # fmt: skip
    objective = cross_validate(OmegaConf.create(trial), tmp_path, lambda cfg, out: payload)
    assert objective == pytest.approx(payload["validation"]["UA"])

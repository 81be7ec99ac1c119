"""A frozen backbone trained on cached embeddings gives the run it gives through the backbone."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from segser.train import train
from tests.hydra_app import composed

_CLASS = {"baseline": "patchmlp", "yamnet": "yamnet"}


def _run(
    tmp_path: Path, name: str, backbone: str, cache_embeddings: bool
) -> tuple[dict, list[dict]]:
    cfg = composed(
        "train",
        [
            "experiment=demo",
            f"backbone={backbone}",
            "backbone.freeze=true",
            "dataset.num_clips=40",
            "trainer.max_epochs=2",
            "callbacks.progress_bar=null",
            f"data.cache_embeddings={str(cache_embeddings).lower()}",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
    )
    payload = train(cfg, tmp_path / name)
    with open(tmp_path / name / "predictions.csv") as handle:
        return payload, list(csv.DictReader(handle))


@pytest.mark.parametrize(
    "backbone",
    [
        "baseline",  # fast: a frozen random MLP, batch norm and dropout in eval mode
        pytest.param("yamnet", marks=pytest.mark.slow),  # the demo's packaged YAMNet
    ],
)
def test_cached_embeddings_give_the_same_test_results(tmp_path: Path, backbone: str) -> None:
    cached, cached_rows = _run(tmp_path, "cached", backbone, cache_embeddings=True)
    assert list((tmp_path / "data" / "cache").glob(f"*-{_CLASS[backbone]}-*/embeddings.f32"))
    direct, direct_rows = _run(tmp_path, "direct", backbone, cache_embeddings=False)
    # The checkpoint still holds the whole network, so evaluate/predict take raw audio.
    state = torch.load(cached["best_checkpoint"], map_location="cpu", weights_only=True)
    assert any(key.startswith("backbone.") for key in state["state_dict"])
    assert cached["metrics"].keys() == direct["metrics"].keys()
    for name, value in cached["metrics"].items():
        assert value == pytest.approx(direct["metrics"][name], abs=1e-4), name
    assert len(cached_rows) == len(direct_rows) == cached["num_test_segments"]
    columns = [key for key in cached_rows[0] if key.startswith("p_")]
    assert columns  # the segments' probabilities themselves, not only the accuracies
    for a, b in zip(cached_rows, direct_rows, strict=True):
        for key in columns:
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-3)

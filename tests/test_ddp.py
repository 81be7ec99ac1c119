"""A job on several devices: DDP trains (gloo on CPU here), rank 0 tests every clip once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from segser.evaluate import evaluate
from tests.hydra_app import composed
from tests.segser_cli import run_segser


def test_two_process_ddp_run_tests_each_clip_once(tmp_path: Path) -> None:
    overrides = ["experiment=demo_baseline", "dataset.num_clips=40", "callbacks.progress_bar=null"]
    result = run_segser(
        "segser.train", *overrides, "trainer.max_epochs=2",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
    payload = json.loads((run / "metrics.json").read_text())
    assert sum(map(sum, payload["confusion_matrix"])) == payload["num_test_clips"]
    assert payload["epochs_trained"] == 2  # max_epochs, as fit's trainer.current_epoch counts
    # A single-process re-test of the best checkpoint sees the same segments and clips.
    cfg = composed(
        "evaluate",
        [
            f"ckpt={payload['best_checkpoint']}",
            "dataset=demo",
            "dataset.num_clips=40",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
    )
    again = evaluate(cfg, tmp_path / "eval")
    assert again["num_test_segments"] == payload["num_test_segments"]
    for name, value in payload["metrics"].items():
        assert again["metrics"][name] == pytest.approx(value, abs=1e-6)


def _standardizer_mean(payload: dict) -> tuple[torch.Tensor, torch.Tensor]:
    state = torch.load(payload["best_checkpoint"], map_location="cpu", weights_only=True)
    return state["state_dict"]["head.layers.0.mean"], state["state_dict"]["head.layers.0.scale"]


def test_ddp_fits_the_head_standardizer_on_every_rank_s_embeddings(tmp_path: Path) -> None:
    """Two ranks each see half the training embeddings; the statistics must be the union's."""
    overrides = ["experiment=demo", "dataset.num_clips=40", "callbacks.progress_bar=null",
                 "trainer.max_epochs=1", "trainer.accelerator=cpu"]  # fmt: skip
    runs = {}
    for name, devices in (("single", ["trainer.devices=1"]),
                          ("ddp", ["trainer.devices=2", "trainer.strategy=ddp"])):  # fmt: skip
        out = tmp_path / name
        result = run_segser("segser.train", *overrides, *devices, f"hydra.run.dir={out}",
                            tmp_path=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        runs[name] = _standardizer_mean(json.loads((out / "metrics.json").read_text()))
    (mean, scale), (ddp_mean, ddp_scale) = runs["single"], runs["ddp"]
    spread = 1 / scale
    assert (spread > 0).all() and mean.abs().max() > 0  # fitted, not the identity
    # The ranks' shards together are the training set (one rank's half alone moves the mean by
    # about 0.05 std on average, measured), so the reduced statistics are the single run's.
    torch.testing.assert_close(ddp_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ddp_scale, scale, rtol=1e-5, atol=1e-6)


def test_ddp_fine_tunes_yamnet_whose_last_layers_the_embedding_skips(tmp_path: Path) -> None:
    """Layers 12-13 feed no loss with layers 6-11 embedded: DDP refused to train before."""
    result = run_segser(
        "segser.train", "experiment=demo", "dataset.num_clips=40", "backbone.freeze=false",
        "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.devices=2",
        "trainer.strategy=ddp", "callbacks.progress_bar=null", tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 1

"""A job on several devices: DDP trains (gloo on CPU here), rank 0 tests every clip once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy

from segser.evaluate import evaluate
from segser.models.factory import build_classifier
from segser.setup.components import ddp_strategy, model_config
from tests.hydra_app import composed
from tests.segser_cli import run_segser
from tests.ssl_tiny import tiny_override


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


def ddp_config(*overrides: str):
    return composed("train", ["trainer=ddp", "backbone.weights=none", *overrides])


@pytest.mark.parametrize(
    ("overrides", "finds_unused"),
    [
        # WavLM Base+ fine-tuned: layer drop 0.05 leaves a dropped layer without gradients
        (["backbone=wavlm_base_plus", tiny_override("WAVLM_BASE_PLUS")], True),
        (["backbone=hubert_base", tiny_override("HUBERT_BASE")], True),
        # frozen, or no layer drop (wav2vec 2.0 LV-60k, HuBERT Large; or set to 0): none
        (["backbone=wavlm_base_plus", tiny_override("WAVLM_BASE_PLUS"), "backbone.freeze=true"],
         False),
        (["backbone=wav2vec2_large", tiny_override("WAV2VEC2_LARGE_LV60K")], False),
        (["backbone=hubert_large", tiny_override("HUBERT_LARGE")], False),
        (["backbone=wavlm_base_plus", tiny_override("WAVLM_BASE_PLUS"),
          "+backbone.net.architecture.encoder_layer_drop=0.0"], False),
        # YAMNet fine-tuned: its unused layers are frozen, and trainable_layers freezes the rest
        (["backbone=yamnet"], False),
        (["backbone=yamnet", "+backbone.trainable_layers=2"], False),
    ],
)  # fmt: skip
def test_ddp_looks_for_unused_parameters_only_when_a_step_can_skip_some(
    overrides: list[str], finds_unused: bool
) -> None:
    cfg = ddp_config(*overrides)
    model = build_classifier(model_config(cfg))
    # the trainer the run builds (on CPU here: built, not launched)
    trainer = instantiate(
        cfg.trainer, accelerator="cpu", devices=2, logger=False, **ddp_strategy(cfg, model)
    )
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._ddp_kwargs == {"find_unused_parameters": finds_unused}
    if not finds_unused:  # then every trainable parameter gets a gradient on every step
        model.train()
        inputs = torch.randn(2, *model.example_input_array.shape[1:])
        model(inputs).square().sum().backward()
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert trainable and all(p.grad is not None for p in trainable)


def test_only_ddp_gets_a_strategy() -> None:
    cfg = composed("train", ["backbone=wavlm_base_plus", "backbone.weights=none",
                             tiny_override("WAVLM_BASE_PLUS")])  # fmt: skip
    assert ddp_strategy(cfg, build_classifier(model_config(cfg))) == {}


@pytest.mark.slow
def test_two_process_ddp_fine_tunes_an_ssl_backbone_with_layer_drop(tmp_path: Path) -> None:
    """Layer drop 0.5: the first steps drop layers, which stopped DDP before (issue 26)."""
    result = run_segser(
        "segser.train", "experiment=demo", "dataset.num_clips=40", "backbone=hubert_base",
        "backbone.weights=none", tiny_override("HUBERT_BASE", 2).replace(
            "}", ",encoder_layer_drop:0.5}"),
        "backbone.freeze=false", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        "trainer.devices=2", "trainer.strategy=ddp", "callbacks.progress_bar=null",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DDP looks for unused parameters" in result.stdout + result.stderr

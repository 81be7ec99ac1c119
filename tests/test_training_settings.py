"""Training settings follow what learns: the paper's for fine-tuning, a fresh head's when frozen.

Composed from the shipped configs as the command line does, then built as a run builds them
(optimizer, early stopping, trainer), so a preset that loses the rule fails here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping

from segser.models.factory import build_classifier
from segser.setup.components import build_callbacks, model_config
from segser.setup.training_settings import describe, training_settings
from tests.hydra_app import composed, options
from tests.ssl_tiny import SSL_BACKBONES, tiny_override

FINE_TUNE = {"lr": 1e-6, "patience": 50, "max_epochs": 1000}  # the paper, Section 4
FROZEN = {"lr": 1e-3, "patience": 8, "max_epochs": 40}


def built_settings(cfg, tmp_path: Path) -> dict[str, float]:
    """What the run's objects get: the optimizer's lr, the early stopping patience, max_epochs."""
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    (stopping,) = [c for c in build_callbacks(cfg, tmp_path) if isinstance(c, EarlyStopping)]
    trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    return {
        "lr": optimizer.param_groups[0]["lr"],
        "patience": stopping.patience,
        "max_epochs": trainer.max_epochs,
    }


@pytest.mark.parametrize(
    ("overrides", "mode", "expected"),
    [
        ([], "fine_tune", FINE_TUNE),  # the paper's command: VGGish fine-tuned
        (["backbone=yamnet"], "fine_tune", FINE_TUNE),
        (["backbone=vggish", "backbone.freeze=true"], "frozen", FROZEN),
        (["backbone=yamnet", "backbone.freeze=true"], "frozen", FROZEN),
        (["experiment=demo"], "frozen", FROZEN),  # a preset that freezes
        (["experiment=demo", "backbone.freeze=false"], "fine_tune", FINE_TUNE),
        (
            ["experiment=paper_table4", "dataset=demo", "backbone=yamnet", "backbone.freeze=true"],
            "frozen",
            FROZEN,
        ),
        (
            ["experiment=paper_table3", "dataset=demo", "backbone=yamnet", "backbone.freeze=true"],
            "frozen",
            FROZEN,
        ),
        (["experiment=paper_table4", "dataset=demo"], "fine_tune", FINE_TUNE),
    ],
)
def test_settings_follow_the_backbones_mode(overrides, mode, expected, tmp_path: Path) -> None:
    cfg = composed("train", overrides)
    assert built_settings(cfg, tmp_path) == pytest.approx(expected)
    settings = training_settings(cfg)
    assert settings["mode"] == mode and settings["set_explicitly"] == []
    assert {k: settings[k] for k in expected} == pytest.approx(expected)


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("optimizer.lr=3e-4", "lr", 3e-4),
        ("callbacks.early_stopping.patience=20", "patience", 20),
        ("trainer.max_epochs=7", "max_epochs", 7),
    ],
)
@pytest.mark.parametrize("freeze", ["true", "false"])
def test_an_explicit_value_always_wins(override, key, value, freeze, tmp_path: Path) -> None:
    cfg = composed("train", ["backbone=yamnet", f"backbone.freeze={freeze}", override])
    preset = FROZEN if freeze == "true" else FINE_TUNE
    assert built_settings(cfg, tmp_path) == pytest.approx({**preset, key: value})
    settings = training_settings(cfg)
    assert settings["set_explicitly"] == [override.split("=")[0]]
    assert settings[key] == pytest.approx(value)


def test_editing_a_set_changes_what_that_mode_uses(tmp_path: Path) -> None:
    frozen = composed("train", ["experiment=demo", "training.frozen.lr=3e-3"])
    assert built_settings(frozen, tmp_path)["lr"] == pytest.approx(3e-3)
    fine_tuned = composed("train", ["training.frozen.lr=3e-3"])  # the other mode: untouched
    assert built_settings(fine_tuned, tmp_path)["lr"] == pytest.approx(1e-6)


def test_the_log_line_says_which_settings_and_why() -> None:
    frozen = describe(training_settings(composed("train", ["experiment=demo"])))
    assert frozen == (
        "training settings 'frozen' (the backbone is frozen, so only a head trained from scratch "
        "learns): lr 0.001, patience 8, max_epochs 40"
    )
    tuned = describe(training_settings(composed("train", ["trainer.max_epochs=5"])))
    assert tuned == (
        "training settings 'fine_tune' (the backbone is fine-tuned: the paper's settings): "
        "lr 1e-06, patience 50, max_epochs 5; set explicitly: trainer.max_epochs"
    )


def test_a_run_logs_and_records_the_settings_it_used(tmp_path: Path, caplog) -> None:
    from segser.train import train

    cfg = composed(
        "train",
        [
            "experiment=demo",
            f"paths.data_dir={tmp_path / 'data'}",
            "dataset.num_clips=40",
            "callbacks.early_stopping.patience=2",
            "callbacks.progress_bar=null",
        ],
    )
    with caplog.at_level(logging.INFO, logger="segser"):
        payload = train(cfg, tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training set")]
    assert lines == [describe(training_settings(cfg))]
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]
    assert recorded == payload["training"]
    assert recorded["mode"] == "frozen"
    assert (recorded["lr"], recorded["patience"], recorded["max_epochs"]) == (1e-3, 2, 40)
    assert recorded["set_explicitly"] == ["callbacks.early_stopping.patience"]
    assert payload["epochs_trained"] <= 40


SSL_FINE_TUNE = {"lr": 5e-4, "patience": 8, "max_epochs": 30}  # conf/backbone/<ssl>.yaml


@pytest.mark.parametrize("backbone", list(SSL_BACKBONES))
def test_ssl_fine_tuning_trains_the_head_faster_than_the_transformer(
    backbone: str, tmp_path: Path
) -> None:
    """Without backbone.freeze a fresh head learns beside a pre-trained transformer: the head
    at 5e-4, the transformer at backbone.lr 1e-5 (not the paper's 1e-6 for the head)."""
    tiny = tiny_override(SSL_BACKBONES[backbone])
    cfg = composed("train", [f"backbone={backbone}", "backbone.weights=none", tiny])
    assert built_settings(cfg, tmp_path) == pytest.approx(SSL_FINE_TUNE)
    settings = training_settings(cfg)
    assert settings["mode"] == "fine_tune" and settings["set_explicitly"] == []
    model = build_classifier(model_config(cfg))
    head, transformer = model.configure_optimizers().param_groups
    assert {id(p) for p in head["params"]} == {id(p) for p in model.head.parameters()}
    assert (head["lr"], transformer["lr"]) == pytest.approx((5e-4, 1e-5))
    assert describe(settings) == (
        "training settings 'fine_tune' (the backbone is fine-tuned: a fresh head at lr, the "
        "transformer at backbone.lr): lr 0.0005 (head), backbone lr 1e-05, patience 8, "
        "max_epochs 30"
    )


def test_a_frozen_ssl_backbone_takes_the_frozen_set(tmp_path: Path) -> None:
    cfg = composed("train", ["backbone=wavlm_base_plus", "backbone.freeze=true"])
    assert built_settings(cfg, tmp_path) == pytest.approx(FROZEN)
    assert describe(training_settings(cfg)) == (
        "training settings 'frozen' (the backbone is frozen, so only a head trained from scratch "
        "learns): lr 0.001, patience 8, max_epochs 40"
    )


@pytest.mark.parametrize("backbone", options("backbone"))
def test_every_pretrained_transformer_fine_tunes_its_head_faster(backbone: str, tmp_path: Path):
    """Every shipped SSL and Whisper config: fine-tuned, the head outpaces the backbone."""
    cfg = composed("train", [f"backbone={backbone}"])
    if not str(cfg.backbone.net._target_).endswith(("SpeechTransformer", "WhisperBackbone")):
        pytest.skip("a convolutional backbone: the paper's set")
    assert built_settings(cfg, tmp_path) == pytest.approx(SSL_FINE_TUNE)
    assert cfg.optimizer.lr > cfg.backbone.lr == pytest.approx(1e-5)
    line = describe(training_settings(cfg))
    assert "(head), backbone lr 1e-05, patience 8, max_epochs 30" in line


def test_whisper_fine_tuning_builds_both_rates() -> None:
    cfg = composed("train", ["backbone=whisper_tiny_en", "backbone.weights=none"])
    model = build_classifier(model_config(cfg))
    head, encoder = model.configure_optimizers().param_groups
    assert (head["lr"], encoder["lr"]) == pytest.approx((5e-4, 1e-5))
    assert describe(training_settings(cfg)) == (
        "training settings 'fine_tune' (the backbone is fine-tuned: a fresh head at lr, the "
        "encoder at backbone.lr): lr 0.0005 (head), backbone lr 1e-05, patience 8, max_epochs 30"
    )

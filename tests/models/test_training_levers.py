"""Class-weighted loss and fine-tuning depth, checked on the module and the shipped config."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from segser.errors import SegserError
from segser.models.factory import build_classifier
from segser.models.yamnet import YAMNet
from tests.hydra_app import composed

CLASSES = ["angry", "happy", "sad", "neutral"]


def _model(*overrides: str):
    cfg = composed("train", ["backbone=yamnet", "backbone.weights=none", *overrides])
    from segser.setup.components import model_config, model_options

    return build_classifier(model_config(cfg), **model_options(cfg))


def test_class_weights_are_inverse_frequencies_of_the_training_segments() -> None:
    model = _model("head.input_norm=false", "loss.class_weights=true")
    assert model.class_weighted_loss
    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 2 + [3] * 1)  # 12 segments
    counts = torch.bincount(labels, minlength=4)  # what the datamodule's train_class_counts gives
    datamodule = SimpleNamespace(train_class_counts=lambda: counts)
    model._trainer = SimpleNamespace(datamodule=datamodule)
    model.on_fit_start()
    expected = torch.tensor([12 / (4 * 6), 12 / (4 * 3), 12 / (4 * 2), 12 / (4 * 1)])
    assert torch.allclose(model.loss.weight, expected)
    logits, targets = torch.randn(5, 4), torch.tensor([0, 3, 3, 1, 2])
    by_hand = torch.nn.functional.cross_entropy(logits, targets, weight=expected)
    assert torch.allclose(model.loss(logits, targets), by_hand)


def test_trainable_layers_fine_tunes_only_the_last_k_layers_the_embedding_reads() -> None:
    model = _model("backbone.freeze=false", "backbone.trainable_layers=2")
    layers = model.backbone.layers
    trains = [any(p.requires_grad for p in layer.parameters()) for layer in layers]
    assert trains == [False] * 10 + [True, True] + [False, False]  # embedding reads 0-11
    model._trainer = None
    optimized = {id(p) for g in model.configure_optimizers().param_groups for p in g["params"]}
    backbone_params = {id(p) for p in model.backbone.parameters() if id(p) in optimized}
    assert backbone_params == {id(p) for p in layers[10:12].parameters()}


def test_trainable_layers_out_of_range_is_one_clear_error() -> None:
    with pytest.raises(SegserError, match="trainable_layers=13"):
        YAMNet(embedding_layers=[6, 7, 8, 9, 10, 11]).train_last_layers(13)

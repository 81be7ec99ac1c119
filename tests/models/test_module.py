from __future__ import annotations

from functools import partial

import torch

from segser.models.baseline import PatchMLP
from segser.models.heads import ClassificationHead
from segser.models.module import SegmentEmotionClassifier

CLASSES = ["angry", "happy", "sad", "neutral"]


def classifier(**kwargs) -> SegmentEmotionClassifier:
    torch.manual_seed(0)
    backbone = PatchMLP(num_layers=2, units=16, dropout=0.5)
    head = ClassificationHead(embedding_dim=16, units=8, num_classes=4)
    return SegmentEmotionClassifier(
        backbone, head, CLASSES, optimizer=partial(torch.optim.Adam, lr=1e-2), **kwargs
    )


def one_step(model: SegmentEmotionClassifier) -> torch.optim.Optimizer:
    optimizer = model.configure_optimizers()
    model.train()
    model.on_train_epoch_start()
    patches, labels = torch.randn(8, 1, 96, 64), torch.arange(8) % 4
    loss = model.loss(model(patches), labels)
    loss.backward()
    optimizer.step()
    return optimizer


def test_frozen_backbone_is_not_trained_and_keeps_its_statistics() -> None:
    model = classifier(freeze_backbone=True)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = [p.clone() for p in model.head.parameters()]
    optimizer = one_step(model)
    assert len(optimizer.param_groups) == 1  # head only
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, before[key])  # weights and batch-norm running stats
    assert not model.backbone.training
    head_after = list(model.head.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(head_before, head_after, strict=True))


def test_backbone_learning_rate_is_its_own() -> None:
    model = classifier(backbone_lr=1e-5)
    optimizer = one_step(model)
    head_group, backbone_group = optimizer.param_groups
    assert head_group["lr"] == 1e-2 and backbone_group["lr"] == 1e-5
    assert {id(p) for p in backbone_group["params"]} == {id(p) for p in model.backbone.parameters()}


def test_same_learning_rate_by_default() -> None:
    optimizer = one_step(classifier())
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 1e-2]

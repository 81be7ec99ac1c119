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


class DivergingBackbone(torch.nn.Module):
    """A PatchMLP whose embeddings turn NaN from the n-th forward in train (or eval) mode."""

    def __init__(self, nan_from_call: int, in_training: bool) -> None:
        super().__init__()
        self.net = PatchMLP(num_layers=1, units=16, dropout=0.0)
        self.nan_from_call, self.in_training = nan_from_call, in_training
        self.calls = 0

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        embedding = self.net(patches)
        if self.training != self.in_training:
            return embedding
        self.calls += 1
        return embedding * float("nan") if self.calls >= self.nan_from_call else embedding


def _fit_until_divergence(backbone: torch.nn.Module) -> str:
    import lightning as L
    import pytest
    from torch.utils.data import DataLoader, TensorDataset

    from segser.errors import SegserError

    torch.manual_seed(0)
    clips = torch.arange(32) // 2
    data = TensorDataset(torch.randn(32, 1, 96, 64), clips % 4, clips)
    head = ClassificationHead(embedding_dim=16, units=8, num_classes=4)
    model = SegmentEmotionClassifier(
        backbone, head, CLASSES, optimizer=partial(torch.optim.SGD, lr=1e-3)
    )
    trainer = L.Trainer(
        max_epochs=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    loaders = DataLoader(data, batch_size=8), DataLoader(data, batch_size=16)  # 4 and 2 batches
    with pytest.raises(SegserError) as diverged:
        trainer.fit(model, *loaders)
    return str(diverged.value)


def test_nan_training_loss_stops_the_run_naming_the_epoch() -> None:
    # Training forwards 1-4 are epoch 0, 5-8 epoch 1: NaN from the 6th is epoch 1.
    message = _fit_until_divergence(DivergingBackbone(nan_from_call=6, in_training=True))
    assert message.startswith("training diverged in epoch 1 (counting from 0): the train loss")
    assert "\n" not in message


def test_nan_validation_logits_stop_the_run_naming_the_epoch() -> None:
    # Two validation batches per epoch: the 5th validation forward is in epoch 2.
    message = _fit_until_divergence(DivergingBackbone(nan_from_call=5, in_training=False))
    assert message.startswith("training diverged in epoch 2 (counting from 0): the val loss")


def test_a_training_step_never_reads_a_tensor_on_the_host(monkeypatch) -> None:
    """No .item(), no Python `if` on a tensor: on a GPU either waits for the step (issue 22)."""
    model = classifier()
    model.train()
    model.on_train_epoch_start()
    batch = torch.randn(8, 1, 96, 64), torch.arange(8) % 4, torch.arange(8)

    def refuse(*args, **kwargs):
        raise AssertionError("a tensor was read on the host during the training step")

    for name in ("__bool__", "item", "tolist", "__float__", "__int__", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for _ in range(2):
        loss = model.training_step(batch, 0)
    monkeypatch.undo()
    assert torch.isfinite(loss) and bool(model.finite["train"])
    assert model.train_loss.compute().item() > 0


def test_a_test_epoch_leaves_its_scores_in_the_declared_place_and_validating_keeps_them() -> None:
    """model.tested (declared in __init__) holds what the last test epoch scored; train.py
    validates after testing and reads it afterwards, so validation must leave it alone."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from segser.metrics.collection import ACCURACY_NAMES

    model = classifier()
    assert model.tested is None
    clips = torch.arange(8) // 2
    batches = DataLoader(TensorDataset(torch.randn(8, 1, 96, 64), clips % 4, clips), batch_size=4)
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    trainer = L.Trainer(accelerator="cpu", **quiet)
    trainer.test(model, dataloaders=batches, verbose=False)
    tested = model.tested
    assert set(ACCURACY_NAMES) <= set(tested.results)
    assert tested.clips.segment_logits.shape == (8, 4)
    trainer.validate(model, dataloaders=batches, verbose=False)
    assert model.tested is tested

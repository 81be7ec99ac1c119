"""The head's input standardizer is fitted on the training embeddings before the first epoch."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from segser.models.heads import ClassificationHead
from segser.models.module import SegmentEmotionClassifier


class Served(L.LightningDataModule):
    """`inputs` as training batches; what the module may ask of a datamodule (SegmentSource)."""

    def __init__(self, inputs: torch.Tensor, embeddings: bool) -> None:
        super().__init__()
        labels = torch.arange(len(inputs)) % 2
        self.data = TensorDataset(inputs, labels, torch.arange(len(inputs)))
        self.embeddings = embeddings

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=8, shuffle=True)

    def statistics_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=8)

    def serves_embeddings(self) -> bool:
        return self.embeddings

    def train_class_counts(self) -> torch.Tensor:
        return torch.bincount(self.data.tensors[1], minlength=2)


def _model(backbone: nn.Module, dim: int, freeze: bool) -> SegmentEmotionClassifier:
    head = ClassificationHead(embedding_dim=dim, units=4, num_classes=2, input_norm=True)
    optimizer = partial(torch.optim.SGD, lr=0.0)  # statistics only: nothing else may move
    return SegmentEmotionClassifier(backbone, head, ["a", "b"], optimizer, freeze_backbone=freeze)


def _fit(model: SegmentEmotionClassifier, inputs: torch.Tensor, embeddings: bool) -> None:
    quiet = {"enable_progress_bar": False, "enable_model_summary": False, "logger": False}
    trainer = L.Trainer(max_epochs=1, enable_checkpointing=False, accelerator="cpu", **quiet)
    trainer.fit(model, datamodule=Served(inputs, embeddings))


def _expected(embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scaler = StandardScaler().fit(embeddings.double().numpy())
    return torch.from_numpy(scaler.mean_).float(), torch.from_numpy(1 / scaler.scale_).float()


def test_fitted_on_cached_embeddings_like_standard_scaler() -> None:
    embeddings = torch.randn(37, 5, generator=torch.Generator().manual_seed(0)) * 0.05 + 0.2
    model = _model(nn.Identity(), 5, freeze=True)
    _fit(model, embeddings, embeddings=True)
    mean, scale = _expected(embeddings)
    standardizer = model.head.standardizer
    assert standardizer.fitted
    torch.testing.assert_close(standardizer.mean, mean)
    torch.testing.assert_close(standardizer.scale, scale, rtol=1e-4, atol=1e-6)


def test_fitted_through_the_backbone_on_patches() -> None:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(96 * 64, 3))
    patches = torch.randn(20, 1, 96, 64)
    with torch.no_grad():
        embeddings = backbone(patches)
    model = _model(backbone, 3, freeze=False)
    _fit(model, patches, embeddings=False)
    mean, scale = _expected(embeddings)
    torch.testing.assert_close(model.head.standardizer.mean, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.head.standardizer.scale, scale, rtol=1e-4, atol=1e-5)


def test_fitting_draws_nothing_from_the_generator_and_happens_once() -> None:
    model = _model(nn.Identity(), 2, freeze=True)
    model.trainer = type("T", (), {})()  # the two trainer attributes on_fit_start uses
    inputs = torch.tensor([[0.0, 1.0], [2.0, 5.0], [4.0, 9.0]])
    model.trainer.datamodule = Served(inputs, embeddings=True)
    model.trainer.strategy = type("S", (), {"reduce": staticmethod(lambda t, reduce_op: t)})()
    torch.manual_seed(3)
    state = torch.get_rng_state()
    model.on_fit_start()
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(model.head.standardizer.mean, torch.tensor([2.0, 5.0]))
    model.head.standardizer.mean.fill_(-1.0)  # a resumed run's checkpointed statistics
    model.on_fit_start()
    assert torch.equal(model.head.standardizer.mean, torch.tensor([-1.0, -1.0]))


@pytest.mark.parametrize("input_norm", [False, True])
def test_shipped_yamnet_config_standardizes_and_baseline_does_not(input_norm: bool) -> None:
    from segser.models.factory import build_classifier
    from segser.setup.components import model_config
    from tests.hydra_app import composed

    overrides = ["backbone=yamnet"] if input_norm else ["backbone=baseline"]
    model = build_classifier(model_config(composed("train", [*overrides, "backbone.weights=none"])))
    assert (model.head.standardizer is not None) == input_norm
    if input_norm:
        assert model.backbone.embedding_layers == tuple(range(6, 12))
        kinds = [type(m).__name__ for m in model.head.layers[:3]]
        assert kinds == ["InputStandardizer", "LayerWeightedSum", "Linear"]
        assert model.head.layers[0].mean.shape == (6 * 512,)
        assert model.head.layers[2].in_features == 512

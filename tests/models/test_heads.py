"""The classification head and the paper's baseline PatchMLP: structure, sizes, outputs by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segser.models.baseline import PatchMLP
from segser.models.heads import ClassificationHead


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_head_parameter_count_by_hand() -> None:
    head = ClassificationHead(embedding_dim=128, units=200, num_classes=4)
    assert _count(head) == 128 * 200 + 200 + 200 * 4 + 4 == 26_604


def test_head_without_hidden_layer_is_a_logits_layer() -> None:
    head = ClassificationHead(embedding_dim=200, units=0, num_classes=4)
    assert [type(m) for m in head.layers] == [nn.Linear]
    assert _count(head) == 200 * 4 + 4


def test_head_layers_and_dropout() -> None:
    head = ClassificationHead(embedding_dim=128, units=100, num_classes=4, dropout=0.3)
    assert [type(m) for m in head.layers] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert head.layers[2].p == 0.3


@torch.no_grad()
def test_head_output_matches_hand_computation() -> None:
    head = ClassificationHead(embedding_dim=2, units=2, num_classes=2).eval()
    first, second = head.layers[0], head.layers[3]
    first.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
    first.bias.copy_(torch.tensor([0.0, -1.0]))
    second.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, 2.0]]))
    second.bias.copy_(torch.tensor([0.5, 0.0]))
    # x=[1,3]: hidden = relu([1-3, 2+1.5-1]) = [0, 2.5]; logits = [0+2.5+0.5, 0+5] = [3, 5].
    out = head(torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[3.0, 5.0]]))


def test_head_dropout_acts_only_in_training() -> None:
    torch.manual_seed(0)
    head = ClassificationHead(embedding_dim=16, units=64, num_classes=3, dropout=0.5)
    x = torch.randn(8, 16)
    head.eval()
    assert torch.equal(head(x), head(x))
    head.train()
    assert not torch.allclose(head(x), head.eval()(x))


def test_head_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="units"):
        ClassificationHead(embedding_dim=128, units=-1, num_classes=4)


# Hand counts: Linear(6144, M) + (L-1) x Linear(M, M), each followed by BatchNorm1d(M) (2M params).
@pytest.mark.parametrize(
    ("num_layers", "units", "expected"),
    [
        (2, 200, (6144 * 200 + 200) + 400 + (200 * 200 + 200) + 400),  # 1_270_000
        (2, 100, 614_500 + 200 + 10_100 + 200),
        (3, 100, 614_500 + 200 + 2 * (10_100 + 200)),
        (4, 200, 1_229_000 + 400 + 3 * (40_200 + 400)),
    ],
)
def test_baseline_parameter_count_by_hand(num_layers: int, units: int, expected: int) -> None:
    model = PatchMLP(num_layers=num_layers, units=units)
    assert _count(model) == expected
    assert model.embedding_dim == units


def test_baseline_has_batch_norm_and_dropout_between_layers() -> None:
    model = PatchMLP(num_layers=3, units=100)
    kinds = [type(m) for m in model.layers]
    block = [nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Dropout]
    assert kinds == [nn.Flatten, *block * 3]
    assert all(m.p == 0.5 for m in model.layers if isinstance(m, nn.Dropout))


def test_baseline_paper_model_with_logits_layer_shapes() -> None:
    torch.manual_seed(0)
    model = PatchMLP(num_layers=2, units=200)
    head = ClassificationHead(embedding_dim=model.embedding_dim, units=0, num_classes=4)
    patches = torch.randn(5, 1, 96, 64)
    assert model(patches).shape == (5, 200)
    assert head(model(patches)).shape == (5, 4)


@torch.no_grad()
def test_baseline_eval_batch_of_one_matches_hand_computation() -> None:
    """Eval: batch norm uses running statistics (so batch 1 works) and dropout is off."""
    torch.manual_seed(0)
    model = PatchMLP(num_layers=1, units=3, in_features=4)
    linear, norm = model.layers[1], model.layers[3]
    norm.running_mean.copy_(torch.tensor([0.5, 1.0, -1.0]))
    norm.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    norm.weight.copy_(torch.tensor([1.0, 2.0, 1.0]))
    norm.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    patch = torch.randn(1, 1, 2, 2)
    hidden = torch.relu(patch.reshape(1, 4) @ linear.weight.T + linear.bias)
    expected = (hidden - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    expected = expected * norm.weight + norm.bias
    torch.testing.assert_close(model.eval()(patch), expected)


def test_baseline_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        PatchMLP(num_layers=0, units=200)

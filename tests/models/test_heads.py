"""The classification head and the paper's baseline PatchMLP: structure, sizes, outputs by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from segser.errors import SegserError
from segser.models.baseline import PatchMLP
from segser.models.heads import ClassificationHead, InputStandardizer, LayerWeightedSum


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


def test_standardizer_matches_scikit_learn_and_keeps_constant_dimensions() -> None:
    from sklearn.preprocessing import StandardScaler

    generator = torch.Generator().manual_seed(0)
    train = torch.randn(50, 4, generator=generator, dtype=torch.float64) * 0.05 + 0.2
    train[:, 3] = 0.7  # a dead unit: StandardScaler leaves its scale at 1
    test = torch.randn(7, 4, generator=generator, dtype=torch.float64)
    standardizer = InputStandardizer(4).double()
    assert not standardizer.fitted
    torch.testing.assert_close(standardizer(test), test)  # identity until fitted
    standardizer.fit(train.sum(0), train.square().sum(0), len(train))
    expected = StandardScaler().fit(train.numpy()).transform(test.numpy())
    torch.testing.assert_close(standardizer(test), torch.from_numpy(expected))
    assert standardizer.fitted and standardizer.scale[3] == 1


def test_head_input_norm_adds_the_standardizer_first() -> None:
    head = ClassificationHead(embedding_dim=8, units=4, num_classes=2, input_norm=True)
    assert isinstance(head.layers[0], InputStandardizer) and head.standardizer is head.layers[0]
    assert set(head.state_dict()) >= {"layers.0.mean", "layers.0.scale", "layers.0.fitted"}
    assert ClassificationHead(embedding_dim=8, units=4, num_classes=2).standardizer is None


@torch.no_grad()
def test_layer_weighted_sum_by_hand() -> None:
    summed = LayerWeightedSum(num_layers=3, width=2)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])  # layers [1,2], [3,4], [5,6]
    torch.testing.assert_close(summed(x), torch.tensor([[3.0, 4.0]]))  # equal weights: the mean
    summed.logits.copy_(torch.tensor([0.0, 0.0, 1e4]))  # all weight on the last layer
    torch.testing.assert_close(summed(x), torch.tensor([[5.0, 6.0]]))


def test_layer_sum_head_learns_the_layer_weights_and_refuses_mixed_widths() -> None:
    head = ClassificationHead(16, 8, 4, layer_sum=True, layer_dims=[4, 4, 4, 4])
    assert head.layers[1].in_features == 4 and head.layers[0].logits.requires_grad
    head(torch.randn(5, 16)).sum().backward()
    assert head.layers[0].logits.grad is not None
    with pytest.raises(SegserError, match=r"layer_sum=true needs backbone layers of one width"):
        ClassificationHead(1536, 8, 4, layer_sum=True, layer_dims=[512, 1024])

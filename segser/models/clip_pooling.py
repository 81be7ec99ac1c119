"""Attention pooling over a clip's segments, trained on clip labels (beside the paper's rules).

The paper decides a clip from its segments by fixed rules (ALCA: mean of the logits). This
head learns the decision instead: each segment's hidden features h_t (the trained segment
head up to its last layer) get a weight a_t = softmax_t(w . tanh(W h_t)), and a linear layer
classifies sum_t a_t h_t (Ilse et al., 2018). It trains after the segment head, on the training
clips' labels, full batch, and keeps the epoch with the lowest validation clip loss. Its clip
decision is reported as its own accuracy (`pooled_UA`, `pooled_WA` in metrics.json).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class PoolingSettings:
    """conf/clip_pooling/attention.yaml."""

    attention_dim: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_epochs: int = 300
    patience: int = 30
    dropout: float = 0.2


@dataclass
class ClipBags:
    """Clips as padded bags of segment features: [clips, T, D], mask [clips, T], labels."""

    features: Tensor
    mask: Tensor
    labels: Tensor
    clip_ids: Tensor


def bags(features: Tensor, labels: Tensor, clip_ids: Tensor) -> ClipBags:
    """Group segment rows [N, D] by clip into padded bags (clips in ascending id order)."""
    clips, inverse, counts = torch.unique(clip_ids, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)
    position = torch.arange(len(order)) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    padded = features.new_zeros(len(clips), int(counts.max()), features.shape[1])
    mask = torch.zeros(len(clips), int(counts.max()), dtype=torch.bool)
    padded[inverse[order], position] = features[order]
    mask[inverse[order], position] = True
    clip_labels = torch.zeros(len(clips), dtype=torch.long)
    clip_labels[inverse] = labels
    return ClipBags(padded, mask, clip_labels, clips)


class AttentionPooling(nn.Module):
    """Bags [N, T, D] with mask [N, T] -> clip logits [N, C]."""

    def __init__(self, dim: int, num_classes: int, attention_dim: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1)
        )
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def weights(self, features: Tensor, mask: Tensor) -> Tensor:
        scores = self.attention(features).squeeze(-1).masked_fill(~mask, float("-inf"))
        return scores.softmax(dim=1)

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        pooled = torch.einsum("nt,ntd->nd", self.weights(features, mask), features)
        return self.classify(pooled)


def fit_attention_pooling(
    train: ClipBags,
    val: ClipBags,
    num_classes: int,
    settings: PoolingSettings,
    class_weights: Tensor | None = None,
    seed: int = 0,
) -> AttentionPooling:
    """Train on the training clips; the epoch with the lowest validation clip loss is kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttentionPooling(
            train.features.shape[-1], num_classes, settings.attention_dim, settings.dropout
        )
        optimizer = torch.optim.Adam(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        loss = nn.CrossEntropyLoss(weight=class_weights)
        best, best_loss, waited = copy.deepcopy(model.state_dict()), float("inf"), 0
        for _ in range(settings.max_epochs):
            model.train()
            optimizer.zero_grad()
            loss(model(train.features, train.mask), train.labels).backward()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                val_loss = float(loss(model(val.features, val.mask), val.labels))
            if val_loss < best_loss - 1e-6:
                best, best_loss, waited = copy.deepcopy(model.state_dict()), val_loss, 0
            else:
                waited += 1
                if waited >= settings.patience:
                    break
        model.load_state_dict(best)
        model.eval()
    return model


def clip_accuracy(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """UA (mean recall over the classes present), WA and the confusion matrix (rows = true)."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    present = confusion.sum(1) > 0
    recall = np.diag(confusion)[present] / confusion.sum(1)[present]
    return {
        "UA": float(recall.mean()) if present.any() else 0.0,
        "WA": float(np.diag(confusion).sum() / max(confusion.sum(), 1)),
        "confusion_matrix": confusion.tolist(),
    }


@torch.no_grad()
def segment_features(model: nn.Module, rows, batch_size: int = 256) -> tuple[Tensor, ...]:
    """Hidden features (the segment head up to its last layer), labels and clips of every row
    of a split (a SegmentRows), in order."""
    layers = getattr(model.head, "layers", None)
    if not isinstance(layers, nn.Sequential):
        raise TypeError("clip pooling needs a ClassificationHead (its layers up to the logits)")
    was_training = model.training
    model.eval()
    features = []
    for start in range(0, len(rows), batch_size):
        inputs, _, _, *lengths = rows[np.arange(start, min(start + batch_size, len(rows)))]
        inputs = inputs.to(model.device)
        lengths = lengths[0].to(model.device) if lengths else None
        embeddings = inputs if inputs.dim() == 2 else model.embed(inputs, lengths)
        features.append(layers[:-1](embeddings).float().cpu())
    model.train(was_training)
    return torch.cat(features), rows.labels, rows.clips


def pooled_clip_results(
    model: nn.Module, datasets: dict, num_classes: int, settings: PoolingSettings, seed: int
) -> dict[str, dict]:
    """Fit attention pooling on the training clips; its UA/WA on the validation and test clips."""
    split = {name: bags(*segment_features(model, datasets[name])) for name in datasets}
    weights = None
    if getattr(model, "class_weighted_loss", False):
        counts = torch.bincount(split["train"].labels, minlength=num_classes).double()
        weights = (counts.sum() / (num_classes * counts.clamp_min(1))).float()
    pooling = fit_attention_pooling(
        split["train"], split["val"], num_classes, settings, weights, seed
    )
    results = {}
    with torch.no_grad():
        for name in ("val", "test"):
            logits = pooling(split[name].features, split[name].mask)
            results[name] = clip_accuracy(
                logits.argmax(1).numpy(), split[name].labels.numpy(), num_classes
            )
    return results

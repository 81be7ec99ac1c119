"""Attention pooling over a clip's segments, trained on clip labels (beside the paper's rules).

The paper decides a clip from its segments by fixed rules (ALCA: mean of the logits). This
head learns the decision instead: each segment's hidden features h_t (the trained segment
head up to its last layer) get a weight a_t = softmax_t(w . tanh(W h_t)), and a linear layer
classifies sum_t a_t h_t (Ilse et al., 2018). It trains after the segment head, full batch.

Cross-fitted: the segment head's features of its own training clips are over-confident, so the
pooling is fit on clips the head never trained on, the validation clips, in `folds` stratified
folds: each fold's pooling trains on the other folds and keeps the epoch with the lowest loss on
its own. A validation clip is scored by the pooling that did not train on it (out of fold); a
test clip by the mean logits of all of them. Its clip decision is reported as its own accuracy
(`pooled_UA`, `pooled_WA` in metrics.json).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from segser.errors import SegserError

if TYPE_CHECKING:
    from segser.data.datamodule import SegmentDataModule


@dataclass(frozen=True)
class PoolingSettings:
    """conf/clip_pooling/attention.yaml."""

    attention_dim: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_epochs: int = 300
    patience: int = 30
    dropout: float = 0.2
    folds: int = 5  # cross-fitting folds of the validation clips (fewer if there are fewer)


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
def segment_features(
    model: nn.Module, rows, embedded: bool, batch_size: int = 256
) -> tuple[Tensor, ...]:
    """Hidden features (the segment head up to its last layer), labels and clips of every row
    of a split (a SegmentRows), in order; `embedded`: its rows are cached embeddings."""
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
        embeddings = inputs if embedded else model.embed(inputs, lengths)
        features.append(layers[:-1](embeddings).float().cpu())
    model.train(was_training)
    return torch.cat(features), rows.labels, rows.clips


def subset(clips: ClipBags, chosen: Tensor) -> ClipBags:
    """The bags at positions `chosen`."""
    return ClipBags(
        *(t[chosen] for t in (clips.features, clips.mask, clips.labels, clips.clip_ids))
    )


def stratified_folds(labels: Tensor, folds: int, seed: int) -> Tensor:
    """Fold (0..folds-1) of each clip: each label's clips shuffled with `seed`, dealt in turn."""
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(labels), dtype=torch.long)
    start = 0
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold[members] = (torch.arange(len(members)) + start) % folds
        start += len(members)
    return fold


def pooled_clip_results(
    model: nn.Module,
    datasets: Mapping[str, Any],
    num_classes: int,
    settings: PoolingSettings,
    seed: int,
    *,
    embedded: bool,
    class_weighted: bool = False,
) -> dict[str, dict]:
    """Cross-fit attention pooling on the validation clips (never the training clips); its UA/WA
    on the validation clips (out of fold) and the test clips (mean of the folds' logits).
    `embedded`: the rows are cached embeddings; `class_weighted`: weigh the clip labels."""
    split = {
        name: bags(*segment_features(model, datasets[name], embedded)) for name in ("val", "test")
    }
    fit = split["val"]
    folds = min(settings.folds, len(fit.labels))
    if folds < 2:
        raise SegserError(
            "clip_pooling is cross-fitted on the validation clips and needs at least 2 of them "
            f"(found {len(fit.labels)}). Use a split with more validation clips, or "
            "clip_pooling=none"
        )
    weights = None
    if class_weighted:
        counts = torch.bincount(fit.labels, minlength=num_classes).double()
        weights = (counts.sum() / (num_classes * counts.clamp_min(1))).float()
    fold = stratified_folds(fit.labels, folds, seed)
    out_of_fold = torch.zeros(len(fit.labels), num_classes)
    test_logits = torch.zeros(len(split["test"].labels), num_classes)
    for k in range(folds):
        held = fold == k
        pooling = fit_attention_pooling(
            subset(fit, ~held), subset(fit, held), num_classes, settings, weights, seed + k
        )
        with torch.no_grad():
            out_of_fold[held] = pooling(fit.features[held], fit.mask[held])
            test_logits += pooling(split["test"].features, split["test"].mask) / folds
    logits = {"val": out_of_fold, "test": test_logits}
    return {
        name: clip_accuracy(logits[name].argmax(1).numpy(), split[name].labels.numpy(), num_classes)
        for name in ("val", "test")
    }


def pool_clips(
    model: nn.Module, datamodule: SegmentDataModule, settings: Mapping[str, Any] | None, seed: int
) -> dict[str, dict] | None:
    """The clip-pooling step of a run, after its test epoch (None without clip_pooling): the
    segment model's features of the datamodule's validation and test clips, pooled as
    pooled_clip_results says, with the loss weighting the segment model trained with."""
    if not settings:
        return None
    return pooled_clip_results(
        model,
        {name: datamodule.datasets[name] for name in ("val", "test")},
        len(model.classes),
        PoolingSettings(**settings),
        seed,
        embedded=datamodule.serves_embeddings(),
        class_weighted=model.class_weighted_loss,
    )

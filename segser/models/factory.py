"""Build the classifier from its plain-dict model config (checkpoints: models/checkpoint.py)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate

from segser.models.module import SegmentEmotionClassifier
from segser.models.weights import load_vggish


def build_classifier(
    model_config: dict[str, Any], load_pretrained: bool = True
) -> SegmentEmotionClassifier:
    """Backbone (with its pre-trained weights unless restoring a checkpoint), head, optimizer."""
    backbone_config = model_config["backbone"]
    backbone = instantiate(backbone_config["net"])
    weights = str(backbone_config.get("weights", "none"))
    if load_pretrained and weights != "none":
        load_vggish(backbone, weights)
    classes = list(model_config["classes"])
    head = instantiate(
        model_config["head"], embedding_dim=backbone.embedding_dim, num_classes=len(classes)
    )
    return SegmentEmotionClassifier(
        backbone=backbone,
        head=head,
        classes=classes,
        optimizer=instantiate(model_config["optimizer"]),
        backbone_lr=backbone_config.get("lr"),
        freeze_backbone=bool(backbone_config.get("freeze", False)),
        model_config=model_config,
    )

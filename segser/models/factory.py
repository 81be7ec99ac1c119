"""Build the classifier from its plain-dict model config (checkpoints: models/checkpoint.py)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate

from segser.errors import SegserError
from segser.models.backbone import Backbone, check_features
from segser.models.module import SegmentEmotionClassifier


def build_classifier(
    model_config: dict[str, Any],
    load_pretrained: bool = True,
    *,
    class_weighted_loss: bool = False,
    channels_last: bool = False,
    compile_backbone: bool = False,
) -> SegmentEmotionClassifier:
    """Backbone (with its pre-trained weights unless restoring a checkpoint), head, optimizer;
    the training run's loss weighting and speed switches as SegmentEmotionClassifier takes them
    (a checkpoint's model is rebuilt without them)."""
    backbone_config = model_config["backbone"]
    backbone = instantiate(backbone_config["net"])
    if not isinstance(backbone, Backbone):
        raise SegserError(
            f"backbone.net._target_={backbone_config['net']['_target_']} is not a "
            "segser.models.backbone.Backbone. Subclass it (embedding_dim, load_weights)."
        )
    name = backbone_config.get("name", type(backbone).__name__)
    check_features(type(backbone), model_config.get("features") or {}, name)
    if load_pretrained:
        backbone.load_weights(str(backbone_config.get("weights", "none")))
    trainable_layers = backbone_config.get("trainable_layers")
    if trainable_layers is not None and not backbone_config.get("freeze", False):
        if not hasattr(backbone, "train_last_layers"):
            raise SegserError(f"backbone.trainable_layers is not supported by backbone={name}")
        backbone.train_last_layers(int(trainable_layers))
    classes = list(model_config["classes"])
    head = instantiate(
        model_config["head"],
        embedding_dim=backbone.embedding_dim,
        num_classes=len(classes),
        layer_dims=list(getattr(backbone, "layer_dims", [backbone.embedding_dim])),
    )
    return SegmentEmotionClassifier(
        backbone=backbone,
        head=head,
        classes=classes,
        optimizer=instantiate(model_config["optimizer"]),
        backbone_lr=backbone_config.get("lr"),
        freeze_backbone=bool(backbone_config.get("freeze", False)),
        model_config=model_config,
        class_weighted_loss=class_weighted_loss,
        channels_last=channels_last,
        compile_backbone=compile_backbone,
    )

"""Which network and which weights a run's figures came from, for metrics.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from segser.data.cache.embeddings import weights_sha256


def backbone_record(backbone_config: Mapping[str, Any], backbone: nn.Module) -> dict[str, Any]:
    """The backbone as built before training: its config name, settings (layers, segment
    mode), the weights it was given and the sha256 of its loaded state (a packaged file, a
    user's file and a random init each hash differently), taken before any fine-tuning."""
    return {
        "name": backbone_config.get("name"),
        "class": type(backbone).__name__,
        "settings": backbone.extra_repr(),
        "weights": str(backbone_config.get("weights", "none")),
        "weights_sha256": weights_sha256(backbone),
        "frozen": bool(backbone_config.get("freeze", False)),
    }

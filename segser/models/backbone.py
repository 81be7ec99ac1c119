"""One interface for every backbone: embedding size, the features it was trained on, its weights.

A backbone maps a log-mel patch [B, 1, 96, 64] (or, with `feature_kind = "waveform"`, a raw
segment [B, 1, samples]) to an embedding [B, embedding_dim]. Adding one means one module (a
`Backbone` subclass under segser.models) and one conf/backbone/*.yaml.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from torch import nn

from segser.errors import SegserError
from segser.models.weights import load_state_dict_file, load_strictly


class Backbone(nn.Module):
    """A patch embedder. `required_features`: feature settings its weights were trained on.

    `layer_dims`, where the embedding concatenates several layers' outputs, gives their widths
    (head.layer_sum weighs them); the factory passes `[embedding_dim]` for the others.
    """

    embedding_dim: int
    required_features: ClassVar[Mapping[str, float]] = MappingProxyType({})
    feature_kind: ClassVar[str] = "logmel"  # the features.kind it reads (logmel or waveform)
    embedding_cache_dtype: ClassVar[str] = "float32"  # how the frozen-embedding cache stores it

    def can_skip_parameters(self) -> bool:
        """Whether a training step can leave a trainable parameter without a gradient (layer
        drop does): DDP must then look for unused parameters (components.ddp_strategy)."""
        return False

    def load_weights(self, source: str) -> None:
        """Load `source`: "none" keeps the random init, anything else is a state-dict file."""
        if source != "none":
            load_strictly(self, load_state_dict_file(source), source)


def check_features(backbone: type[Backbone], features: Mapping[str, Any], name: str) -> None:
    """Refuse features the backbone class's weights were not trained on, naming both keys.

    Takes the class, so the config check runs it before any corpus scan (config_checks)."""
    kind = features.get("kind", "logmel")
    if kind != backbone.feature_kind:
        reads = {"logmel": "log-mel patches", "waveform": "raw waveform segments"}
        raise SegserError(
            f"features.kind={kind} contradicts backbone={name}, which reads "
            f"{reads.get(backbone.feature_kind, backbone.feature_kind)}. Drop the features "
            f"override (backbone={name} selects its own features) or choose another backbone."
        )
    for key, needed in backbone.required_features.items():
        value = features.get(key)
        if value is not None and not math.isclose(float(value), needed, rel_tol=1e-9):
            raise SegserError(
                f"features.{key}={value} contradicts backbone={name}, whose weights expect "
                f"features.{key}={needed}. Drop the features.{key} override "
                f"(backbone={name} selects its own features) or choose another backbone."
            )

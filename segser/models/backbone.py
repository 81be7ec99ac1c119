"""One interface for every backbone: embedding size, the features it was trained on, its weights.

A backbone maps a log-mel patch [B, 1, 96, 64] (or, with `feature_kind = "waveform"`, a raw
segment [B, 1, samples]) to an embedding [B, embedding_dim]. Adding one means one module (a
`Backbone` subclass under segser.models) and one conf/backbone/*.yaml. The class checks its own
`backbone.net` config (`check_net_config`), so the config check refuses a bad value at start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

    @classmethod
    def check_net_config(cls, net: Mapping[str, Any]) -> None:
        """Refuse in one line what the constructor would refuse in the config `backbone.net`,
        before any corpus scan (config_checks). The base class has nothing to check."""

    @classmethod
    def min_samples(cls, net: Mapping[str, Any]) -> int:
        """The shortest segment, in samples, that gives an embedding (config_checks compares the
        window with it); 0: no bound beyond the feature path's (a log-mel patch)."""
        return 0


EMBEDDING_LAYERS = "backbone.net.embedding_layers"


@dataclass(frozen=True)
class LayerRange:
    """The `embedding_layers` a backbone takes: indices 0..count-1, or null for all of them
    where `null_means_all`. The one range check for every backbone, worded by `give` in the
    constructor's refusal and by `allowed` in the config check's ("is out of range: allowed")."""

    count: int
    null_means_all: bool
    give: str
    allowed: str

    @classmethod
    def layer_outputs(cls, count: int, give: str) -> LayerRange:
        """Layer outputs 0..count-1 (0 = the first layer's input), null for all of them: the
        speech transformers' and Whisper's range."""
        allowed = (
            f"null (all of them) or a non-empty list of indices 0-{count - 1} "
            "(0 = the first layer's input, i = layer i's output)"
        )
        return cls(count, True, f"{give}, or null for all of them", allowed)

    def indices(self, layers: Any) -> tuple[int, ...] | None:
        """The sorted unique indices `layers` chooses, or None where it is out of range."""
        if layers is None:
            return tuple(range(self.count)) if self.null_means_all else None
        if isinstance(layers, str) or not isinstance(layers, Iterable):
            return None
        chosen = tuple(layers)
        if chosen and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.count for i in chosen
        ):
            return tuple(sorted(set(chosen)))
        return None

    def checked(self, layers: Any) -> tuple[int, ...]:
        """The constructor's check: the indices, or one line naming the range."""
        indices = self.indices(layers)
        if indices is None:
            raise SegserError(f"{EMBEDDING_LAYERS}={_shown(layers)}: give {self.give}")
        return indices

    def check_config(self, layers: Any) -> None:
        """The config check's: one line in config_checks' words where `layers` is out of range."""
        if self.indices(layers) is None:
            raise SegserError(
                f"{EMBEDDING_LAYERS}={_shown(layers)} is out of range: allowed {self.allowed}"
            )


def _shown(layers: Any) -> str:
    listed = isinstance(layers, Iterable) and not isinstance(layers, str | Mapping)
    return str(list(layers)) if listed else repr(layers)


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
